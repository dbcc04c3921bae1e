"""Annotators' notes on an item (ambiguous, offensive, broken text, other), sent beside
skipping it, and what reviewers see of them on the item and review pages."""

import pytest

from apps.annotation.models import Assignment, AssignmentState, ItemFeedback
from apps.annotation.services import task_next_for_annotator
from apps.projects.models import Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2})
    for n in range(3):
        ItemFactory(project=cast.project, text=f"Story {n}: the derby ended le")
    return Project.objects.get(pk=cast.project.pk)


def lease(project, user):
    return task_next_for_annotator(project=project, annotator=user).assignment


def send(client, project, assignment_id, kind="broken", text="", **headers):
    form = {"assignment": assignment_id, "feedback_kind": kind, "feedback_text": text}
    return client.post(f"/projects/{project.pk}/annotate/feedback/", form, **headers)


def test_an_annotator_tells_reviewers_what_is_wrong_and_keeps_the_item(cast, project):
    assignment = lease(project, cast.annotator)

    response = send(client_for(cast.annotator), project, assignment.pk, "broken", "  The text stops mid-word. ", **JSON)

    assert response.status_code == 200 and response.json()["sent"]
    assert "broken text" in response.json()["message"]
    note = ItemFeedback.objects.get()
    assert (note.project_id, note.item_id, note.annotator_id) == (project.pk, assignment.item_id, cast.annotator.pk)
    assert (note.kind, note.text, note.resolved_at) == ("broken", "The text stops mid-word.", None)
    assert Assignment.objects.get(pk=assignment.pk).state == AssignmentState.LEASED


def test_without_javascript_the_note_returns_to_the_same_item(cast, project):
    assignment = lease(project, cast.annotator)
    client = client_for(cast.annotator)

    response = send(client, project, assignment.pk, "ambiguous", "World or Business?")

    assert response.status_code == 302 and response["Location"].endswith(f"?assignment={assignment.pk}")
    page = client.get(response["Location"])
    assert b"reviewers will see your note (ambiguous)" in page.content
    assert f'data-assignment="{assignment.pk}"'.encode() in page.content
    assert ItemFeedback.objects.filter(kind="ambiguous", text="World or Business?").count() == 1


def test_sending_the_same_kind_again_replaces_its_text(cast, project):
    assignment = lease(project, cast.annotator)
    client = client_for(cast.annotator)

    send(client, project, assignment.pk, "other", "first thought", **JSON)
    send(client, project, assignment.pk, "other", "second thought", **JSON)
    send(client, project, assignment.pk, "offensive", "", **JSON)

    assert sorted(ItemFeedback.objects.values_list("kind", "text")) == [
        ("offensive", ""),
        ("other", "second thought"),
    ]


@pytest.mark.parametrize(
    ("kind", "text", "why"),
    [("spam", "", "Say what is wrong"), ("", "", "Say what is wrong"), ("other", "x" * 2001, "under 2,000")],
)
def test_it_refuses_an_unknown_kind_or_a_long_note(cast, project, kind, text, why):
    assignment = lease(project, cast.annotator)

    response = send(client_for(cast.annotator), project, assignment.pk, kind, text, **JSON)

    assert response.status_code == 422 and why in response.json()["message"]
    assert not ItemFeedback.objects.exists()


def test_it_rejects_a_note_on_another_annotators_item(cast, project):
    theirs = lease(project, cast.other_annotator)

    response = send(client_for(cast.annotator), project, theirs.pk, **JSON)

    assert response.status_code == 404
    assert not ItemFeedback.objects.exists()


def test_it_rejects_an_outsider(cast, project):
    assignment = lease(project, cast.annotator)

    response = send(client_for(cast.outsider), project, assignment.pk, **JSON)

    assert response.status_code == 404
    assert not ItemFeedback.objects.exists()


def test_reviewers_read_the_notes_on_the_item_and_review_pages(cast, project):
    assignment = lease(project, cast.annotator)
    send(client_for(cast.annotator), project, assignment.pk, "offensive", "A slur in the <b>second</b> line.", **JSON)
    reviewer = client_for(cast.reviewer)

    for url in (
        f"/projects/{project.pk}/items/{assignment.item_id}/",
        f"/projects/{project.pk}/review/{assignment.item_id}/",
    ):
        html = reviewer.get(url).content.decode()
        assert "Annotators' notes" in html and "Offensive" in html and "annotator" in html
        assert "A slur in the &lt;b&gt;second&lt;/b&gt; line." in html  # escaped, never markup


def test_the_workspace_offers_the_note_beside_skip(cast, project):
    html = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/").content.decode()

    assert 'name="feedback_kind" value="ambiguous" checked' in html
    for kind in ("Ambiguous", "Offensive", "Broken text", "Other"):
        assert f"> {kind}</label>" in html
    assert f'formaction="/projects/{project.pk}/annotate/feedback/"' in html
