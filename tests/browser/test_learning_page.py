"""The learning and reports pages in a real browser: a run that finishes while the page is open
shows its version, champion and curve without a reload, replaces "Training is queued" and stops
the polling; the strategy mix is a form; the reports page says when each figure was computed.
Each page fits 1280 and 390 px; screenshots go to $QUORUM_SHOTS when it is set.

The worker is played by the test: "Train now" queues a run whose message is held back, and the
test then writes what a finished run writes (a new champion version, the run succeeded), in
single statements, so the live server's requests never see half a transaction."""

import os
import uuid
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.annotation.consensus import consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.learning.models import ModelVersion, TrainingRun, VersionStatus
from apps.projects import jobs
from apps.projects.jobs import JobState
from apps.projects.models import Item, Project
from apps.projects.services import project_update
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"1280": 1280, "390": 390}


def fits_and_shoot(page, name: str) -> None:
    """No wider than the window at 1280 and 390 px; full-page screenshots to $QUORUM_SHOTS."""
    folder = os.environ.get("QUORUM_SHOTS")
    size = page.viewport_size
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} overflows at {width} px"
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{folder}/{name}-{label}.png", full_page=True)
    page.set_viewport_size(size)


def version(project, number, accuracy, f1, size, status):
    return ModelVersion.objects.create(
        project=project, number=number, status=status, mode="head", backbone="all-minilm-l6-v2",
        metrics={"accuracy": accuracy, "macro_f1": f1}, train_size=size,
        evaluation={"source": "gold", "size": 40}, snapshot={"consolidation_method": "dawid_skene"},
        promoted_at=timezone.now() if status == VersionStatus.CHAMPION else None,
    )  # fmt: skip


@pytest.fixture
def held_training(monkeypatch):
    """Training runs stay queued: their message is not sent (no worker in this test)."""
    real = jobs.task_send

    def send(name, *args):
        return True if name == "learning.training_run" else real(name, *args)

    monkeypatch.setattr(jobs, "task_send", send)


def test_a_run_that_finishes_shows_its_version_without_a_reload(page, live_server, held_training):
    cast = make_cast()
    version(cast.project, 1, 0.81, 0.78, 120, VersionStatus.CHAMPION)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "part=runs" in request.url else None)
    log_in(page, live_server, "manager")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/learning/")

    page.get_by_role("button", name="Train now").click()
    expect(page.locator("#messages")).to_contain_text("Training is queued")
    expect(page.locator("#runs .badge-running")).to_be_visible()
    fits_and_shoot(page, "learning-queued")
    run = TrainingRun.objects.get(project=cast.project)
    assert run.state == JobState.QUEUED

    # What the worker writes when its challenger beats the champion.
    challenger = version(cast.project, 2, 0.9, 0.88, 300, VersionStatus.CHALLENGER)
    ModelVersion.objects.filter(project=cast.project, number=1).update(status=VersionStatus.RETIRED)
    ModelVersion.objects.filter(pk=challenger.pk).update(status=VersionStatus.CHAMPION, promoted_at=timezone.now())
    TrainingRun.objects.filter(pk=run.pk).update(
        state=JobState.SUCCEEDED, progress=100, stage="Done", version=challenger, promoted=True,
        started_at=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip

    expect(page.locator("#versions tbody tr").first).to_contain_text("v2", timeout=15_000)
    expect(page.locator("#champion .card-header")).to_contain_text("v2")
    expect(page.locator("#messages")).to_have_text("Training finished: v2 is the champion now.")
    expect(page.locator("#runs .badge-running")).to_have_count(0)
    expect(page.locator("#curve canvas")).to_have_attribute("data-drawn", "1")
    assert page.locator("#curve-chart").text_content().count('"v2"') == 1
    assert page.locator("#runs").get_attribute("hx-trigger") is None
    settled = len(polls)
    page.wait_for_timeout(4_500)
    assert len(polls) == settled, "the page still polls after the run ended"
    fits_and_shoot(page, "learning-finished")


def test_the_strategy_mix_is_a_form_beside_what_each_strategy_does(page, live_server):
    cast = make_cast()
    log_in(page, live_server, "manager")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/learning/")
    mix = page.locator("fieldset.mix-weights")
    margin_row = page.locator('[data-explains="id_sampling_strategy"] [data-choice="margin"]')

    expect(mix).to_be_hidden()  # the saved strategy is margin
    expect(margin_row).to_have_class("choice-row current")
    page.select_option("#id_sampling_strategy", "mix")
    expect(mix).to_be_visible()
    expect(page.locator('[data-explains="id_sampling_strategy"] .current')).to_have_attribute("data-choice", "mix")
    page.fill("#id_weight_margin", "-1")
    assert page.locator("#id_weight_margin").evaluate("input => !input.checkValidity()")  # the browser says so first
    page.fill("#id_weight_margin", "0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings .errorlist")).to_contain_text("Give at least one strategy of the mix a weight")
    expect(mix).to_be_visible()
    page.fill("#id_weight_margin", "0.7")
    page.fill("#id_weight_diversity", "0.3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Learning settings saved.")

    assert Project.objects.get(pk=cast.project.pk).strategy_weights == {"margin": 0.7, "diversity": 0.3}
    expect(page.locator("#id_weight_margin")).to_have_value("0.7")
    page.locator("#settings").scroll_into_view_if_needed()
    fits_and_shoot(page, "learning-settings")


def test_the_reports_page_names_methods_plainly_and_says_when_figures_were_computed(page, live_server):
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000})
    project = Project.objects.get(pk=cast.project.pk)
    for n in range(6):
        Item.objects.create(project=project, text=f"Story {n} about the markets and the match.")
    for user, values in ((cast.annotator, ["World"] * 6), (cast.other_annotator, ["World", "Sports"] * 3)):
        for value in values:
            task = task_next_for_annotator(project=project, annotator=user).assignment
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
            )
    consolidation_run(run_id=consolidation_request(project=project).pk)
    log_in(page, live_server, "reviewer")

    page.goto(f"{live_server.url}/projects/{project.pk}/reports/")

    expect(page.locator("#run-status")).to_contain_text("Weighted by learned skill (Dawid-Skene)")
    stamps = page.locator("time.computed")
    assert stamps.count() >= 8
    assert str(timezone.now().year) in stamps.first.get_attribute("title")
    expect(stamps.nth(1)).to_have_text("computed now")
    fits_and_shoot(page, "reports")
