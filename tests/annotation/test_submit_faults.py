"""Submits under faults: a submission id reused on another item, replays after a timeout,
a database error half-way through, a stale change, a database that does not answer."""

import uuid
from datetime import timedelta

import pytest
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from apps.annotation import services
from apps.annotation.models import Annotation, AnnotationLabel, Assignment, AssignmentState
from apps.annotation.services import SubmitRefused, annotation_submit, annotation_update, task_next_for_annotator
from apps.projects import selectors as project_selectors
from apps.projects.models import Item, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2})
    for n in range(6):
        ItemFactory(project=cast.project, text=f"Story number {n} about the league final.")
    return Project.objects.get(pk=cast.project.pk)


def lease(project, user, holding=()):
    return task_next_for_annotator(project=project, annotator=user, exclude_assignment_ids=holding).assignment


def submit(project, user, assignment, value="World", submission_id=None):
    return annotation_submit(
        project=project,
        annotator=user,
        assignment_id=assignment.pk,
        value=value,
        submission_id=submission_id or uuid.uuid4(),
    )


def state_of(project):
    """Everything a submit writes, to compare before and after."""
    return (
        list(Annotation.objects.values_list("pk", "assignment_id", "version")),
        list(AnnotationLabel.objects.values_list("annotation_id", "label_id")),
        list(Assignment.objects.order_by("pk").values_list("pk", "state", "finished_at")),
        list(Item.objects.order_by("pk").values_list("pk", "annotation_count", "lease_count", "state")),
        Project.objects.filter(pk=project.pk).values_list("budget_spent", "pending_consolidation").get(),
    )


# --- one submission id, two items ------------------------------------------------------------


def test_a_submission_id_reused_on_another_item_is_refused(cast, project):
    first = lease(project, cast.annotator)
    second = lease(project, cast.annotator, holding=(first.pk,))
    submission = uuid.uuid4()
    submit(project, cast.annotator, first, submission_id=submission)
    before = state_of(project)

    with pytest.raises(SubmitRefused, match=f"already used for your answer on item {first.item_id}"):
        submit(project, cast.annotator, second, value="Sports", submission_id=submission)

    assert state_of(project) == before
    assert Assignment.objects.get(pk=second.pk).state == AssignmentState.LEASED


def test_a_reused_submission_id_is_refused_even_on_an_answered_item(cast, project):
    first = lease(project, cast.annotator)
    second = lease(project, cast.annotator, holding=(first.pk,))
    used = uuid.uuid4()
    submit(project, cast.annotator, first, submission_id=used)
    submit(project, cast.annotator, second)

    with pytest.raises(SubmitRefused, match="already used"):
        submit(project, cast.annotator, second, submission_id=used)


def test_the_api_answers_a_reused_submission_id_with_409(cast, project):
    api = api_for(cast.annotator)
    first = lease(project, cast.annotator)
    second = lease(project, cast.annotator, holding=(first.pk,))
    submission = str(uuid.uuid4())
    url = f"/api/projects/{project.pk}/annotations/"
    created = api.post(url, {"assignment_id": first.pk, "value": "World", "submission_id": submission}, format="json")

    reused = api.post(url, {"assignment_id": second.pk, "value": "Sports", "submission_id": submission}, format="json")

    assert created.status_code == 201
    assert reused.status_code == 409
    assert "already used" in reused.json()["detail"]
    assert Annotation.objects.count() == 1
    assert Assignment.objects.get(pk=second.pk).state == AssignmentState.LEASED


