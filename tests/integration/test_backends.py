"""The production path, against real services: an import queued on PostgreSQL runs in
a real Celery worker through Redis, and two deliveries of one job insert once.
Runs when CELERY_BROKER_URL / DATABASE_URL point at Redis and PostgreSQL (make test)."""

import json
import threading
import time

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import override_settings

from apps.projects.imports import import_job_run, items_import_start
from apps.projects.jobs import JobState
from apps.projects.models import ImportJob, Item
from tests.helpers import make_cast

needs_redis = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs CELERY_BROKER_URL=redis://..."
)
needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")


def rows(n: int) -> bytes:
    return "".join(json.dumps({"id": f"r{i}", "text": f"Story {i}"}) + "\n" for i in range(n)).encode()


@pytest.mark.services
@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_large_import_runs_in_a_real_worker_through_redis():
    from celery.contrib.testing.worker import start_worker

    from platform.celery import app

    cast = make_cast()
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=100):
                job = items_import_start(
                    project=cast.project, user=cast.manager, upload=SimpleUploadedFile("big.jsonl", rows(2000))
                )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                job.refresh_from_db()
                if job.is_finished:
                    break
                time.sleep(0.2)
    finally:
        app.conf.task_always_eager = True

    assert job.state == JobState.SUCCEEDED, job.message
    assert Item.objects.filter(project=cast.project).count() == 2000


@pytest.mark.services
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_import_insert_it_once():
    cast = make_cast()
    with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=10, CELERY_TASK_ALWAYS_EAGER=False):
        job = ImportJob.objects.create(
            project=cast.project,
            created_by=cast.manager,
            file=SimpleUploadedFile("twice.jsonl", rows(5000)),
            original_name="twice.jsonl",
            size_bytes=len(rows(5000)),
            format="jsonl",
        )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            import_job_run(job_id=job.pk)
        except BaseException as error:  # noqa: BLE001  (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert Item.objects.filter(project=cast.project).count() == 5000
