"""The per-person limit (Project.max_items_per_annotator): answers plus live leases never
pass it; expired leases and skips do not count; a late answer on a lapsed lease is checked
too. The concurrency test on PostgreSQL is tests/integration/test_personal_limit_concurrency.py."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.annotation.models import Annotation, Assignment, AssignmentState
from apps.annotation.services import (
    NoTask,
    SubmitRefused,
    annotation_submit,
    assignment_skip,
    task_next_for_annotator,
)
from apps.projects.models import GoldLabel, Item, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 3, "max_items_per_annotator": 3})
    for n in range(8):
        ItemFactory(project=cast.project, text=f"Story {n}")
    return Project.objects.get(pk=cast.project.pk)


def next_for(project, user, held=()):
    return task_next_for_annotator(project=project, annotator=user, exclude_assignment_ids=tuple(held))


def answer(project, user, assignment):
    return annotation_submit(
        project=project, annotator=user, assignment_id=assignment.pk, value="World", submission_id=uuid.uuid4()
    )


def test_a_person_gets_no_item_past_their_limit(cast, project):
    for _ in range(3):
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    refused = next_for(project, cast.annotator)

    assert refused.assignment is None and refused.reason == NoTask.LIMIT
    assert "as many items as one person may" in refused.message
    assert Annotation.objects.filter(annotator=cast.annotator).count() == 3
    assert not Assignment.objects.filter(annotator=cast.annotator, state=AssignmentState.LEASED).exists()


def test_live_leases_count_toward_the_limit(cast, project):
    """The workspace holds the next item ahead: at the limit, no lease beyond it is made."""
    first = next_for(project, cast.annotator).assignment
    answer(project, cast.annotator, first)
    current = next_for(project, cast.annotator).assignment
    ahead = next_for(project, cast.annotator, held=[current.pk]).assignment

    beyond = next_for(project, cast.annotator, held=[current.pk, ahead.pk])

    assert beyond.assignment is None and beyond.reason == NoTask.LIMIT
    assert Assignment.objects.filter(annotator=cast.annotator).count() == 3


def test_the_own_live_lease_still_comes_back_at_the_limit(cast, project):
    held = [next_for(project, cast.annotator).assignment]
    for _ in range(2):
        held.append(next_for(project, cast.annotator, held=[a.pk for a in held]).assignment)

    reload = next_for(project, cast.annotator)

    assert reload.assignment is not None and reload.assignment.pk == held[0].pk


def test_expired_leases_and_skips_give_the_room_back(cast, project):
    lapsed = next_for(project, cast.annotator).assignment
    Assignment.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    skipped = next_for(project, cast.annotator).assignment
    assignment_skip(project=project, annotator=cast.annotator, assignment_id=skipped.pk)

    taken = [next_for(project, cast.annotator).assignment]
    for _ in range(2):
        taken.append(next_for(project, cast.annotator, held=[a.pk for a in taken]).assignment)

    assert all(assignment is not None for assignment in taken)
    assert next_for(project, cast.annotator, held=[a.pk for a in taken]).reason == NoTask.LIMIT


def test_gold_answers_count_as_items_too(cast, project):
    gold = ItemFactory(project=project, text="A gold story", is_gold=True)
    GoldLabel.objects.create(item=gold, label=cast.labels["World"])
    project_update(project=project, data={"gold_ratio": 1.0})
    project = Project.objects.get(pk=project.pk)
    answer(project, cast.annotator, next_for(project, cast.annotator).assignment)
    project_update(project=project, data={"gold_ratio": 0.0})
    project = Project.objects.get(pk=project.pk)

    for _ in range(2):
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    assert Annotation.objects.filter(annotator=cast.annotator, is_gold=True).count() == 1
    assert next_for(project, cast.annotator).reason == NoTask.LIMIT


def test_the_limit_is_per_person(cast, project):
    for _ in range(3):
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    assert next_for(project, cast.other_annotator).assignment is not None


def test_without_a_limit_a_person_labels_on(cast, project):
    project_update(project=project, data={"max_items_per_annotator": None})
    project = Project.objects.get(pk=project.pk)

    for _ in range(5):
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    assert next_for(project, cast.annotator).assignment is not None


def test_a_late_answer_past_the_limit_is_refused_and_saves_nothing(cast, project):
    lapsed = next_for(project, cast.annotator).assignment
    Assignment.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for _ in range(3):  # the room the lapsed lease gave back, used up
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    with pytest.raises(SubmitRefused) as refused:
        answer(project, cast.annotator, lapsed)

    assert "the most items one person may label" in str(refused.value)
    assert not Annotation.objects.filter(assignment=lapsed).exists()
    assert Annotation.objects.filter(annotator=cast.annotator).count() == 3
    assert Item.objects.get(pk=lapsed.item_id).annotation_count == 0


def test_the_api_says_the_limit_is_reached(cast, project):
    for _ in range(3):
        answer(project, cast.annotator, next_for(project, cast.annotator).assignment)

    body = api_for(cast.annotator).post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()

    assert body["task"] is None and body["reason"] == "limit"
