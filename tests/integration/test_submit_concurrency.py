"""The same answer sent many times at once, on PostgreSQL: a client that retries while its
first request is still in flight (a timeout on its side), or a double click that sends
twice. Exactly one annotation, every request gets it back, the counters count it once."""

import threading
import uuid

import pytest
from django.db import connection

from apps.annotation.consensus import consensus_override, consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import Annotation, AnnotationLabel, Assignment, AssignmentState, ItemConsensus
from apps.annotation.services import SubmitRefused, annotation_submit, task_next_for_annotator
from apps.projects.answers import Answer, LabelPart
from apps.projects.jobs import JobState
from apps.projects.models import Item, Project, Role
from apps.projects.services import project_update
from tests.factories import MembershipFactory, UserFactory
from tests.helpers import make_cast

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")

THREADS = 8


def _race(calls):
    """Run the calls in threads released together; return their results or errors."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            outcomes[index] = call()
        except BaseException as error:  # noqa: BLE001  (returned, then asserted on)
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def _project():
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 2, "gold_ratio": 0.0})
    Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n}") for n in range(4))
    return cast, Project.objects.get(pk=cast.project.pk)


@pytest.mark.services
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_submit_eight_times_at_once_makes_one_annotation():
    cast, project = _project()
    assignment = task_next_for_annotator(project=project, annotator=cast.annotator).assignment
    submission = uuid.uuid4()

    def send():
        return annotation_submit(
            project=project,
            annotator=cast.annotator,
            assignment_id=assignment.pk,
            value="World",
            submission_id=submission,
        )

    outcomes = _race([send] * THREADS)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors[:3]
    assert sum(o.created for o in outcomes) == 1
    assert len({o.annotation.pk for o in outcomes}) == 1
    assert Annotation.objects.count() == 1 and AnnotationLabel.objects.count() == 1
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.annotation_count, item.lease_count) == (1, 0)
    assert Assignment.objects.get(pk=assignment.pk).state == AssignmentState.SUBMITTED
    assert Project.objects.get(pk=project.pk).budget_spent == 1


@pytest.mark.services
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_one_submission_id_sent_for_two_items_at_once_saves_one_and_refuses_the_other():
    """Each request locks a different item, so only the unique constraint sees the clash."""
    cast, project = _project()
    first = task_next_for_annotator(project=project, annotator=cast.annotator).assignment
    second = task_next_for_annotator(
        project=project, annotator=cast.annotator, exclude_assignment_ids=(first.pk,)
    ).assignment
    submission = uuid.uuid4()

    def send(assignment):
        return lambda: annotation_submit(
            project=project,
            annotator=cast.annotator,
            assignment_id=assignment.pk,
            value="World",
            submission_id=submission,
        )

    outcomes = _race([send(first), send(second)])

    refused = [o for o in outcomes if isinstance(o, SubmitRefused)]
    saved = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(refused) == 1 and len(saved) == 1, outcomes
    assert "already used" in str(refused[0])
    stored = Annotation.objects.get()
    assert stored.assignment_id == saved[0].annotation.assignment_id
    other = second if stored.assignment_id == first.pk else first
    assert Assignment.objects.get(pk=other.pk).state == AssignmentState.LEASED
    assert Item.objects.get(pk=other.item_id).annotation_count == 0


@pytest.mark.services
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_full_passes_and_reviews_beside_many_submits_never_deadlock():
    """bench/soak.py saw a consolidation fail on a deadlock with the submits beside it: the
    pass locked consensus rows, then items, while a submit (and a review) lock an item,
    then its consensus. Now every writer takes the item first."""
    cast, project = _project()
    project_update(project=project, data={"overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000})
    Item.objects.bulk_create(Item(project=cast.project, text=f"More {n}") for n in range(60))
    annotators = [cast.annotator, cast.other_annotator]
    for n in range(2):
        user = UserFactory(username=f"crowd{n}")
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        annotators.append(user)
    labels = ["World", "Sports", "Business", "Science"]
    answering = threading.Event()

    def annotate(annotator):
        def run():
            for n in range(400):
                task = task_next_for_annotator(project=project, annotator=annotator)
                if task.assignment is None:
                    break
                answering.set()
                annotation_submit(
                    project=project,
                    annotator=annotator,
                    assignment_id=task.assignment.pk,
                    value=labels[(task.assignment.item_id + n) % 4],
                    submission_id=uuid.uuid4(),
                )
            return "done"

        return run

    def consolidate():
        answering.wait(30)
        for _ in range(6):
            run = consolidation_request(project=project)
            done = consolidation_run(run_id=run.pk)
            assert done is not None and done.state == JobState.SUCCEEDED, done and done.error
        return "done"

    def review():
        answering.wait(30)
        for item in Item.objects.filter(project=project).order_by("-pk")[:30]:
            consensus_override(
                item=item, answer=Answer([LabelPart(None, None, cast.labels["World"].pk)]), reviewer=cast.reviewer
            )
        return "done"

    outcomes = _race([*(annotate(a) for a in annotators), consolidate, review])

    assert outcomes == ["done"] * len(outcomes), [o for o in outcomes if o != "done"][:3]
    assert Annotation.objects.count() == Assignment.objects.filter(state=AssignmentState.SUBMITTED).count()
    reviewed = ItemConsensus.objects.filter(project=project, reviewed_at__isnull=False)
    assert reviewed.count() == 30 and all(c.method == "reviewer" for c in reviewed)
