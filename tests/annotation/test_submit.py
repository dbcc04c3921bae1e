"""Submitting, skipping and changing answers."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from apps.annotation.models import Annotation, AnnotationLabel, Assignment, AssignmentState
from apps.annotation.services import (
    EDITABLE_RECENT,
    SubmitRefused,
    annotation_submit,
    annotation_update,
    assignment_skip,
    task_next_for_annotator,
)
from apps.projects.models import Item, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory, UserFactory


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2})
    for n in range(8):
        ItemFactory(project=cast.project, text=f"Story number {n} about the league final.")
    return Project.objects.get(pk=cast.project.pk)


def lease(project, user, **kwargs):
    return task_next_for_annotator(project=project, annotator=user, **kwargs).assignment


def submit(project, user, assignment, value="World", submission_id=None, **kwargs):
    return annotation_submit(
        project=project,
        annotator=user,
        assignment_id=assignment.pk,
        value=value,
        submission_id=submission_id or uuid.uuid4(),
        **kwargs,
    )


def test_a_submit_stores_the_answer_and_updates_the_item(cast, project):
    assignment = lease(project, cast.annotator)

    result = submit(project, cast.annotator, assignment, value=cast.labels["Sports"].pk, duration_ms=3100)

    assert result.created
    annotation = Annotation.objects.get(pk=result.annotation.pk)
    assert list(annotation.labels.values_list("label__name", flat=True)) == ["Sports"]
    assert annotation.duration_ms == 3100 and annotation.assignment_id == assignment.pk
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.annotation_count, item.lease_count, item.state) == (1, 0, "in_progress")
    assert Assignment.objects.get(pk=assignment.pk).state == AssignmentState.SUBMITTED
    assert Project.objects.get(pk=project.pk).budget_spent == 1


def test_the_same_submission_twice_creates_one_answer(cast, project):
    assignment = lease(project, cast.annotator)
    submission = uuid.uuid4()

    first = submit(project, cast.annotator, assignment, submission_id=submission)
    again = submit(project, cast.annotator, assignment, value="Sports", submission_id=submission)

    assert not again.created and again.annotation.pk == first.annotation.pk
    assert Annotation.objects.count() == 1
    assert AnnotationLabel.objects.get().label.name == "World"
    assert Item.objects.get(pk=assignment.item_id).annotation_count == 1


def test_a_double_click_with_a_new_submission_id_answers_with_the_first(cast, project):
    assignment = lease(project, cast.annotator)

    first = submit(project, cast.annotator, assignment)
    second = submit(project, cast.annotator, assignment, value="Sports")

    assert not second.created and second.annotation.pk == first.annotation.pk
    assert Annotation.objects.count() == 1


def test_the_kth_answer_completes_the_item(cast, project):
    a = lease(project, cast.annotator)
    b = lease(project, cast.other_annotator)
    assert a.item_id == b.item_id

    submit(project, cast.annotator, a)
    submit(project, cast.other_annotator, b, value="Sports")

    assert Item.objects.get(pk=a.item_id).state == "complete"
    assert lease(project, UserFactory()).item_id != a.item_id


@pytest.mark.parametrize("value", ["Weather", ["World", "Sports"], 999_999, None, []])
def test_an_invalid_answer_is_refused_and_changes_nothing(cast, project, value):
    assignment = lease(project, cast.annotator)

    with pytest.raises(ValidationError):
        submit(project, cast.annotator, assignment, value=value)

    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).state == AssignmentState.LEASED
    assert Item.objects.get(pk=assignment.item_id).annotation_count == 0


def test_a_label_of_another_project_is_refused(cast, project):
    assignment = lease(project, cast.annotator)

    with pytest.raises(ValidationError):
        submit(project, cast.annotator, assignment, value=cast.other_project.labels.first().pk)


def test_someone_elses_assignment_is_not_found(cast, project):
    assignment = lease(project, cast.annotator)

    with pytest.raises(Http404):
        submit(project, cast.other_annotator, assignment)
    with pytest.raises(Http404):
        submit(cast.other_project, cast.annotator, assignment)
    assert not Annotation.objects.exists()


def test_a_bad_submission_id_is_refused(cast, project):
    assignment = lease(project, cast.annotator)

    with pytest.raises(ValidationError, match="UUID"):
        submit(project, cast.annotator, assignment, submission_id="not-a-uuid")


def test_a_skipped_item_takes_no_answer(cast, project):
    assignment = lease(project, cast.annotator)
    skipped = assignment_skip(project=project, annotator=cast.annotator, assignment_id=assignment.pk, reason="Unclear")

    with pytest.raises(SubmitRefused, match="skipped"):
        submit(project, cast.annotator, assignment)

    assert skipped.skip_reason == "Unclear"
    assert Item.objects.get(pk=assignment.item_id).lease_count == 0
    assert lease(project, cast.annotator).item_id != assignment.item_id


def test_a_late_answer_is_kept_while_the_item_has_room(cast, project):
    assignment = lease(project, cast.annotator)
    Assignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    result = submit(project, cast.annotator, assignment)

    assert result.created
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.annotation_count, item.lease_count) == (1, 0)


def test_a_late_answer_is_refused_when_others_filled_the_item(cast, project):
    project_update(project=project, data={"overlap": 1})
    project.refresh_from_db()
    Item.objects.filter(project=project).exclude(pk=Item.objects.filter(project=project).first().pk).delete()
    late = lease(project, cast.annotator)
    Assignment.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    taken = lease(project, cast.other_annotator)  # the item went to someone else
    submit(project, cast.other_annotator, taken)

    with pytest.raises(SubmitRefused, match="ran out"):
        submit(project, cast.annotator, late)

    assert Annotation.objects.filter(annotator=cast.annotator).count() == 0
    assert Item.objects.get(pk=late.item_id).annotation_count == 1


def test_spans_are_checked_against_the_text_and_each_other(spans_cast):
    project = spans_cast.project
    project_update(project=project, data={"gold_ratio": 0.0})
    ItemFactory(project=project, text="Ada Lovelace met Charles Babbage in London.")
    assignment = lease(Project.objects.get(pk=project.pk), spans_cast.annotator)
    person = spans_cast.labels["Person"].pk

    with pytest.raises(ValidationError, match="overlap"):
        submit(
            project,
            spans_cast.annotator,
            assignment,
            value=[{"start": 0, "end": 12, "label": person}, {"start": 4, "end": 16, "label": person}],
        )
    with pytest.raises(ValidationError, match="outside"):
        submit(project, spans_cast.annotator, assignment, value=[{"start": 30, "end": 90, "label": person}])

    result = submit(
        project,
        spans_cast.annotator,
        assignment,
        value=[{"start": 17, "end": 32, "label": person}, {"start": 0, "end": 12, "label": "Person"}],
    )
    assert list(result.annotation.labels.values_list("start", "end")) == [(0, 12), (17, 32)]


def test_no_entities_is_an_answer(spans_cast):
    project = spans_cast.project
    ItemFactory(project=project, text="Nothing to see here.")
    assignment = lease(project, spans_cast.annotator)

    assert submit(project, spans_cast.annotator, assignment, value=[]).annotation.labels.count() == 0


def test_multi_label_answers_keep_every_label(multi_cast):
    project = multi_cast.project
    ItemFactory(project=project)
    assignment = lease(project, multi_cast.annotator)

    result = submit(project, multi_cast.annotator, assignment, value=["Economy", "Health"])

    assert sorted(result.annotation.labels.values_list("label__name", flat=True)) == ["Economy", "Health"]


def test_recent_answers_can_be_changed(cast, project):
    result = submit(project, cast.annotator, lease(project, cast.annotator))

    annotation_update(
        project=project, annotator=cast.annotator, annotation_id=result.annotation.pk, value="Business", version=1
    )

    assert AnnotationLabel.objects.get(annotation=result.annotation).label.name == "Business"


def test_only_the_latest_answers_can_be_changed(cast, project):
    answers = [
        submit(project, cast.annotator, lease(project, cast.annotator)).annotation for _ in range(EDITABLE_RECENT + 1)
    ]

    with pytest.raises(SubmitRefused, match="last 5"):
        annotation_update(
            project=project, annotator=cast.annotator, annotation_id=answers[0].pk, value="Sports", version=1
        )

    assert AnnotationLabel.objects.get(annotation=answers[0]).label.name == "World"


def test_consolidated_answers_cannot_be_changed(cast, project):
    result = submit(project, cast.annotator, lease(project, cast.annotator))
    Item.objects.filter(pk=result.annotation.item_id).update(consolidated_at=timezone.now())

    with pytest.raises(SubmitRefused):
        annotation_update(
            project=project, annotator=cast.annotator, annotation_id=result.annotation.pk, value="Sports", version=1
        )


def test_another_annotators_answer_cannot_be_changed(cast, project):
    result = submit(project, cast.annotator, lease(project, cast.annotator))

    with pytest.raises(Http404):
        annotation_update(
            project=project,
            annotator=cast.other_annotator,
            annotation_id=result.annotation.pk,
            value="Sports",
            version=1,
        )


def test_time_spent_falls_back_to_the_lease_age_when_the_client_says_nonsense(cast, project):
    assignment = lease(project, cast.annotator)
    Assignment.objects.filter(pk=assignment.pk).update(leased_at=timezone.now() - timedelta(seconds=42))

    result = submit(project, cast.annotator, assignment, duration_ms=10**9)

    assert 41_000 <= result.annotation.duration_ms <= 44_000
