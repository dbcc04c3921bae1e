"""Consolidation in a project: provisional labels, the full pass, dynamic overlap,
reviewer overrides, blocking, and when runs are triggered."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.annotation.consensus import consensus_override, consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import AnnotatorQuality, ConsolidationRun, ItemConsensus
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.answers import Answer, LabelPart
from apps.projects.jobs import JobState
from apps.projects.models import GoldLabel, Item, Membership, Project, Role
from apps.projects.services import membership_unblock, project_update
from tests.factories import ItemFactory, MembershipFactory, UserFactory


def crowd(project, n):
    users = []
    for i in range(n):
        user = UserFactory(username=f"crowd{i}")
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        users.append(user)
    return users


def answer(project, user, value, item=None):
    """Lease (the given item, when it is the only one with room) and answer it."""
    project = Project.objects.get(pk=project.pk)
    task = task_next_for_annotator(project=project, annotator=user).assignment
    assert item is None or task.item_id == item.pk
    return annotation_submit(
        project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
    ).annotation


def run_now(project, method=""):
    run = consolidation_request(project=Project.objects.get(pk=project.pk), method=method)
    return consolidation_run(run_id=run.pk) or run


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"overlap": 3, "gold_ratio": 0.0, "consolidate_every": 1000})
    return Project.objects.get(pk=cast.project.pk)


def test_an_item_gets_a_provisional_label_when_it_reaches_k(project):
    item = ItemFactory(project=project)
    users = crowd(project, 3)

    for user, value in zip(users, ["Sports", "Sports", "World"], strict=True):
        answer(project, user, value, item)

    consensus = ItemConsensus.objects.get(item=item)
    assert consensus.is_provisional and consensus.method == "weighted vote"
    assert consensus.parts == Answer([LabelPart(None, None, project.labels.get(name="Sports").pk)])
    assert 0.5 < consensus.confidence < 1
    assert Item.objects.get(pk=item.pk).state == "complete"


def test_the_provisional_vote_trusts_skilled_annotators(project):
    item = ItemFactory(project=project)
    expert, *novices = crowd(project, 3)
    AnnotatorQuality.objects.create(project=project, annotator=expert, skill=0.99)
    for novice in novices:
        AnnotatorQuality.objects.create(project=project, annotator=novice, skill=0.4)

    answer(project, expert, "Science", item)
    answer(project, novices[0], "World", item)
    answer(project, novices[1], "Business", item)

    assert ItemConsensus.objects.get(item=item).parts.label_id == project.labels.get(name="Science").pk


def test_dynamic_overlap_asks_for_more_annotators_when_unsure(project):
    project_update(project=project, data={"confidence_threshold": 0.9, "max_overlap": 5})
    item = ItemFactory(project=project)
    users = crowd(project, 5)

    for user, value in zip(users[:3], ["World", "Sports", "Business"], strict=True):
        answer(project, user, value, item)
    item.refresh_from_db()
    assert (item.extra_annotations, item.state) == (1, "in_progress")

    answer(project, users[3], "World", item)
    answer(project, users[4], "World", item)
    item.refresh_from_db()
    assert item.annotation_count == 5 and item.state == "complete"  # the maximum, however unsure


def test_a_full_pass_labels_items_and_measures_annotators(project):
    items = [ItemFactory(project=project) for _ in range(4)]
    truth = dict(zip([i.pk for i in items], ["World", "Sports", "Business", "Science"], strict=True))
    good, also_good, bad = crowd(project, 3)
    for user in (good, also_good, bad):
        for _ in items:
            task = task_next_for_annotator(project=project, annotator=user).assignment
            right = truth[task.item_id]
            value = right if user != bad else ("World" if right != "World" else "Sports")
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
            )

    run = run_now(project, "dawid_skene")

    assert run.state == JobState.SUCCEEDED, run.error
    assert run.items == 4 and run.annotations == 12 and run.method == "dawid_skene"
    labels = {c.item_id: c.parts.label_id for c in ItemConsensus.objects.all()}
    assert labels == {pk: project.labels.get(name=name).pk for pk, name in truth.items()}
    assert all(not c.is_provisional for c in ItemConsensus.objects.all())
    quality = {q.annotator_id: q for q in AnnotatorQuality.objects.filter(project=project)}
    assert quality[good.pk].agreement == 1.0 and quality[bad.pk].agreement == 0.0
    assert quality[good.pk].skill > quality[bad.pk].skill
    assert quality[good.pk].confusion  # Dawid-Skene's confusion matrix is kept
    assert run.report["alpha"] is not None and run.report["items_compared"] == 4
    assert all(Item.objects.filter(pk__in=[i.pk for i in items]).values_list("consolidated_at", flat=True))


def test_a_reviewers_answer_survives_every_recompute(project, cast):
    item = ItemFactory(project=project)
    for user in crowd(project, 3):
        answer(project, user, "World", item)
    business = Answer([LabelPart(None, None, project.labels.get(name="Business").pk)])
    consensus_override(item=item, answer=business, reviewer=cast.reviewer)

    run_now(project, "majority_vote")
    run_now(project, "dawid_skene")

    consensus = ItemConsensus.objects.get(item=item)
    assert consensus.parts == business
    assert consensus.method == "reviewer" and consensus.reviewed_by == cast.reviewer


def test_gold_items_keep_their_gold_answer(project):
    project_update(project=project, data={"gold_ratio": 1.0})
    gold = ItemFactory(project=project, is_gold=True)
    GoldLabel.objects.create(item=gold, label=project.labels.get(name="Science"))
    for user in crowd(project, 2):
        answer(project, user, "World", gold)

    run_now(project)

    assert ItemConsensus.objects.get(item=gold).method == "gold"
    assert ItemConsensus.objects.get(item=gold).parts.label_id == project.labels.get(name="Science").pk


def test_auto_picks_a_method_on_gold_and_says_so(project):
    project_update(project=project, data={"gold_ratio": 0.5, "overlap": 2})
    users = crowd(project, 3)
    regular = [ItemFactory(project=project) for _ in range(30)]
    golds = [ItemFactory(project=project, is_gold=True) for _ in range(25)]
    for g in golds:
        GoldLabel.objects.create(item=g, label=project.labels.get(name="Sports"))
    for user in users:
        for _ in range(len(regular) + len(golds)):
            task = task_next_for_annotator(project=Project.objects.get(pk=project.pk), annotator=user).assignment
            if task is None:
                break
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value="Sports", submission_id=uuid.uuid4()
            )

    run = run_now(project, "auto")

    assert run.state == JobState.SUCCEEDED, run.error
    assert "best on 25 gold items" in run.choice_reason and run.choice_scores[run.method] == 1.0


def test_multi_label_is_consolidated_label_by_label(multi_cast):
    project = multi_cast.project
    project_update(project=project, data={"overlap": 3, "gold_ratio": 0.0})
    item = ItemFactory(project=project)
    for user, value in zip(crowd(project, 3), [["Economy", "Health"], ["Economy"], ["Economy", "Health"]], strict=True):
        answer(project, user, value, item)

    run_now(project)

    names = {project.labels.get(pk=label_id).name for label_id in ItemConsensus.objects.get(item=item).parts.label_ids}
    assert names == {"Economy", "Health"}


def test_entity_spans_are_consolidated_into_valid_spans(spans_cast):
    project = spans_cast.project
    project_update(project=project, data={"overlap": 3, "gold_ratio": 0.0})
    text = "Lena Brandt joined Northwind Labs in Oslo ."
    item = ItemFactory(project=project, text=text)
    person, org, place = (spans_cast.labels[n].pk for n in ("Person", "Organization", "Location"))
    answers = [
        [
            {"start": 0, "end": 11, "label": person},
            {"start": 19, "end": 33, "label": org},
            {"start": 37, "end": 41, "label": place},
        ],
        [
            {"start": 0, "end": 11, "label": person},
            {"start": 19, "end": 28, "label": org},
            {"start": 37, "end": 41, "label": place},
        ],
        [{"start": 5, "end": 11, "label": person}, {"start": 19, "end": 33, "label": org}],
    ]
    for user, value in zip(crowd(project, 3), answers, strict=True):
        answer(project, user, value, item)

    run_now(project)

    spans = ItemConsensus.objects.get(item=item).parts
    assert spans == Answer([LabelPart(0, 11, person), LabelPart(19, 33, org), LabelPart(37, 41, place)])


def test_runs_are_one_at_a_time_and_claimed_once(project):
    first = consolidation_request(project=project)
    second = consolidation_request(project=project)

    assert first.pk == second.pk and first.state == JobState.QUEUED
    consolidation_run(run_id=first.pk)
    again = consolidation_run(run_id=first.pk)  # a redelivered task
    assert again.state == JobState.SUCCEEDED
    assert ConsolidationRun.objects.count() == 1


def test_a_run_left_running_by_a_dead_worker_gives_way(project):
    stuck = ConsolidationRun.objects.create(
        project=project, state=JobState.RUNNING, requested_method="auto", started_at=timezone.now() - timedelta(hours=1)
    )

    fresh = consolidation_request(project=project)

    assert fresh.pk != stuck.pk
    assert ConsolidationRun.objects.get(pk=stuck.pk).state == JobState.FAILED


def test_a_full_pass_is_queued_after_every_n_answers(project, django_capture_on_commit_callbacks):
    project_update(project=project, data={"consolidate_every": 2, "overlap": 1})
    for _ in range(3):
        ItemFactory(project=project)
    user = crowd(project, 1)[0]

    with django_capture_on_commit_callbacks(execute=True):
        answer(project, user, "World")
    assert not ConsolidationRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        answer(project, user, "World")

    run = ConsolidationRun.objects.get()
    assert run.state == JobState.SUCCEEDED  # Celery runs tasks inline in tests
    assert Project.objects.get(pk=project.pk).pending_consolidation == 0


# --- quality and blocking ---------------------------------------------------------------------


@pytest.fixture
def gold_project(project):
    project_update(project=project, data={"gold_ratio": 1.0, "quality_min_gold": 4, "quality_threshold": 0.7})
    for _ in range(12):
        gold = ItemFactory(project=project, is_gold=True)
        GoldLabel.objects.create(item=gold, label=project.labels.get(name="Sports"))
    return Project.objects.get(pk=project.pk)


def test_an_annotator_below_the_threshold_is_blocked_after_enough_gold(gold_project):
    careless = crowd(gold_project, 1)[0]

    for _ in range(3):
        answer(gold_project, careless, "World")
    assert not Membership.objects.get(user=careless).is_blocked  # not enough gold yet
    answer(gold_project, careless, "World")

    membership = Membership.objects.get(user=careless)
    assert membership.is_blocked
    assert "Gold accuracy 0% on 4 gold items" in membership.blocked_reason
    assert task_next_for_annotator(project=gold_project, annotator=careless).reason == "blocked"


def test_good_annotators_are_not_blocked(gold_project):
    careful = crowd(gold_project, 1)[0]

    for _ in range(6):
        answer(gold_project, careful, "Sports")

    assert not Membership.objects.get(user=careful).is_blocked


def test_an_unblocked_annotator_gets_a_fresh_start(gold_project):
    careless = crowd(gold_project, 1)[0]
    for _ in range(4):
        answer(gold_project, careless, "World")
    membership_unblock(membership=Membership.objects.get(user=careless))

    answer(gold_project, careless, "Sports")

    assert not Membership.objects.get(user=careless).is_blocked


def test_blocked_answers_are_excluded_from_consolidation(project):
    item = ItemFactory(project=project)
    good1, good2, blocked = crowd(project, 3)
    answer(project, good1, "Science", item)
    answer(project, good2, "Science", item)
    answer(project, blocked, "World", item)
    membership = Membership.objects.get(project=project, user=blocked)
    membership.is_blocked = True
    membership.save()

    run = run_now(project, "majority_vote")

    assert run.annotations == 2
    assert ItemConsensus.objects.get(item=item).confidence == 1.0
