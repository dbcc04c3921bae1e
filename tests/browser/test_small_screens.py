"""An annotator on a 390 px phone: the workspace and the home page never scroll sideways,
the top bar's breadcrumb overlaps nothing, every control is at least 44 px, and a touch
screen shows no keyboard hints. Screenshots go to $QUORUM_SHOTS when it names a folder."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.annotation.models import Suggestion
from apps.projects.answers import Answer, LabelPart
from apps.projects.models import Item
from apps.projects.services import project_update
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
# A long unbroken word and a long project name: what widens a page if anything can.
LONG_NAME = "Regional newsroom topics for the spring election coverage"
LONG_TEXT = "Pneumonoultramicroscopicsilicovolcanoconiosis " * 3 + "was the longest word in the dictionary."
CONTROLS = "a[href], button, select, summary, label.choice, textarea"
# Controls on screen smaller than 44 x 44 px (WCAG 2.5.5).
SMALL_TARGETS = """(selector) => Array.from(document.querySelectorAll(selector))
    .filter(e => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')
    .map(e => { const r = e.getBoundingClientRect(); return [e.tagName, (e.textContent || '').trim().slice(0, 24), Math.round(r.width), Math.round(r.height)]; })
    .filter(([, , w, h]) => w < 44 || h < 44)"""
# Keyboard hints a person can see.
VISIBLE_KEYS = """() => Array.from(document.querySelectorAll('kbd, #shortcuts'))
    .filter(e => e.offsetParent !== null).map(e => e.textContent.trim().slice(0, 20))"""


def phone_project():
    cast = make_cast()
    project_update(
        project=cast.project,
        data={
            "name": LONG_NAME,
            "gold_ratio": 0.0,
            "overlap": 1,
            "max_items_per_annotator": 20,
            "instructions": "Pick **one**.",
        },
    )
    for n in range(3):
        item = Item.objects.create(project=cast.project, text=f"{n}. {LONG_TEXT}")
        Suggestion.objects.create(
            item=item, parts=Answer([LabelPart(None, None, cast.labels["World"].pk)]), confidence=0.9, source="model v1"
        )
    return cast


def shoot(page, name: str, full_page: bool = True) -> None:
    folder = os.environ.get("QUORUM_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}.png", full_page=full_page)


def width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_workspace_and_home_fit_390_px(page, live_server):
    cast = phone_project()
    page.set_viewport_size(PHONE)
    log_in(page, live_server, "annotator")

    expect(page.locator(f"#work-{cast.project.pk}")).to_be_visible()
    assert width(page) <= 390, "the home page scrolls sideways"
    shoot(page, "annotator-home-390")

    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    expect(page.locator("#current form.task")).to_be_visible()
    assert width(page) <= 390, "the workspace scrolls sideways"
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("[data-progress=total]")).to_have_text("1")
    page.locator("#current details.feedback > summary").click()
    assert width(page) <= 390, "the workspace scrolls sideways after an answer"
    shoot(page, "workspace-390")

    # Nothing in the top bar overlaps: the breadcrumb gives way to the menu on a phone.
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.topbar .brand, .topbar .crumbs, .topbar nav'))
            .filter(e => e.offsetParent !== null).map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; })"""
    )
    for (_, right), (left, _) in zip(boxes, boxes[1:], strict=False):
        assert right <= left, boxes


def test_a_touch_screen_gets_44_px_targets_and_no_key_hints(browser, live_server):
    cast = phone_project()
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        log_in(page, live_server, "annotator")
        assert page.evaluate(SMALL_TARGETS, CONTROLS) == []
        page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
        expect(page.locator("#current .suggestion")).to_be_visible()
        page.locator("#current details.feedback > summary").tap()

        assert width(page) <= 390
        assert page.evaluate(SMALL_TARGETS, CONTROLS) == []
        assert page.evaluate(VISIBLE_KEYS) == []
        # The touch buttons still work: Accept takes the suggestion, a tap on a label chooses it.
        page.locator("#current .accept-suggestion").tap()
        expect(page.locator("#current input[data-name=World]")).to_be_checked()
        page.locator("#current label.choice", has_text="Sports").tap()
        expect(page.locator("#current input[data-name=Sports]")).to_be_checked()
        shoot(page, "workspace-390-touch", full_page=False)  # a full-page shot drops the touch emulation
    finally:
        context.close()
