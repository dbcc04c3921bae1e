"""Many annotators at once, on PostgreSQL: 50 threads acting as 20 annotators on a
project with k=3, interleaving next, submit, skip and lease expiry. The promises must
hold whatever the interleaving."""

import random
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from apps.annotation.models import Annotation, Assignment, AssignmentState
from apps.annotation.services import SubmitRefused, annotation_submit, assignment_skip, task_next_for_annotator
from apps.projects.models import Item, Project, Role
from apps.projects.services import project_update
from tests.factories import MembershipFactory, UserFactory
from tests.helpers import make_cast

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")

THREADS = 50
ANNOTATORS = 20
ITEMS = 300
GOLD = 20
STEPS = 40


@pytest.mark.services
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_threads_keep_every_promise():
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 3, "gold_ratio": 0.1})
    project = Project.objects.get(pk=cast.project.pk)
    Item.objects.bulk_create(Item(project=project, text=f"Story {n}") for n in range(ITEMS))
    Item.objects.bulk_create(Item(project=project, text=f"Gold {n}", is_gold=True) for n in range(GOLD))
    annotators = [UserFactory(username=f"crowd{n}") for n in range(ANNOTATORS)]
    for user in annotators:
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    labels = ["World", "Sports", "Business", "Science"]
    acknowledged: list[int] = []
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def act(thread: int) -> None:
        rng = random.Random(thread)
        user = annotators[thread % ANNOTATORS]
        try:
            barrier.wait()
            for _ in range(STEPS):
                task = task_next_for_annotator(project=project, annotator=user)
                if task.assignment is None:
                    continue
                roll = rng.random()
                try:
                    if roll < 0.75:
                        submission = uuid.uuid4()
                        result = annotation_submit(
                            project=project,
                            annotator=user,
                            assignment_id=task.assignment.pk,
                            value=rng.choice(labels),
                            submission_id=submission,
                        )
                        if rng.random() < 0.2:  # the client retries the same submit
                            again = annotation_submit(
                                project=project,
                                annotator=user,
                                assignment_id=task.assignment.pk,
                                value=rng.choice(labels),
                                submission_id=submission,
                            )
                            assert again.annotation.pk == result.annotation.pk
                        with lock:
                            acknowledged.append(result.annotation.pk)
                    elif roll < 0.87:
                        assignment_skip(project=project, annotator=user, assignment_id=task.assignment.pk)
                    else:  # walk away: the lease runs out
                        Assignment.objects.filter(pk=task.assignment.pk).update(
                            expires_at=timezone.now() - timedelta(seconds=1)
                        )
                except SubmitRefused:
                    pass  # a late answer on a full item, or another thread of theirs skipped it
        except BaseException as error:  # noqa: BLE001  (collected, then asserted empty)
            unexpected.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not unexpected, unexpected[:3]
    assert len(acknowledged) > ITEMS  # the run did real work
    # Every acknowledged answer is in the database.
    assert Annotation.objects.filter(pk__in=acknowledged).count() == len(set(acknowledged))
    # No regular item has more than k answers, and the stored counts are true.
    per_item = Counter(dict(Annotation.objects.values_list("item").annotate(n=Count("id"))))
    for item in Item.objects.filter(project=project):
        assert item.annotation_count == per_item.get(item.pk, 0)
        if not item.is_gold:
            assert item.annotation_count <= 3
            assert item.state == ("complete" if item.annotation_count == 3 else item.state)
    # No annotator answered or holds an item twice.
    pairs = Annotation.objects.values("item", "annotator").annotate(n=Count("id")).filter(n__gt=1)
    assert not pairs.exists()
    # Lease counters match the live leases (after expiring what is due).
    from apps.annotation.services import leases_expire

    leases_expire(project=project)
    live = Counter(
        Assignment.objects.filter(project=project, state=AssignmentState.LEASED).values_list("item_id", flat=True)
    )
    for item in Item.objects.filter(project=project):
        assert item.lease_count == live.get(item.pk, 0), item.pk
    # The budget counter counts exactly the paid answers.
    project.refresh_from_db()
    assert project.budget_spent == Annotation.objects.filter(project=project, is_gold=False).count()