def test_the_workspace_answers_a_reused_submission_id_with_409(cast, project):
    client = client_for(cast.annotator)
    first = lease(project, cast.annotator)
    second = lease(project, cast.annotator, holding=(first.pk,))
    submission = str(uuid.uuid4())
    url = f"/projects/{project.pk}/annotate/submit/"
    sports = cast.labels["Sports"].pk
    client.post(url, {"assignment": first.pk, "submission_id": submission, "label": cast.labels["World"].pk}, **JSON)

    reused = client.post(url, {"assignment": second.pk, "submission_id": submission, "label": sports}, **JSON)
    plain = client.post(url, {"assignment": second.pk, "submission_id": submission, "label": sports}, follow=True)

    assert reused.status_code == 409
    assert not reused.json()["saved"] and "already used" in reused.json()["message"]
    assert b"already used" in plain.content
    assert Annotation.objects.count() == 1
    assert Assignment.objects.get(pk=second.pk).state == AssignmentState.LEASED


# --- double submits and replays ------------------------------------------------------------------


def test_a_replay_after_the_lease_ran_out_returns_the_first_answer(cast, project):
    """The client's request was committed but its reply was lost; it tries again much later,
    after the lease's time and a sweep of expired leases."""
    assignment = lease(project, cast.annotator)
    submission = uuid.uuid4()
    first = submit(project, cast.annotator, assignment, submission_id=submission)
    Assignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    services.leases_expire(project=project)
    before = state_of(project)

    again = submit(project, cast.annotator, assignment, value="Sports", submission_id=submission)

    assert not again.created and again.annotation.pk == first.annotation.pk
    assert [part.label_id for part in again.answer] == [cast.labels["World"].pk]
    assert state_of(project) == before


def test_the_api_answers_a_double_submit_with_one_annotation(cast, project):
    api = api_for(cast.annotator)
    assignment = lease(project, cast.annotator)
    body = {"assignment_id": assignment.pk, "value": "World", "submission_id": str(uuid.uuid4())}
    url = f"/api/projects/{project.pk}/annotations/"

    first = api.post(url, body, format="json")
    again = api.post(url, body, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["repeated"] and again.json()["annotation"]["id"] == first.json()["annotation"]["id"]
    assert Annotation.objects.count() == 1
    assert Item.objects.get(pk=assignment.item_id).annotation_count == 1
    assert Project.objects.get(pk=project.pk).budget_spent == 1


# --- a database error half-way ---------------------------------------------------------------------


def _fail_after(real):
    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise DatabaseError("injected: the connection dropped half-way through the submit")

    return failing


@pytest.mark.parametrize("step", ["_parts_write", "item_on_complete"])
def test_a_database_error_half_way_leaves_nothing_and_the_retry_counts_once(cast, project, monkeypatch, step):
    """The fault comes after the annotation and its parts (or the item's counters) were
    written; the transaction takes all of it back, and the same submit again succeeds."""
    project_update(project=project, data={"overlap": 1})
    project.refresh_from_db()
    assignment = lease(project, cast.annotator)
    submission = uuid.uuid4()
    before = state_of(project)
    real = getattr(services, step)
    monkeypatch.setattr(services, step, _fail_after(real))

    with pytest.raises(DatabaseError, match="injected"):
        submit(project, cast.annotator, assignment, value="Sports", submission_id=submission)

    assert state_of(project) == before
    assert not Annotation.objects.exists() and not AnnotationLabel.objects.exists()
    monkeypatch.setattr(services, step, real)
    retried = submit(project, cast.annotator, assignment, value="Sports", submission_id=submission)
    assert retried.created
    assert Annotation.objects.get().labels.get().label.name == "Sports"
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.annotation_count, item.lease_count, item.state) == (1, 0, "complete")


def test_the_workspace_gets_a_503_it_can_retry_when_the_database_drops(cast, project, monkeypatch):
    client = client_for(cast.annotator)
    assignment = lease(project, cast.annotator)
    body = {"assignment": assignment.pk, "submission_id": str(uuid.uuid4()), "label": cast.labels["World"].pk}
    url = f"/projects/{project.pk}/annotate/submit/"
    real = services._parts_write
    monkeypatch.setattr(services, "_parts_write", _fail_after_operational(real))

    failed = client.post(url, body, **JSON)

    assert failed.status_code == 503 and failed["Retry-After"]
    assert "nothing was saved" in failed.json()["message"]
    assert not Annotation.objects.exists()
    monkeypatch.setattr(services, "_parts_write", real)
    retried = client.post(url, body, **JSON)
    assert retried.status_code == 200 and retried.json()["saved"]
    assert Annotation.objects.count() == 1


