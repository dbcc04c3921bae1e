"""An answer that does not arrive stays in the workspace with a Retry button; retrying
sends the same submission id, so the answer is saved exactly once, whether the request or
only its reply was lost."""

import re

import pytest
from playwright.sync_api import expect

from apps.annotation.models import Annotation
from apps.projects.models import Item
from apps.projects.services import project_update
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _fields(multipart: str) -> dict[str, str]:
    """The answer's fields of a multipart form body (its boundary changes every time)."""
    found = dict(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)', multipart))
    return {key: found[key] for key in ("assignment", "submission_id", "label")}


@pytest.mark.parametrize("fault", ["request lost", "reply lost", "server error"])
def test_a_failed_submit_keeps_the_answer_and_a_retry_saves_it_once(page, live_server, fault):
    cast = make_cast()
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 1})
    Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n} about the cup final.") for n in range(4))
    log_in(page, live_server, "annotator")
    sent: list[str] = []

    def fail_once(route):
        sent.append(route.request.post_data or "")
        if len(sent) > 1:
            route.continue_()
        elif fault == "request lost":
            route.abort("connectionreset")
        elif fault == "reply lost":  # the server saved it; the reply never came back
            route.fetch()
            route.abort("timedout")
        else:
            route.fulfill(status=502, body="Bad gateway", content_type="text/plain")

    page.route("**/annotate/submit/", fail_once)
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    first = page.locator("#current form.task").get_attribute("data-assignment")
    page.keyboard.press("2")  # Sports
    page.keyboard.press("Enter")

    notice = page.locator(".toast.unsent")
    notice.wait_for(state="visible")
    assert "Sports" in notice.inner_text() and "not saved yet" in notice.inner_text()
    # The Retry button has the focus, so the keyboard reaches it.
    expect(notice.get_by_role("button", name="Retry")).to_be_focused()
    saved_before_retry = Annotation.objects.count()
    page.keyboard.press("Enter")
    expect(page.locator("[data-progress=total]")).to_have_text("1")

    assert notice.is_hidden()
    # The same answer went twice, with the same submission id.
    assert len(sent) == 2 and _fields(sent[0]) == _fields(sent[1])
    assert _fields(sent[0])["label"] == str(cast.labels["Sports"].pk)
    assert saved_before_retry == (1 if fault == "reply lost" else 0)
    answer = Annotation.objects.get(annotator=cast.annotator)
    assert str(answer.assignment_id) == first
    assert answer.labels.get().label.name == "Sports"
    # The workspace went on: the next item is on screen, unanswered.
    expect(page.locator("#current form.task")).not_to_have_attribute("data-assignment", first)
