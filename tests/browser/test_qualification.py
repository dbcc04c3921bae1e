"""A newcomer in a real browser: the qualification test failed, retried and passed, a practice
item with its feedback, then the first real item; with the keyboard, as annotators work.
Each step's page fits 1280 and 390 px; screenshots go to $QUORUM_SHOTS when it is set."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.annotation.models import Annotation, PracticeAnswer, QualificationAttempt
from apps.projects.models import GoldLabel, Item, Membership
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


def answer_with_keys(page, key: str, heading_after: str) -> None:
    page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading_after)


def test_a_newcomer_fails_the_test_passes_the_retry_practises_then_labels(page, live_server):
    cast = make_cast()
    project_update(
        project=cast.project,
        data={
            "qualification_size": 2,
            "qualification_pass_mark": 1.0,
            "qualification_attempts": 2,
            "training_items": 1,
            "gold_ratio": 0,
            "instructions": "Label each news story by its **main topic**.",
        },
    )
    sports = cast.labels["Sports"]
    sports.description = "Matches, players, clubs and results."
    sports.save()
    for n in range(3):
        text = f"Match report {n}: the derby ended 2-1 after extra time."
        item = Item.objects.create(project=cast.project, text=text, is_gold=True)
        GoldLabel.objects.create(item=item, label=sports)
    for n in range(3):
        Item.objects.create(project=cast.project, text=f"Story {n}: the cup final drew a record crowd.")
    log_in(page, live_server, "annotator")

    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Before you start: a short test")
    page.get_by_role("button", name="Start the test").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Qualification test, item 1 of 2")
    expect(page.locator(".suggestion")).to_have_count(0)
    fits_and_shoot(page, "qualification-item")

    # Wrong twice ("1" is World; the right answer is Sports).
    answer_with_keys(page, "1", "Qualification test, item 2 of 2")
    answer_with_keys(page, "1", "Not passed yet")
    expect(page.locator(".verdict")).to_contain_text("You scored 0% in attempt 1; the pass mark is 100%.")
    expect(page.get_by_text("You have 1 attempt left.")).to_be_visible()
    fits_and_shoot(page, "qualification-failed")

    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Qualification test, item 1 of 2")
    answer_with_keys(page, "2", "Qualification test, item 2 of 2")
    answer_with_keys(page, "2", "You passed the test")
    assert Membership.objects.get(project=cast.project, user=cast.annotator).qualified_at is not None

    page.get_by_role("link", name="Start labelling").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Practice item 1 of 1")
    expect(page.locator(".suggestion")).to_have_count(0)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator(".verdict")).to_contain_text("Not quite.")
    expect(page.locator(".answer-pair")).to_contain_text("World")
    expect(page.locator(".answer-pair")).to_contain_text("Sports")
    expect(page.locator(".label-notes")).to_contain_text("Matches, players, clubs and results.")
    fits_and_shoot(page, "practice-feedback")

    # The feedback's button has the focus: Enter goes on, here to real work.
    expect(page.get_by_role("link", name="Start real work")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#current form.task[data-assignment]")).to_be_visible()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("[data-progress=total]")).to_have_text("1")

    answer = Annotation.objects.get(annotator=cast.annotator)
    assert not answer.item.is_gold and answer.labels.get().label == sports
    assert QualificationAttempt.objects.filter(annotator=cast.annotator).count() == 2
    assert PracticeAnswer.objects.filter(annotator=cast.annotator, score=0.0).count() == 1