def _fail_after_operational(real):
    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise OperationalError("injected: server closed the connection unexpectedly")

    return failing


def test_pages_and_the_api_answer_503_not_a_traceback_when_the_database_is_down(cast, project, monkeypatch):
    def down(**kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    monkeypatch.setattr(project_selectors, "project_get_for_user", down)

    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")
    api = api_for(cast.annotator).get(f"/api/projects/{project.pk}/")

    assert page.status_code == 503 and b"Try again" in page.content and b"Traceback" not in page.content
    assert b"5432" not in page.content  # no server details leak
    assert api.status_code == 503 and "not answering" in api.json()["detail"]


# --- a stale change -----------------------------------------------------------------------------------


def test_a_stale_change_cannot_overwrite_a_newer_one(cast, project):
    annotation = submit(project, cast.annotator, lease(project, cast.annotator)).annotation
    # Two tabs opened the answer at version 1; the first saves.
    changed = annotation_update(
        project=project, annotator=cast.annotator, annotation_id=annotation.pk, value="Sports", version=1
    )

    with pytest.raises(SubmitRefused, match="changed since you opened it"):
        annotation_update(
            project=project, annotator=cast.annotator, annotation_id=annotation.pk, value="Business", version=1
        )

    assert changed.version == 2
    stored = Annotation.objects.get(pk=annotation.pk)
    assert stored.version == 2 and stored.labels.get().label.name == "Sports"


def test_a_change_must_name_its_version(cast, project):
    annotation = submit(project, cast.annotator, lease(project, cast.annotator)).annotation

    for version in (None, "", "abc", 0):
        with pytest.raises(services.ValidationError):
            annotation_update(
                project=project, annotator=cast.annotator, annotation_id=annotation.pk, value="Sports", version=version
            )

    assert Annotation.objects.get(pk=annotation.pk).labels.get().label.name == "World"


def test_the_api_refuses_a_stale_change_with_409(cast, project):
    api = api_for(cast.annotator)
    annotation = submit(project, cast.annotator, lease(project, cast.annotator)).annotation
    url = f"/api/projects/{project.pk}/annotations/{annotation.pk}/"

    fresh = api.patch(url, {"value": "Sports", "version": 1}, format="json")
    stale = api.patch(url, {"value": "Business", "version": 1}, format="json")
    unnamed = api.patch(url, {"value": "Business"}, format="json")

    assert fresh.status_code == 200 and fresh.json()["version"] == 2 and fresh.json()["value"] == "Sports"
    assert stale.status_code == 409 and "changed since" in stale.json()["detail"]
    assert unnamed.status_code == 400 and "version" in unnamed.json()
    assert Annotation.objects.get(pk=annotation.pk).labels.get().label.name == "Sports"


def test_the_edit_page_refuses_a_stale_change_with_409_and_shows_the_newer_answer(cast, project):
    client = client_for(cast.annotator)
    annotation = submit(project, cast.annotator, lease(project, cast.annotator)).annotation
    url = f"/projects/{project.pk}/annotate/answers/{annotation.pk}/"
    page = client.get(url)
    assert b'name="version" value="1"' in page.content

    saved = client.post(url, {"label": cast.labels["Sports"].pk, "version": 1})
    stale = client.post(url, {"label": cast.labels["Business"].pk, "version": 1})

    assert saved.status_code == 302
    assert stale.status_code == 409
    assert b"changed since you opened it" in stale.content
    assert b'name="version" value="2"' in stale.content  # the page now holds the newer answer
    assert Annotation.objects.get(pk=annotation.pk).labels.get().label.name == "Sports"
