"""A manager's pages in a real browser: the labels page saves every row at once (edits in
two rows survive one save; a refused save keeps what was typed) while its preview follows
the typing; the items list filters on answers; the payments page. Each page fits 1280 and
390 px; screenshots go to $QUORUM_SHOTS when it is set."""

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.annotation.models import ItemConsensus
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.models import Label, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = {"1280": 1280, "390": 390}


def fits_and_shoot(page, name: str) -> None:
    """At 1280 and 390 px the page is no wider than the window (wide tables scroll inside
    their card); full-page screenshots when QUORUM_SHOTS names a folder."""
    folder = os.environ.get("QUORUM_SHOTS")
    size = page.viewport_size
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} overflows at {width} px: {wide}"
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{folder}/{name}-{label}.png", full_page=True)
    page.set_viewport_size(size)


def worked_project():
    """News with k = 2, twelve stories answered by two annotators (they split on every
    third), a price and a bonus; the manager's password is "pw"."""
    cast = make_cast()
    project_update(
        project=cast.project,
        data={
            "overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000, "price_per_annotation": "0.0500",
            "bonus_gold_accuracy": 0.8, "bonus_per_answer": "0.0100",
            "instructions": "Pick the **main** topic of the story.",
        },
    )  # fmt: skip
    project = Project.objects.get(pk=cast.project.pk)
    for n in range(12):
        ItemFactory(project=project, text=f"Story {n}: the derby ended level after a late equaliser in the rain.")
    for user, values in (
        (cast.annotator, ["Sports"] * 12),
        (cast.other_annotator, ["Sports", "Sports", "World"] * 4),
    ):
        for value in values:
            task = task_next_for_annotator(project=project, annotator=user).assignment
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
            )
    return cast, project


def test_the_labels_page_saves_every_row_at_once_and_previews_as_you_type(page, live_server):
    cast, project = worked_project()
    log_in(page, live_server, "manager")
    page.goto(f"{live_server.url}/projects/{project.pk}/labels/")
    world, sports = (page.locator(f"#label-{cast.labels[name].pk}") for name in ("World", "Sports"))
    preview = page.locator("#label-preview")
    expect(preview).to_contain_text("Pick the main topic")

    # Two rows edited, then a save: neither edit is lost.
    world.locator("input[name$='-name']").fill("International")
    expect(preview).to_contain_text("International")
    sports.locator("input[name$='-key']").fill("s")
    expect(preview.locator("kbd", has_text="s")).to_have_count(1)
    page.locator(f"#label-{cast.labels['Science'].pk} button[data-move='up']").click()
    expect(preview.locator("label.choice").nth(2)).to_contain_text("Science")
    page.fill("textarea[name=instructions]", "Pick the *one* topic.")
    expect(preview).to_contain_text("Pick the one topic.")
    fits_and_shoot(page, "labels")
    page.click("button:has-text('Save labels')")
    expect(page.get_by_text("Labels saved.")).to_be_visible()
    labels = list(Label.objects.filter(project=project).values_list("name", "key"))
    assert labels == [("International", "1"), ("Sports", "s"), ("Science", "4"), ("Business", "3")]
    assert Project.objects.get(pk=project.pk).instructions == "Pick the *one* topic."

    # A refused save changes nothing and keeps every row as typed.
    page.locator(f"#label-{cast.labels['World'].pk} input[name$='-name']").fill("Business")
    page.locator(f"#label-{cast.labels['Science'].pk} input[name$='-description']").fill("Research and space")
    page.click("button:has-text('Save labels')")
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    expect(page.locator(f"#label-{cast.labels['Science'].pk} input[name$='-description']")).to_have_value(
        "Research and space"
    )
    assert not Label.objects.filter(project=project, description="Research and space").exists()
    fits_and_shoot(page, "labels-refused")


def test_the_items_list_filters_on_answers_and_the_payments_page_adds_up(page, live_server):
    cast, project = worked_project()
    log_in(page, live_server, "manager")

    page.goto(f"{live_server.url}/projects/{project.pk}/items/")
    expect(page.locator("#item-table")).to_contain_text("Provisional vote weighted by skill")
    page.select_option("select[name=disagreement]", "yes")
    expect(page.locator("#item-table .pagination")).to_contain_text("of 4")
    page.select_option("select[name=annotator]", "other_annotator")
    expect(page.locator("#item-table .pagination")).to_contain_text("of 4")
    assert "disagreement=yes" in page.url
    fits_and_shoot(page, "items")

    split = ItemConsensus.objects.filter(project=project).order_by("confidence").first()
    page.goto(f"{live_server.url}/projects/{project.pk}/items/{split.item_id}/")
    expect(page.locator("#consensus")).to_contain_text("Confidence")
    fits_and_shoot(page, "item")

    page.goto(f"{live_server.url}/projects/{project.pk}/payments/")
    table = page.locator("#pay-table")
    expect(table).to_contain_text("The 24 paid answers are the budget spent")
    expect(table.locator("tfoot")).to_contain_text("1.20")  # 24 answers x 0.05
    fits_and_shoot(page, "payments")
    with page.expect_download() as download:
        page.click("a:has-text('Download CSV')")
    assert Path(download.value.path()).read_text().startswith("annotator,worker_id,answers")
