"""A keyboard-only annotator: Tab moves focus through the page as anywhere else and never
changes an answer; Shift+A takes a suggestion the model is sure of (and only such a one);
Enter on the instructions' toggle opens it instead of submitting; a key with no meaning
lists the keys; Enter on words selected but not labelled asks for their type."""

import pytest
from playwright.sync_api import expect

from apps.annotation.models import Annotation, Suggestion
from apps.projects.answers import Answer, LabelPart
from apps.projects.models import Item, Label
from apps.projects.services import project_update
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CURRENT = "#current form.task"
# What has focus, and what the current item's answer is: Tab must change the first only.
FOCUS_AND_ANSWER = """() => {
    const a = document.activeElement;
    const form = document.querySelector('#current form.task');
    const name = a === document.body ? 'body'
        : a.tagName + '|' + (a.getAttribute('href') || a.className || a.name || '') + '|' + (a.textContent || '').trim().slice(0, 30);
    return {
        focus: name,
        assignment: form ? form.dataset.assignment : null,
        checked: Array.from(document.querySelectorAll('#current input[data-key]:checked')).map(i => i.name + '=' + i.value),
    };
}"""


def topics_project(confidences):
    """Items with instructions and a Business suggestion per item, at these confidences."""
    cast = make_cast()
    project_update(
        project=cast.project,
        data={
            "gold_ratio": 0.0,
            "overlap": 1,
            "instructions": "Choose the **main** topic.",
            "suggestion_min_confidence": 0.5,
        },
    )
    business = cast.labels["Business"]
    for n, confidence in enumerate(confidences):
        item = Item.objects.create(project=cast.project, text=f"Story {n}: a steel producer's shares fell.")
        Suggestion.objects.create(
            item=item, parts=Answer([LabelPart(None, None, business.pk)]), confidence=confidence, source="model v2"
        )
    return cast


def test_tab_moves_focus_and_never_changes_an_answer(page, live_server):
    cast = topics_project([0.9, 0.9])
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    expect(page.locator(CURRENT)).to_be_visible()
    start = page.evaluate(FOCUS_AND_ANSWER)
    assert start["focus"].startswith("DIV|task-text") and start["checked"] == []

    seen = []
    for _ in range(16):
        page.keyboard.press("Tab")
        now = page.evaluate(FOCUS_AND_ANSWER)
        assert now["checked"] == [] and now["assignment"] == start["assignment"], now
        seen.append(now["focus"])
    # Focus went round the page: the suggestion's button, the labels, Submit, Skip, the
    # top bar's links; it was never held on one control.
    assert len(set(seen)) >= 8, seen
    assert any("accept-suggestion" in f for f in seen) and any("submit-button" in f for f in seen)
    assert any(f.startswith("A|/") for f in seen), seen
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(FOCUS_AND_ANSWER)["checked"] == []
    assert not Annotation.objects.exists()


def test_shift_a_accepts_a_sure_suggestion_and_enter_submits_it(page, live_server):
    cast = topics_project([0.9, 0.9])
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    before = page.locator(CURRENT).get_attribute("data-assignment")

    page.keyboard.press("Shift+A")
    expect(page.locator("#current .suggestion")).to_have_class("suggestion accepted")
    expect(page.locator("#current input[data-name=Business]")).to_be_checked()
    page.keyboard.press("Enter")

    expect(page.locator(CURRENT)).not_to_have_attribute("data-assignment", before or "")
    expect(page.locator("[data-progress=total]")).to_have_text("1")  # the reply arrived: the answer is saved
    assert [a.labels.get().label.name for a in Annotation.objects.all()] == ["Business"]


def test_an_unsure_suggestion_is_not_taken_by_shift_a(page, live_server):
    cast = topics_project([0.26, 0.26])
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    expect(page.locator("#current .suggestion")).to_contain_text("a hint only")
    expect(page.locator("#current .accept-suggestion")).to_have_count(0)

    page.keyboard.press("Shift+A")

    expect(page.locator("#toast")).to_contain_text("not sure enough")
    assert page.evaluate(FOCUS_AND_ANSWER)["checked"] == []


def test_enter_on_the_instructions_toggle_opens_them_and_submits_nothing(page, live_server):
    cast = topics_project([0.9, 0.9])
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    instructions = page.locator("details.instructions")
    instructions.evaluate("details => { details.open = false; }")
    page.keyboard.press("2")  # an answer is chosen: a captured Enter would submit it
    before = page.evaluate(FOCUS_AND_ANSWER)

    for _ in range(12):  # back from the item's text to the toggle, by keyboard only
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.matches('details.instructions > summary')"):
            break
    else:
        pytest.fail("Shift+Tab never reached the instructions' toggle")
    page.keyboard.press("Enter")

    expect(instructions).to_have_attribute("open", "")
    after = page.evaluate(FOCUS_AND_ANSWER)
    assert after["assignment"] == before["assignment"] and after["checked"] == before["checked"]
    assert not Annotation.objects.exists()


def test_a_key_with_no_meaning_lists_the_keys(page, live_server):
    cast = topics_project([0.9])
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")

    page.keyboard.press("x")

    toast = page.locator("#toast")
    expect(toast).to_contain_text("x does nothing here")
    for key in ("1 World", "Enter submit", "Shift+Enter skip", "Shift+A accept the suggestion", "Tab next control"):
        expect(toast).to_contain_text(key)
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_have_attribute("open", "")


def test_enter_on_unlabelled_words_asks_for_their_type(page, live_server):
    cast = make_cast("spans", ("Person", "Organization", "Location", "Date"))
    project_update(project=cast.project, data={"gold_ratio": 0.0})
    Item.objects.create(project=cast.project, text="Maria Okafor met trade officials in Lisbon.")
    person = Label.objects.get(project=cast.project, name="Person")
    log_in(page, live_server, "annotator")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")

    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Enter")

    expect(page.locator("#toast")).to_contain_text("The words “Maria Okafor” have no type yet")
    expect(page.locator("#toast")).to_contain_text(f"{person.key} Person")
    assert not Annotation.objects.exists()

    page.keyboard.press(person.key)
    page.keyboard.press("Enter")
    expect(page.locator("[data-progress=total]")).to_have_text("1")
    spans = list(Annotation.objects.get().labels.values_list("start", "end", "label__name"))
    assert spans == [(0, 12, "Person")]
