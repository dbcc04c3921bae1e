"""The one job lifecycle (apps/projects/jobs.py): a job whose worker is gone is found by its
heartbeat and resumed or failed with a reason, a new request starts fresh work, a
redelivered message does nothing harmful, and a broker that is away fails no request.
The real worker killed with SIGKILL is in tests/integration/test_worker_faults.py."""

import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.loader import render_to_string
from django.utils import timezone

from apps.annotation.consensus import consolidation_request
from apps.annotation.models import ConsolidationRun
from apps.learning.models import EmbeddingJob, PoolRanking, RuleApplication, TrainingRun
from apps.learning.services import training_request
from apps.projects.jobs import (
    JobLost,
    JobQuerySet,
    JobState,
    job_beat,
    job_claim,
    job_finish,
    job_heartbeat,
    job_kinds,
    jobs_recover,
)
from apps.projects.models import ImportJob, Item
from apps.projects.selectors import import_progress, import_progress_key
from platform import tasks
from platform.cache import TolerantRedisCache
from platform.celery import SWEEP_TASK, app

LONG_AGO = timezone.now() - timedelta(hours=1)


def an_import(project, user, rows=3, **fields):
    content = "".join(f'{{"text": "Story {n}"}}\n' for n in range(rows)).encode()
    return ImportJob.objects.create(
        project=project,
        created_by=user,
        file=SimpleUploadedFile("stories.jsonl", content),
        original_name="stories.jsonl",
        size_bytes=len(content),
        format="jsonl",
        **fields,
    )


def dead(job, attempts=1):
    """The job as a killed worker leaves it: running, its last heartbeat long ago."""
    type(job).objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, attempts=attempts, started_at=LONG_AGO, heartbeat_at=LONG_AGO, stage="Writing"
    )
    job.refresh_from_db()
    return job


def test_every_job_kind_is_known_to_the_sweep():
    assert set(job_kinds()) == {ImportJob, ConsolidationRun, TrainingRun, PoolRanking, EmbeddingJob, RuleApplication}


def test_every_job_kind_names_a_task_that_workers_know():
    app.loader.import_default_modules()
    names = {kind.task_name for kind in job_kinds() if kind.task_name} | {"learning.pool_rank_chunk", SWEEP_TASK}
    names |= {"learning.rule_apply_chunk", "learning.rule_application_fit"}
    assert names <= set(app.tasks), sorted(names - set(app.tasks))
    assert all(kind.task_name or not kind.claimed_by_task for kind in job_kinds())  # each can be sent again


def test_the_sweep_resumes_an_import_whose_worker_died(cast, django_capture_on_commit_callbacks):
    job = dead(an_import(cast.project, cast.manager))

    with django_capture_on_commit_callbacks(execute=True):
        counts = jobs_recover()

    job.refresh_from_db()
    assert counts["resumed"] == 1
    assert job.state == JobState.SUCCEEDED and job.attempts == 2 and job.rows_imported == 3
    assert Item.objects.filter(project=cast.project).count() == 3


def test_a_job_that_keeps_killing_its_worker_fails_with_the_reason(cast, settings):
    settings.QUORUM_JOB_MAX_ATTEMPTS = 2
    job = dead(an_import(cast.project, cast.manager), attempts=2)

    counts = jobs_recover()

    job.refresh_from_db()
    assert counts["failed"] == 1 and job.state == JobState.FAILED
    assert "worker stopped during “Writing”" in job.error and "after 2 attempts" in job.error
    assert job.finished_at is not None
    assert not Item.objects.filter(project=cast.project).exists()


def test_a_failed_stale_job_runs_its_kinds_end_hook(cast, monkeypatch):
    ended = []
    monkeypatch.setattr(ImportJob, "on_end", lambda self: ended.append((self.pk, self.state)), raising=False)
    job = dead(an_import(cast.project, cast.manager), attempts=5)

    jobs_recover()

    assert ended == [(job.pk, JobState.FAILED)]


