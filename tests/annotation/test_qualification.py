"""The qualification test and training mode (apps/annotation/qualification.py): who must take
them, drawing, scoring, attempts, and that neither touches annotations, the budget or
consolidation."""

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from apps.annotation.models import (
    Annotation,
    AnnotatorQuality,
    Assignment,
    ConsolidationRun,
    ItemConsensus,
    PracticeAnswer,
    QualificationAttempt,
)
from apps.annotation.presentation import practice_feedback_context
from apps.annotation.qualification import (
    QualificationRefused,
    Stage,
    crowd_notices,
    crowd_stage,
    practice_answer,
    practice_item_next,
    qualification_answer,
    qualification_results,
    qualification_start,
    qualification_state,
)
from apps.annotation.services import NoTask, annotation_submit, task_next_for_annotator
from apps.projects.answers import LabelIndex
from apps.projects.models import GoldLabel, Item, Membership, Project
from apps.projects.services import project_update


def gold(project: Project, text: str, *labels) -> Item:
    item = Item.objects.create(project=project, text=text, is_gold=True)
    for label in labels:
        GoldLabel.objects.create(item=item, label=label)
    return item


def fresh(project: Project) -> Project:
    return Project.objects.get(pk=project.pk)


@pytest.fixture
def tested(cast):
    """A project with a 3-item test (pass mark 2/3, two attempts), 5 gold items answered
    "Sports" and 4 items to label."""
    project_update(
        project=cast.project,
        data={"qualification_size": 3, "qualification_pass_mark": 0.66, "qualification_attempts": 2, "gold_ratio": 0},
    )
    for n in range(5):
        gold(cast.project, f"Gold story {n}: the match ended 2-1.", cast.labels["Sports"])
    for n in range(4):
        Item.objects.create(project=cast.project, text=f"Story {n} to label.")
    return fresh(cast.project)


def take(project, user, *, right: int) -> QualificationAttempt:
    """Start an attempt and answer it: the first ``right`` items right ("Sports"), the rest
    wrong ("World")."""
    attempt = qualification_start(project=project, annotator=user)
    labels = {label.name: label.pk for label in project.labels.all()}
    for n, item_id in enumerate(attempt.item_ids):
        attempt = qualification_answer(
            project=project, annotator=user, item_id=item_id, value=labels["Sports" if n < right else "World"]
        )
    return attempt


