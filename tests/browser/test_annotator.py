"""Annotators in a real browser: five items with the keyboard only, and two entity
spans marked with the mouse."""

import pytest
from playwright.sync_api import expect

from apps.annotation.models import Annotation
from apps.projects.models import Item, Label
from apps.projects.services import project_update
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Waits go through locators: wait_for_function evaluates with eval, which the CSP refuses.
CURRENT = "#current form.task"


def test_an_annotator_labels_five_items_with_the_keyboard(page, live_server):
    cast = make_cast()
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 1})
    Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n} about the cup final.") for n in range(8))
    log_in(page, live_server, "annotator")

    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    for key in ["1", "2", "2", "4", "3"]:
        before = page.locator("#current form.task").get_attribute("data-assignment")
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        expect(page.locator(CURRENT)).not_to_have_attribute("data-assignment", before or "")
    expect(page.locator("[data-progress=total]")).to_have_text("5")

    answers = Annotation.objects.filter(annotator=cast.annotator).order_by("id")
    assert [a.labels.get().label.name for a in answers] == ["World", "Sports", "Sports", "Science", "Business"]
    assert all(a.duration_ms is not None for a in answers)
    assert page.locator("[data-progress=session]").inner_text() == "5"


def _drag_over(page, start: int, end: int) -> None:
    """Press the mouse at character ``start`` of the task text and release it at ``end``."""
    box = page.evaluate(
        """([start, end]) => {
            const el = document.querySelector('#current .task-text');
            const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
            const spots = [];
            let seen = 0, node;
            while ((node = walker.nextNode())) {
                if (node.parentElement.closest('.tag')) continue;
                for (const target of [start, end]) {
                    if (target >= seen && target <= seen + node.length && spots.length < 2 && !spots.some(s => s.t === target)) {
                        const range = document.createRange();
                        range.setStart(node, target - seen);
                        range.setEnd(node, Math.min(target - seen + 1, node.length));
                        const r = range.getBoundingClientRect();
                        spots.push({t: target, x: target === start ? r.left + 1 : r.left - 1, y: r.top + r.height / 2});
                    }
                }
                seen += node.length;
            }
            return spots;
        }""",
        [start, end],
    )
    first, last = box[0], box[-1]
    page.mouse.move(first["x"], first["y"])
    page.mouse.down()
    page.mouse.move(last["x"], last["y"], steps=5)
    page.mouse.up()


def test_an_annotator_marks_two_entity_spans_with_the_mouse(page, live_server):
    cast = make_cast("spans", ("Person", "Organization", "Location", "Date"))
    project_update(project=cast.project, data={"gold_ratio": 0.0})
    text = "Maria Okafor met trade officials in Lisbon on Monday."
    Item.objects.create(project=cast.project, text=text)
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")

    _drag_over(page, text.index("Maria"), text.index(" met"))
    page.keyboard.press(Label.objects.get(project=cast.project, name="Person").key)
    _drag_over(page, text.index("Lisbon"), text.index(" on"))
    page.click("label.choice:has-text('Location')")
    page.wait_for_selector("#current sup.tag:has-text('Location')")
    page.keyboard.press("Enter")
    expect(page.locator("[data-progress=total]")).to_have_text("1")

    spans = list(Annotation.objects.get(annotator=cast.annotator).labels.values_list("start", "end", "label__name"))
    assert spans == [(0, 12, "Person"), (36, 42, "Location")]
