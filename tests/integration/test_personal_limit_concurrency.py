"""The per-person limit under concurrency, on PostgreSQL: many threads ask for items for the
same person at once (a fast worker with several tabs, a script), and submit what they get.
However the requests interleave, that person never holds or answers more than the limit,
and others are not held up by it."""

import contextlib
import threading
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from apps.annotation.models import Annotation, Assignment, AssignmentState
from apps.annotation.services import NoTask, SubmitRefused, annotation_submit, task_next_for_annotator
from apps.projects.models import Item, Project
from apps.projects.services import project_update
from tests.helpers import make_cast

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")

THREADS = 24
LIMIT = 7
ITEMS = 200


def _live_leases(project: Project, user) -> int:
    return Assignment.objects.filter(
        project=project, annotator=user, state=AssignmentState.LEASED, expires_at__gt=timezone.now()
    ).count()


def _run(threads: int, act) -> list[BaseException]:
    unexpected: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def wrapped(thread: int) -> None:
        try:
            barrier.wait()
            act(thread)
        except BaseException as error:  # noqa: BLE001  (collected, then asserted empty)
            unexpected.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=wrapped, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return unexpected


@pytest.fixture
def project(transactional_db):
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 3, "gold_ratio": 0.0, "max_items_per_annotator": LIMIT})
    Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n}") for n in range(ITEMS))
    project = Project.objects.get(pk=cast.project.pk)
    project.cast = cast  # type: ignore[attr-defined]
    return project


@pytest.mark.services
@needs_postgres
def test_many_requests_at_once_lease_no_more_than_the_limit(project):
    """Every thread asks at the same moment, each holding what it got (as tabs would)."""
    person = project.cast.annotator
    leased: list[int] = []
    reasons: list[str] = []
    lock = threading.Lock()

    def ask(thread: int) -> None:
        held: list[int] = []
        for _ in range(3):
            task = task_next_for_annotator(project=project, annotator=person, exclude_assignment_ids=tuple(held))
            with lock:
                if task.assignment is not None:
                    held.append(task.assignment.pk)
                    leased.append(task.assignment.pk)
                else:
                    reasons.append(task.reason)

    unexpected = _run(THREADS, ask)

    assert not unexpected, unexpected[:3]
    assert len(set(leased)) == LIMIT == _live_leases(project, person)
    assert set(reasons) == {NoTask.LIMIT}
    assert Item.objects.filter(project=project).values_list("lease_count", flat=True).count() == ITEMS
    assert sum(Item.objects.filter(project=project).values_list("lease_count", flat=True)) == LIMIT


@pytest.mark.services
@needs_postgres
def test_asking_and_answering_at_once_never_passes_the_limit(project):
    """Threads ask and submit for the same person while others label beside them."""
    person, other = project.cast.annotator, project.cast.other_annotator
    over: list[int] = []

    def label(thread: int) -> None:
        user = other if thread % 4 == 0 else person
        for _ in range(6):
            task = task_next_for_annotator(project=project, annotator=user)
            if task.assignment is None:
                continue
            # Another thread of theirs may have answered this lease a moment ago.
            with contextlib.suppress(SubmitRefused):
                annotation_submit(
                    project=project,
                    annotator=user,
                    assignment_id=task.assignment.pk,
                    value="World",
                    submission_id=uuid.uuid4(),
                )
            held = Annotation.objects.filter(project=project, annotator=person).count() + _live_leases(project, person)
            if held > LIMIT:
                over.append(held)

    unexpected = _run(THREADS, label)

    assert not unexpected, unexpected[:3]
    assert over == []
    assert Annotation.objects.filter(project=project, annotator=person).count() == LIMIT
    assert Annotation.objects.filter(project=project, annotator=other).count() == LIMIT
    assert task_next_for_annotator(project=project, annotator=person).reason == NoTask.LIMIT