def test_a_project_without_test_or_training_costs_no_query(cast, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert crowd_stage(project=cast.project, annotator=cast.annotator) == Stage.WORK


def test_a_newcomer_gets_no_real_item_until_they_pass(cast, tested):
    outcome = task_next_for_annotator(project=tested, annotator=cast.annotator)

    assert outcome.assignment is None and outcome.reason == NoTask.QUALIFICATION
    assert "qualification test" in outcome.message
    assert not Assignment.objects.filter(annotator=cast.annotator).exists()


def test_the_draw_takes_distinct_gold_items_and_stays_put(cast, tested):
    attempt = qualification_start(project=tested, annotator=cast.annotator)
    again = qualification_start(project=tested, annotator=cast.annotator)

    assert again.pk == attempt.pk and again.item_ids == attempt.item_ids
    assert len(set(attempt.item_ids)) == 3
    assert set(Item.objects.filter(pk__in=attempt.item_ids).values_list("is_gold", flat=True)) == {True}
    assert attempt.number == 1 and attempt.finished_at is None


def test_a_retry_draws_items_the_first_attempt_did_not_show(cast, tested):
    first = take(tested, cast.annotator, right=0)
    second = qualification_start(project=tested, annotator=cast.annotator)

    # Five gold items, three per attempt: the two unseen ones come first.
    assert len(set(first.item_ids) & set(second.item_ids)) == 1
    assert second.number == 2


def test_passing_qualifies_and_unlocks_real_work(cast, tested):
    attempt = take(tested, cast.annotator, right=3)

    assert attempt.passed is True and attempt.score == 1.0 and attempt.finished_at is not None
    assert Membership.objects.get(project=tested, user=cast.annotator).qualified_at is not None
    outcome = task_next_for_annotator(project=tested, annotator=cast.annotator)
    assert outcome.assignment is not None and not outcome.assignment.item.is_gold


def test_a_score_at_the_pass_mark_passes(cast, tested):
    project_update(project=tested, data={"qualification_pass_mark": 2 / 3})

    attempt = take(fresh(tested), cast.annotator, right=2)

    assert attempt.score == pytest.approx(2 / 3) and attempt.passed is True


def test_failing_leaves_the_score_and_a_retry_then_no_more_attempts(cast, tested):
    first = take(tested, cast.annotator, right=1)

    assert first.passed is False and first.score == pytest.approx(1 / 3)
    assert Membership.objects.get(project=tested, user=cast.annotator).qualified_at is None
    state = qualification_state(project=tested, annotator=cast.annotator)
    assert state.step == "retry" and state.attempts_left == 1 and state.latest == first

    take(tested, cast.annotator, right=0)

    assert crowd_stage(project=tested, annotator=cast.annotator) == Stage.NOT_QUALIFIED
    assert qualification_state(project=tested, annotator=cast.annotator).step == "failed"
    with pytest.raises(QualificationRefused, match="used all 2 attempts"):
        qualification_start(project=tested, annotator=cast.annotator)
    assert task_next_for_annotator(project=tested, annotator=cast.annotator).reason == NoTask.NOT_QUALIFIED
    assert QualificationAttempt.objects.filter(annotator=cast.annotator).count() == 2


def test_test_answers_touch_no_annotation_budget_or_consolidation(cast, tested):
    project_update(project=tested, data={"budget_max_annotations": 10, "consolidate_every": 1})
    project = fresh(tested)

    take(project, cast.annotator, right=3)

    project.refresh_from_db()
    assert not Annotation.objects.exists() and not ItemConsensus.objects.exists()
    assert not ConsolidationRun.objects.exists() and not AnnotatorQuality.objects.exists()
    assert project.budget_spent == 0 and project.pending_consolidation == 0
    assert set(Item.objects.filter(is_gold=True).values_list("annotation_count", flat=True)) == {0}


def test_multi_label_tests_score_the_overlap_of_label_sets(multi_cast):
    project_update(project=multi_cast.project, data={"qualification_size": 1, "qualification_pass_mark": 0.5})
    project = fresh(multi_cast.project)
    politics, economy = multi_cast.labels["Politics"], multi_cast.labels["Economy"]
    item = gold(project, "The budget passed parliament.", politics, economy)

    qualification_start(project=project, annotator=multi_cast.annotator)
    attempt = qualification_answer(
        project=project, annotator=multi_cast.annotator, item_id=item.pk, value=[politics.pk]
    )

    assert attempt.score == pytest.approx(0.5) and attempt.passed is True


def test_a_second_answer_to_an_item_keeps_the_first(cast, tested):
    attempt = qualification_start(project=tested, annotator=cast.annotator)
    first_item = attempt.item_ids[0]
    qualification_answer(project=tested, annotator=cast.annotator, item_id=first_item, value=cast.labels["World"].pk)

    again = qualification_answer(
        project=tested, annotator=cast.annotator, item_id=first_item, value=cast.labels["Sports"].pk
    )

    assert again.answers[str(first_item)] == [{"start": None, "end": None, "label_id": cast.labels["World"].pk}]


def test_answers_outside_the_attempt_or_invalid_are_refused(cast, tested):
    attempt = qualification_start(project=tested, annotator=cast.annotator)
    other_gold = Item.objects.filter(is_gold=True).exclude(pk__in=attempt.item_ids).first()

    with pytest.raises(Http404):
        qualification_answer(project=tested, annotator=cast.annotator, item_id=other_gold.pk, value=1)
    with pytest.raises(ValidationError):
        qualification_answer(project=tested, annotator=cast.annotator, item_id=attempt.item_ids[0], value=999_999)
    with pytest.raises(QualificationRefused, match="no test under way"):
        qualification_answer(project=tested, annotator=cast.other_annotator, item_id=attempt.item_ids[0], value=1)
    attempt.refresh_from_db()
    assert attempt.answers == {}


def test_fewer_gold_items_than_the_test_size_test_on_those_there_are(cast, tested):
    project_update(project=tested, data={"qualification_size": 10})
    project = fresh(tested)

    attempt = qualification_start(project=project, annotator=cast.annotator)

    assert len(attempt.item_ids) == 5
    assert crowd_notices(project=project) == [
        "The qualification test is set to 10 items but the project has only 5 gold items, so the test uses those 5."
    ]


def test_a_test_without_gold_items_is_not_ready(cast):
    project_update(project=cast.project, data={"qualification_size": 5})
    project = fresh(cast.project)

    with pytest.raises(QualificationRefused, match="not ready"):
        qualification_start(project=project, annotator=cast.annotator)
    assert "has none" in crowd_notices(project=project)[0]


def test_an_item_taken_out_of_the_gold_set_mid_test_is_neither_shown_nor_scored(cast, tested):
    attempt = qualification_start(project=tested, annotator=cast.annotator)
    Item.objects.filter(pk=attempt.item_ids[1]).update(is_gold=False)

    for item_id in (attempt.item_ids[0], attempt.item_ids[2]):
        attempt = qualification_answer(
            project=tested, annotator=cast.annotator, item_id=item_id, value=cast.labels["Sports"].pk
        )

    assert attempt.finished_at is not None and attempt.score == 1.0


def test_people_already_at_work_and_managers_are_not_sent_to_the_test(cast, tested):
    project_update(project=tested, data={"qualification_size": 0})
    working = fresh(tested)
    lease = task_next_for_annotator(project=working, annotator=cast.annotator).assignment
    annotation_submit(
        project=working,
        annotator=cast.annotator,
        assignment_id=lease.pk,
        value=cast.labels["World"].pk,
        submission_id="7c3e1d2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f",
    )
    project_update(project=working, data={"qualification_size": 3})
    project = fresh(working)

    assert crowd_stage(project=project, annotator=cast.annotator) == Stage.WORK
    assert crowd_stage(project=project, annotator=cast.manager) == Stage.WORK
    assert crowd_stage(project=project, annotator=cast.other_annotator) == Stage.TEST


def test_results_per_annotator_for_the_members_page(cast, tested):
    take(tested, cast.annotator, right=1)
    take(tested, cast.annotator, right=3)
    qualification_start(project=tested, annotator=cast.other_annotator)

    results = qualification_results(project=tested)

    assert results[cast.annotator.pk] == {"attempts": 2, "under_way": False, "best": 1.0, "passed": True}
    assert results[cast.other_annotator.pk] == {"attempts": 0, "under_way": True, "best": None, "passed": False}


# --- training ----------------------------------------------------------------------------------------


@pytest.fixture
def training(cast):
    """Training on 2 items, no test; 3 gold items ("Sports"), described labels, 3 items to label."""
    project_update(project=cast.project, data={"training_items": 2, "gold_ratio": 0})
    cast.labels["Sports"].description = "Games, matches, players and clubs."
    cast.labels["Sports"].save()
    for n in range(3):
        gold(cast.project, f"Gold story {n}: the match ended 2-1.", cast.labels["Sports"])
    for n in range(3):
        Item.objects.create(project=cast.project, text=f"Story {n} to label.")
    return fresh(cast.project)


def practise(project, user, label) -> PracticeAnswer:
    item = practice_item_next(project=project, annotator=user)
    return practice_answer(project=project, annotator=user, item_id=item.pk, value=label.pk)


def test_a_newcomer_practises_on_gold_items_first(cast, training):
    outcome = task_next_for_annotator(project=training, annotator=cast.annotator)

    assert outcome.assignment is None and outcome.reason == NoTask.TRAINING
    assert practice_item_next(project=training, annotator=cast.annotator).is_gold


def test_training_comes_after_the_test(cast, training):
    project_update(project=training, data={"qualification_size": 1, "qualification_pass_mark": 1.0})
    project = fresh(training)

    assert crowd_stage(project=project, annotator=cast.annotator) == Stage.TEST
    take(project, cast.annotator, right=1)
    assert crowd_stage(project=project, annotator=cast.annotator) == Stage.TRAINING


def test_practice_feedback_shows_the_right_answer_and_what_it_means(cast, training):
    answer = practise(training, cast.annotator, cast.labels["World"])

    assert answer.score == 0.0 and list(answer.parts.label_ids) == [cast.labels["World"].pk]
    context = practice_feedback_context(project=training, labels=LabelIndex.for_project(training), practice=answer)
    assert context["verdict"] == "wrong"
    assert [label.name for label in context["truth"]["labels"]] == ["Sports"]
    assert [label.name for label in context["given"]["labels"]] == ["World"]
    assert [label.description for label in context["explained"]] == ["Games, matches, players and clubs."]
    assert (context["position"], context["total"]) == (1, 2)


def test_after_n_practice_items_real_work_begins(cast, training):
    practise(training, cast.annotator, cast.labels["World"])
    practise(training, cast.annotator, cast.labels["Sports"])

    assert crowd_stage(project=training, annotator=cast.annotator) == Stage.WORK
    outcome = task_next_for_annotator(project=training, annotator=cast.annotator)
    assert outcome.assignment is not None and not outcome.assignment.item.is_gold
    assert PracticeAnswer.objects.filter(annotator=cast.annotator).count() == 2


def test_practice_answers_touch_no_annotation_budget_consolidation_or_blocking(cast, training):
    project_update(
        project=training,
        data={"budget_max_annotations": 10, "consolidate_every": 1, "quality_min_gold": 1, "quality_threshold": 0.9},
    )
    project = fresh(training)

    practise(project, cast.annotator, cast.labels["World"])
    practise(project, cast.annotator, cast.labels["World"])

    project.refresh_from_db()
    assert not Annotation.objects.exists() and not ItemConsensus.objects.exists()
    assert not ConsolidationRun.objects.exists() and not AnnotatorQuality.objects.exists()
    assert project.budget_spent == 0 and project.pending_consolidation == 0
    assert not Membership.objects.get(project=project, user=cast.annotator).is_blocked


def test_a_practised_gold_item_never_checks_the_same_person(cast, training):
    practised = {practise(training, cast.annotator, cast.labels["Sports"]).item_id for _ in range(2)}
    project_update(project=training, data={"gold_ratio": 1.0})

    outcome = task_next_for_annotator(project=fresh(training), annotator=cast.annotator)

    assert outcome.assignment.item.is_gold and outcome.assignment.item_id not in practised


def test_practice_refuses_another_item_than_the_current_one(cast, training):
    current = practice_item_next(project=training, annotator=cast.annotator)
    other = Item.objects.filter(is_gold=True).exclude(pk=current.pk).first()

    with pytest.raises(QualificationRefused, match="not your current practice item"):
        practice_answer(project=training, annotator=cast.annotator, item_id=other.pk, value=cast.labels["Sports"].pk)
    assert not PracticeAnswer.objects.exists()


def test_a_repeated_practice_answer_keeps_the_first(cast, training):
    first = practise(training, cast.annotator, cast.labels["World"])

    again = practice_answer(
        project=training, annotator=cast.annotator, item_id=first.item_id, value=cast.labels["Sports"].pk
    )

    assert again.pk == first.pk and again.score == 0.0


def test_fewer_gold_items_than_training_items_practise_on_those_there_are(cast, training):
    project_update(project=training, data={"training_items": 5})
    project = fresh(training)

    for _ in range(3):
        practise(project, cast.annotator, cast.labels["Sports"])

    assert crowd_stage(project=project, annotator=cast.annotator) == Stage.WORK
    assert "practise on all of them" in crowd_notices(project=project)[0]


def test_entity_tests_score_the_f1_of_exactly_matching_spans(spans_cast):
    project_update(project=spans_cast.project, data={"qualification_size": 1, "qualification_pass_mark": 0.8})
    project = fresh(spans_cast.project)
    person, place = spans_cast.labels["Person"], spans_cast.labels["Location"]
    text = "Maria Okafor landed in Lisbon."
    item = Item.objects.create(project=project, text=text, is_gold=True)
    GoldLabel.objects.create(item=item, label=person, start=0, end=12)
    GoldLabel.objects.create(item=item, label=place, start=23, end=29)

    qualification_start(project=project, annotator=spans_cast.annotator)
    attempt = qualification_answer(
        project=project,
        annotator=spans_cast.annotator,
        item_id=item.pk,
        value=[{"start": 0, "end": 12, "label_id": person.pk}],
    )

    # One of two gold spans found, nothing wrong marked: F1 = 2/3, below the pass mark.
    assert attempt.score == pytest.approx(2 / 3) and attempt.passed is False