def test_a_live_job_is_left_alone(cast):
    job = an_import(cast.project, cast.manager)
    ImportJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1, heartbeat_at=timezone.now())

    assert jobs_recover() == {"resumed": 0, "failed": 0, "resent": 0}
    assert ImportJob.objects.get(pk=job.pk).state == JobState.RUNNING


def test_a_new_training_request_replaces_a_dead_run_with_fresh_work(cast, django_capture_on_commit_callbacks):
    sent = []
    with django_capture_on_commit_callbacks() as callbacks:
        stuck = dead(training_request(project=cast.project))
    stuck_messages = len(callbacks)

    with django_capture_on_commit_callbacks() as callbacks:
        fresh = training_request(project=cast.project)
    sent.extend(callbacks)

    stuck.refresh_from_db()
    assert fresh.pk != stuck.pk and fresh.state == JobState.QUEUED
    assert stuck.state == JobState.FAILED and "a new request replaced it" in stuck.error
    assert stuck_messages == 1 and len(sent) == 1  # the fresh run's message goes to the broker


def test_a_request_racing_a_job_that_just_finished_starts_fresh_work(cast, monkeypatch):
    """The insert meets the active job, which finishes before it is read back (found by
    bench/soak.py: a submit that had committed answered 500 with DoesNotExist)."""
    running = consolidation_request(project=cast.project)
    real_active = JobQuerySet.active

    def active_once_it_finished(queryset):
        ConsolidationRun.objects.filter(pk=running.pk).update(state=JobState.SUCCEEDED)
        return real_active(queryset)

    monkeypatch.setattr(JobQuerySet, "active", active_once_it_finished)
    fresh = consolidation_request(project=cast.project)

    assert fresh.pk != running.pk and fresh.state == JobState.QUEUED
    assert ConsolidationRun.objects.filter(state=JobState.QUEUED).count() == 1


def test_a_new_request_sends_again_a_queued_run_whose_message_was_lost(cast, django_capture_on_commit_callbacks):
    run = consolidation_request(project=cast.project)  # its message never left (a broker that was away)
    ConsolidationRun.objects.filter(pk=run.pk).update(created_at=LONG_AGO)

    with django_capture_on_commit_callbacks() as callbacks:
        again = consolidation_request(project=cast.project)

    assert again.pk == run.pk and len(callbacks) == 1


def test_a_redelivered_message_does_nothing_to_a_finished_or_a_live_job(cast):
    finished = an_import(cast.project, cast.manager, state=JobState.SUCCEEDED, attempts=1)
    live = an_import(cast.project, cast.manager)
    ImportJob.objects.filter(pk=live.pk).update(state=JobState.RUNNING, attempts=1, heartbeat_at=timezone.now())

    assert job_claim(model=ImportJob, job_id=finished.pk) == 0
    assert job_claim(model=ImportJob, job_id=live.pk) == 0
    assert ImportJob.objects.get(pk=live.pk).attempts == 1


def test_a_redelivered_message_takes_over_a_stale_job_once_then_gives_up(cast, settings):
    settings.QUORUM_JOB_MAX_ATTEMPTS = 2
    job = dead(an_import(cast.project, cast.manager))

    assert job_claim(model=ImportJob, job_id=job.pk) == 2
    assert job_claim(model=ImportJob, job_id=job.pk) == 0  # held again, by the live attempt 2
    dead(job, attempts=2)
    assert job_claim(model=ImportJob, job_id=job.pk) == 0
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "after 2 attempts" in job.error


