"""Task distribution: who gets which item next."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.annotation.models import Assignment, AssignmentState
from apps.annotation.services import (
    NoTask,
    annotation_submit,
    assignment_skip,
    leases_expire,
    task_next_for_annotator,
)
from apps.projects.models import GoldLabel, Item, Label, Project
from apps.projects.services import membership_block, project_update
from tests.factories import ItemFactory, MembershipFactory, UserFactory


def next_for(cast, user, **kwargs):
    return task_next_for_annotator(project=Project.objects.get(pk=cast.project.pk), annotator=user, **kwargs)


def answer(cast, user, assignment, label="World"):
    return annotation_submit(
        project=Project.objects.get(pk=cast.project.pk),
        annotator=user,
        assignment_id=assignment.pk,
        value=label,
        submission_id=uuid.uuid4(),
    )


@pytest.fixture
def items(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2})
    return [ItemFactory(project=cast.project, text=f"Story {n}") for n in range(5)]


def test_the_highest_priority_item_goes_first(cast, items):
    Item.objects.filter(pk=items[3].pk).update(priority=5.0)

    task = next_for(cast, cast.annotator)

    assert task.assignment.item_id == items[3].pk
    assert Item.objects.get(pk=items[3].pk).lease_count == 1


def test_without_priorities_items_go_out_in_a_stable_random_order(cast, items):
    expected = list(Item.objects.filter(project=cast.project).order_by("random_key").values_list("pk", flat=True))

    first = next_for(cast, cast.annotator).assignment
    same_item = next_for(cast, cast.other_annotator).assignment  # k=2: room for a second annotator
    ahead = next_for(cast, cast.annotator, exclude_assignment_ids=(first.pk,)).assignment

    assert [first.item_id, same_item.item_id, ahead.item_id] == [expected[0], expected[0], expected[1]]


def test_an_annotator_gets_their_own_live_lease_back_first(cast, items):
    first = next_for(cast, cast.annotator).assignment

    again = next_for(cast, cast.annotator).assignment
    ahead = next_for(cast, cast.annotator, exclude_assignment_ids=(first.pk,)).assignment

    assert again.pk == first.pk
    assert ahead.pk != first.pk and ahead.item_id != first.item_id
    assert Assignment.objects.filter(annotator=cast.annotator, state=AssignmentState.LEASED).count() == 2


def test_no_annotator_gets_an_item_twice(cast, items):
    seen = []
    while (task := next_for(cast, cast.annotator)).assignment is not None:
        seen.append(task.assignment.item_id)
        if len(seen) % 2:
            answer(cast, cast.annotator, task.assignment)
        else:
            assignment_skip(project=cast.project, annotator=cast.annotator, assignment_id=task.assignment.pk)

    assert sorted(seen) == sorted(item.pk for item in items)
    assert task.reason == NoTask.DONE


def test_an_item_never_has_more_than_k_annotations_plus_leases(cast, items):
    third = UserFactory(username="third")
    MembershipFactory(project=cast.project, user=third)
    project_update(project=cast.project, data={"overlap": 2})
    Item.objects.filter(project=cast.project).exclude(pk=items[0].pk).delete()

    a = next_for(cast, cast.annotator)
    b = next_for(cast, cast.other_annotator)
    c = next_for(cast, third)

    assert a.assignment.item_id == b.assignment.item_id == items[0].pk
    assert c.assignment is None and c.reason == NoTask.BUSY
    answer(cast, cast.annotator, a.assignment)
    answer(cast, cast.other_annotator, b.assignment)
    item = Item.objects.get(pk=items[0].pk)
    assert (item.annotation_count, item.lease_count, item.state) == (2, 0, "complete")
    assert next_for(cast, third).reason == NoTask.DONE


def test_expired_leases_give_their_items_back(cast, items):
    project_update(project=cast.project, data={"overlap": 1})
    Item.objects.filter(project=cast.project).exclude(pk=items[0].pk).delete()
    held = next_for(cast, cast.annotator).assignment
    assert next_for(cast, cast.other_annotator).reason == NoTask.BUSY

    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = next_for(cast, cast.other_annotator).assignment

    assert taken.item_id == items[0].pk
    assert Assignment.objects.get(pk=held.pk).state == AssignmentState.EXPIRED
    assert Item.objects.get(pk=items[0].pk).lease_count == 1


def test_an_expired_lease_is_renewed_when_the_item_comes_back_to_its_annotator(cast, items):
    held = next_for(cast, cast.annotator).assignment
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    Item.objects.filter(project=cast.project).exclude(pk=held.item_id).delete()

    again = next_for(cast, cast.annotator).assignment

    assert again.pk == held.pk and again.state == AssignmentState.LEASED
    assert Assignment.objects.filter(item_id=held.item_id, annotator=cast.annotator).count() == 1


def test_expiring_twice_counts_once(cast, items):
    held = next_for(cast, cast.annotator).assignment
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert leases_expire(project=cast.project) == 1
    assert leases_expire(project=cast.project) == 0
    assert Item.objects.get(pk=held.item_id).lease_count == 0


def test_gold_items_are_mixed_in_at_the_gold_ratio(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.25, "overlap": 1})
    Item.objects.bulk_create([Item(project=cast.project, text=f"Regular {n}") for n in range(400)])
    gold = Item.objects.bulk_create([Item(project=cast.project, text=f"Gold {n}", is_gold=True) for n in range(300)])
    GoldLabel.objects.bulk_create(GoldLabel(item=item, label=cast.labels["World"]) for item in gold)

    gold = 0
    for _ in range(300):
        task = next_for(cast, cast.annotator)
        gold += task.assignment.is_gold
        answer(cast, cast.annotator, task.assignment)

    # 300 draws at p=0.25: mean 75, standard deviation 7.5; five deviations either side.
    assert 37 <= gold <= 113


def test_gold_items_have_no_annotator_limit(cast):
    project_update(project=cast.project, data={"gold_ratio": 1.0, "overlap": 1})
    gold = ItemFactory(project=cast.project, is_gold=True)
    GoldLabel.objects.create(item=gold, label=cast.labels["World"])

    first = next_for(cast, cast.annotator).assignment
    second = next_for(cast, cast.other_annotator).assignment

    assert first.item_id == second.item_id == gold.pk
    answer(cast, cast.annotator, first)
    answer(cast, cast.other_annotator, second)
    assert Item.objects.get(pk=gold.pk).annotation_count == 2


def test_the_budget_stops_paid_leases_and_says_why(cast, items):
    project_update(project=cast.project, data={"budget_max_annotations": 2, "overlap": 3})

    a = next_for(cast, cast.annotator).assignment
    b = next_for(cast, cast.annotator, exclude_assignment_ids=(a.pk,)).assignment
    refused = next_for(cast, cast.other_annotator)

    assert refused.assignment is None and refused.reason == NoTask.BUDGET
    assert "budget" in refused.message
    answer(cast, cast.annotator, a)
    assert Project.objects.get(pk=cast.project.pk).budget_spent == 1
    assignment_skip(project=cast.project, annotator=cast.annotator, assignment_id=b.pk)
    assert next_for(cast, cast.other_annotator).assignment is not None  # the skip freed a paid slot


def test_gold_answers_cost_nothing(cast):
    project_update(project=cast.project, data={"gold_ratio": 1.0, "budget_max_annotations": 5})
    ItemFactory(project=cast.project, is_gold=True)

    answer(cast, cast.annotator, next_for(cast, cast.annotator).assignment)

    assert Project.objects.get(pk=cast.project.pk).budget_spent == 0


def test_blocked_annotators_get_nothing(cast, items):
    membership_block(membership=cast.project.memberships.get(user=cast.annotator), reason="gold accuracy 40%")

    task = next_for(cast, cast.annotator)

    assert task.assignment is None and task.reason == NoTask.BLOCKED
    assert not Assignment.objects.filter(annotator=cast.annotator).exists()


def test_a_project_without_labels_hands_out_nothing(cast, items):
    Label.objects.filter(project=cast.project).delete()

    assert next_for(cast, cast.annotator).reason == NoTask.NO_LABELS