def test_a_holder_that_lost_its_job_records_nothing(cast):
    job = an_import(cast.project, cast.manager)
    job.attempts = job_claim(model=ImportJob, job_id=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(attempts=2)  # another worker took it over

    with pytest.raises(JobLost):
        job_beat(job, stage="Still here?")
    finished = job_finish(job, state=JobState.SUCCEEDED, stage="Done")

    assert finished.state == JobState.RUNNING and finished.stage != "Done"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_from_a_thread_while_the_work_does_not(cast, settings):
    settings.QUORUM_JOB_BEAT_SECONDS = 0.05
    job = an_import(cast.project, cast.manager)
    job.attempts = job_claim(model=ImportJob, job_id=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=LONG_AGO)
    beaten = threading.Event()

    with job_heartbeat(job):
        for _ in range(400):  # the work here only waits; the thread keeps the job alive
            if ImportJob.objects.get(pk=job.pk).heartbeat_at > LONG_AGO:
                beaten.set()
                break
            threading.Event().wait(0.05)
    connection.close()

    assert beaten.is_set()
    assert not ImportJob.objects.stale().filter(pk=job.pk).exists()


def test_pages_say_a_job_is_stalled_or_delayed(cast, settings):
    settings.QUORUM_JOB_DELAYED_SECONDS = 60
    waiting = an_import(cast.project, cast.manager)
    ImportJob.objects.filter(pk=waiting.pk).update(created_at=LONG_AGO)
    waiting.refresh_from_db()
    stalled = dead(an_import(cast.project, cast.manager))
    fresh = an_import(cast.project, cast.manager)

    assert (waiting.health, stalled.health, fresh.health) == ("delayed", "stalled", "")
    assert "background work is delayed" in render_to_string("partials/job_progress.html", {"job": waiting})
    assert "Stalled" in render_to_string("partials/job_progress.html", {"job": stalled})
    assert "delayed" not in render_to_string("partials/job_progress.html", {"job": fresh})


def test_an_import_page_says_stalled_and_forgets_a_dead_workers_progress_when_it_starts_over(cast):
    job = dead(an_import(cast.project, cast.manager))
    cache.set(import_progress_key(job.pk), {"phase": "writing", "fraction": 0.12, "rows": 600})

    assert import_progress(job=job)["health"] == "stalled" and import_progress(job=job)["percent"] == 56
    ImportJob.objects.filter(pk=job.pk).update(state=JobState.QUEUED, heartbeat_at=timezone.now())
    job.refresh_from_db()
    assert import_progress(job=job)["percent"] == 0 and import_progress(job=job)["stage"] == ""


# --- a broker or a cache that is away ------------------------------------------------------------------


@pytest.fixture
def broker_away(monkeypatch):
    """The Celery app sends to a port where nothing listens, as when Redis is down."""
    conf = {name: app.conf[name] for name in ("broker_transport_options", "task_always_eager")}
    away = "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CELERY_BROKER_URL", away)  # Celery reads it before its configuration
    app.conf.update(broker_url=away, broker_transport_options={}, task_always_eager=False)
    app._pool, app.amqp._producer_pool = None, None
    assert app.pool.connection.as_uri().endswith("@127.0.0.1:1/0")
    yield
    monkeypatch.undo()
    app.conf.update(conf)
    app._pool, app.amqp._producer_pool = None, None


def test_sending_to_a_broker_that_is_away_fails_nothing(broker_away):
    assert tasks.task_send("projects.jobs_sweep") is False


@pytest.mark.django_db(transaction=True)
def test_a_job_requested_while_the_broker_is_away_waits_and_is_sent_by_the_sweep(cast, broker_away):
    run = consolidation_request(project=cast.project)  # commits at once: the send fails quietly

    run.refresh_from_db()
    assert run.state == JobState.QUEUED and run.sent_at is None
    ConsolidationRun.objects.filter(pk=run.pk).update(created_at=LONG_AGO)
    app.conf.task_always_eager = True  # the broker is back (runs in place here)
    assert jobs_recover()["resent"] == 1
    run.refresh_from_db()
    assert run.state == JobState.SUCCEEDED and run.sent_at is not None


def test_the_cache_answers_a_miss_when_redis_is_away():
    away = TolerantRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 1}})

    away.set("key", 1)
    assert away.get("key", "missing") == "missing"
    assert away.get_many(["key"]) == {} and away.add("key", 2) is False and away.delete("key") is False
    with pytest.raises(ValueError):
        away.incr("key")
