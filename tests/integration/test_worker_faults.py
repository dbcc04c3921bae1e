"""A real Celery worker killed with SIGKILL in the middle of each kind of job, on Redis and on
the filesystem broker (which never redelivers): a worker started afterwards finds the job
stale by its heartbeat and resumes it, items and the model registry stay consistent, a new
request starts fresh work, and a job that kills every worker fails with the reason instead
of being delivered for ever. Then Redis itself goes away (a redis-server of the test's own)
while annotators work: they keep working, pages say background work is delayed, and the
work runs once Redis is back.

Needs PostgreSQL (the worker is another process; it must see the test's database) and, for
the Redis cases, CELERY_BROKER_URL=redis://... and the redis-server program."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from apps.annotation.consensus import consolidation_request
from apps.annotation.models import Annotation, ConsolidationRun, ItemConsensus, Suggestion
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.learning.models import EmbeddingJob, ModelVersion, PoolRanking, TrainingRun, VersionStatus
from apps.learning.services import embeddings_refresh_request, training_request
from apps.learning.store import embeddings_missing
from apps.projects.imports import items_import_start
from apps.projects.jobs import Job, JobState, jobs_recover
from apps.projects.models import GoldLabel, ImportJob, Item, Project, Role
from apps.projects.services import project_update
from platform.celery import app
from tests.factories import MembershipFactory, UserFactory
from tests.helpers import make_cast

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "apps" / "projects" / "demo_data" / "news.jsonl"
# Short job timings for the test and its workers: beat twice a second, stale after 3 s.
TIMINGS = {
    "QUORUM_JOB_BEAT_SECONDS": 0.5,
    "QUORUM_JOB_STALE_SECONDS": 3,
    "QUORUM_JOB_SWEEP_SECONDS": 1,
    "QUORUM_JOB_MAX_ATTEMPTS": 2,
    "QUORUM_JOB_DELAYED_SECONDS": 1,
}
BOUND = 120  # seconds a job may take to resume and finish here (a loaded 2-core machine)

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs DATABASE_URL=postgres://...")
pytestmark = [pytest.mark.services, needs_postgres, pytest.mark.django_db(transaction=True)]


# --- brokers and workers ---------------------------------------------------------------------------------


@dataclass
class Broker:
    name: str
    url: str
    options: dict[str, Any]
    workers: list[subprocess.Popen] = field(default_factory=list)

    def pending(self) -> int:
        """Messages waiting in the queue or taken and not acknowledged."""
        if self.name == "filesystem":
            return len(list(Path(self.options["data_folder_in"]).glob("*.msg")))
        client = redis.Redis.from_url(self.url)
        return int(client.llen("celery")) + int(client.hlen("unacked"))


def _app_use(url: str | None, options: dict[str, Any], eager: bool) -> None:
    # Celery reads the CELERY_BROKER_URL environment variable before its configuration.
    if url is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = url
    app.conf.update(broker_url=url, broker_transport_options=options, task_always_eager=eager)
    app._pool, app.amqp._producer_pool = None, None  # connect again, to this broker


def filesystem_broker(tmp_path: Path) -> Broker:
    """kombu's filesystem transport (make demo's) in folders of the test's own."""
    folder = tmp_path / "broker"
    for name in ("queue", "processed", "control"):
        (folder / name).mkdir(parents=True)
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
        "control_folder": str(folder / "control"),
    }
    return Broker("filesystem", "filesystem://", options)


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path, settings) -> Iterator[Broker]:
    if request.param == "filesystem":
        chosen = filesystem_broker(tmp_path)
    else:
        if not settings.CELERY_BROKER_URL.startswith("redis://"):
            pytest.skip("needs CELERY_BROKER_URL=redis://...")
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # the test's own database number
        # Unacknowledged messages come back after 5 s (12 h in production), so that the
        # killed workers' messages are delivered again within the test, and must do nothing.
        options = {"visibility_timeout": 5, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
        chosen = Broker("redis", settings.CELERY_BROKER_URL, options)
    with broker_in_use(chosen, settings):
        yield chosen


@contextmanager
def broker_in_use(broker: Broker, settings: Any) -> Iterator[Broker]:
    before = {name: app.conf[name] for name in ("broker_transport_options", "task_always_eager")}
    before["broker_url"] = os.environ.get("CELERY_BROKER_URL")
    for name, value in TIMINGS.items():
        setattr(settings, name, value)
    _app_use(broker.url, broker.options, eager=False)
    try:
        yield broker
    finally:
        for worker in broker.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        _app_use(before["broker_url"], before["broker_transport_options"], before["task_always_eager"])


def worker_start(broker: Broker, tmp_path: Path, pause: tuple[str, ...] = (), concurrency: int = 1) -> "Worker":
    """A worker process (its own process group) on the broker and the test's database; it
    stops half-way in each function of ``pause`` that a task calls, and says so in ``markers``."""
    markers = tmp_path / f"markers-{uuid.uuid4().hex[:8]}"
    markers.mkdir()
    worker_settings = {
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "VAR_DIR": str(settings.VAR_DIR),
        "CELERY_BROKER_URL": broker.url,
        "CELERY_BROKER_TRANSPORT_OPTIONS": broker.options,
        **TIMINGS,
    }
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker.url,
        "QUORUM_WORKER_SETTINGS": json.dumps(worker_settings),
        "QUORUM_WORKER_PAUSE": ",".join(pause),
        "QUORUM_WORKER_MARKERS": str(markers),
        "QUORUM_WORKER_CONCURRENCY": str(concurrency),
        "QUORUM_WORKER_NAME": markers.name,
    }
    log = (tmp_path / f"{markers.name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.worker"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    broker.workers.append(process)
    return Worker(process, markers)


@dataclass
class Worker:
    process: subprocess.Popen
    markers: Path

    def paused(self) -> int:
        """How many of its processes stopped half-way in a paused function."""
        assert self.process.poll() is None, "the worker died on its own"
        return len(list(self.markers.iterdir()))

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as ``kill -9`` of a service does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def wait_for(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound} s: {what}")
        time.sleep(0.2)


def state(job: Job) -> str:
    job.refresh_from_db()
    return job.state


def finished(job: Job) -> bool:
    job.refresh_from_db()
    return job.is_finished


# --- the kinds of job: set up, start, and what must hold afterwards ---------------------------------------


def labelled_project(items: int = 60) -> Project:
    """A topic project whose first items have consensus labels and a few are gold."""
    cast = make_cast()
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 1})
    project = Project.objects.get(pk=cast.project.pk)
    labels = {label.name: label for label in project.labels.all()}
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()[:items]]
    for n, row in enumerate(rows):
        item = Item.objects.create(project=project, text=row["text"], external_id=row["id"], is_gold=n >= items - 10)
        if n < items - 20:
            ItemConsensus.objects.create(
                project=project, item=item, parts=[{"start": None, "end": None, "label_id": labels[row["topic"]].pk}],
                confidence=1.0, method="majority_vote", is_provisional=False,
            )  # fmt: skip
        elif item.is_gold:
            GoldLabel.objects.create(item=item, label=labels[row["topic"]])
    return project


def start_import() -> Job:
    cast = make_cast()
    content = "".join(json.dumps({"id": f"r{n}", "text": f"Story {n}"}) + "\n" for n in range(3000)).encode()
    return items_import_start(
        project=cast.project, user=cast.manager, upload=SimpleUploadedFile("big.jsonl", content), inline=False
    )


def check_import(job: Job) -> None:
    assert job.rows_imported == 3000  # type: ignore[attr-defined]
    assert Item.objects.filter(project=job.project).count() == 3000  # type: ignore[attr-defined]


def start_consolidation() -> Job:
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 3, "gold_ratio": 0.0, "consolidate_every": 1000})
    project = Project.objects.get(pk=cast.project.pk)
    Item.objects.bulk_create(Item(project=project, text=f"Story {n}") for n in range(5))
    crowd = [UserFactory(username=f"crowd{n}") for n in range(3)]
    for user in crowd:
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        for _ in range(5):
            lease = task_next_for_annotator(project=project, annotator=user).assignment
            annotation_submit(
                project=project, annotator=user, assignment_id=lease.pk, value="Sports", submission_id=uuid.uuid4()
            )
    return consolidation_request(project=project)


def check_consolidation(job: Job) -> None:
    assert ItemConsensus.objects.filter(project=job.project, is_provisional=False).count() == 5  # type: ignore[attr-defined]


def check_training(job: Job) -> None:
    versions = ModelVersion.objects.filter(project=job.project)  # type: ignore[attr-defined]
    assert list(versions.values_list("number", "status")) == [(1, VersionStatus.CHAMPION)]
    assert job.version_id == versions.get().pk  # type: ignore[attr-defined]


def check_ranking(job: Job) -> None:
    """The pool got the champion's priorities (one per rank) and its pre-labels."""
    pool = Item.objects.filter(project=job.project, is_gold=False, consensus__isnull=True)  # type: ignore[attr-defined]
    assert pool.count() == 10 and pool.values("priority").distinct().count() == 10
    assert Suggestion.objects.filter(item__in=pool).count() == 10


def start_embedding() -> Job:
    project = labelled_project(items=30)
    embeddings_refresh_request(project=project)
    return EmbeddingJob.objects.get(project=project)


def check_embedding(job: Job) -> None:
    assert embeddings_missing(job.project) == []  # type: ignore[attr-defined]


# Where a worker stops half-way in each kind (a function only that kind calls there).
HALF_WAY = {
    "import": "apps.projects.imports:_batch_insert",  # inside the write transaction
    "consolidation": "apps.annotation.consolidation:outcome_compute",
    "embedding": "apps.learning.services:embeddings_compute",
    "training": "apps.learning.modelling:train",  # after embedding the project
    "ranking": "apps.learning.ranking:priorities_write",  # inside the ranking's transaction
}


def no_endless_redelivery(broker: Broker, *jobs: Job) -> None:
    """Every message is consumed (on Redis, the killed workers' too, restored after the
    visibility timeout) and none starts a finished job again."""
    wait_for(lambda: broker.pending() == 0, "the broker holds no message", bound=30)
    time.sleep(TIMINGS["QUORUM_JOB_SWEEP_SECONDS"] * 2)  # a sweep or two more, which must change nothing
    for job in jobs:
        attempts = job.attempts
        job.refresh_from_db()
        assert job.attempts == attempts and job.is_finished


# --- the tests ---------------------------------------------------------------------------------------------


def test_killed_workers_leave_no_job_behind(broker, tmp_path):
    """1. A worker runs an import, a consolidation, an embedding and a training side by side
    and is killed half-way through all four. 2. The next worker resumes them (on the
    filesystem broker, a new training request replaces the dead run instead); the training
    promotes its model and ranks the pool, and this worker is killed half-way through the
    ranking. 3. The next one resumes the ranking. Every job ends succeeded, once."""
    first = worker_start(broker, tmp_path, pause=tuple(HALF_WAY[k] for k in HALF_WAY if k != "ranking"), concurrency=4)
    imported, consolidation, embedding = start_import(), start_consolidation(), start_embedding()
    training = training_request(project=labelled_project())
    wait_for(lambda: first.paused() == 4, "the worker is half-way through four jobs")
    for job in (imported, consolidation, embedding, training):
        assert state(job) == JobState.RUNNING and job.attempts == 1
    first.kill()

    dead_run = None
    if broker.name == "filesystem":  # make demo's broker: a new request starts fresh work
        wait_for(lambda: TrainingRun.objects.stale().filter(pk=training.pk).exists(), "the run goes stale", bound=30)
        dead_run, training = training, training_request(project=training.project)
        assert training.pk != dead_run.pk
    second = worker_start(broker, tmp_path, pause=(HALF_WAY["ranking"],), concurrency=2)
    for job in (imported, consolidation, embedding, training):
        wait_for(lambda job=job: finished(job), f"{job} resumes and finishes")
        assert job.state == JobState.SUCCEEDED, job.error
    ranking = PoolRanking.objects.get(project=training.project)
    wait_for(lambda: second.paused() == 1, "the second worker is half-way through the ranking")
    assert state(ranking) == JobState.RUNNING
    second.kill()

    worker_start(broker, tmp_path)
    wait_for(lambda: finished(ranking), "the ranking resumes and finishes")

    assert ranking.state == JobState.SUCCEEDED and ranking.attempts == 2, ranking.error
    assert [job.attempts for job in (imported, consolidation, embedding)] == [2, 2, 2]
    assert training.attempts == (1 if dead_run else 2)
    if dead_run is not None:
        dead_run.refresh_from_db()
        assert dead_run.state == JobState.FAILED and "a new request replaced it" in dead_run.error
    check_import(imported)
    check_consolidation(consolidation)
    check_embedding(embedding)
    check_training(training)
    check_ranking(ranking)
    no_endless_redelivery(broker, imported, consolidation, embedding, training, ranking)


def test_a_job_that_kills_every_worker_fails_with_the_reason(tmp_path, settings):
    """On the filesystem broker (no redelivery at all): an import kills its worker, is
    resumed, kills the next one too, and is then failed, with the reason, not run again."""
    with broker_in_use(filesystem_broker(tmp_path), settings) as broker:
        pause = (HALF_WAY["import"],)
        first = worker_start(broker, tmp_path, pause=pause)
        job = start_import()
        wait_for(lambda: first.paused() == 1, "the first worker is half-way")
        first.kill()
        second = worker_start(broker, tmp_path, pause=pause)  # its sweep resumes the job, which kills it too
        wait_for(lambda: second.paused() == 1, "the second worker is half-way")
        second.kill()

        wait_for(lambda: ImportJob.objects.stale().filter(pk=job.pk).exists(), "the job goes stale", bound=30)
        counts = jobs_recover()  # the sweep, here: no worker is left

        job.refresh_from_db()
        assert counts["failed"] == 1 and job.state == JobState.FAILED and job.attempts == 2
        assert "worker stopped during" in job.error and "after 2 attempts" in job.error
        assert not Item.objects.filter(project=job.project).exists()  # type: ignore[attr-defined]
        assert broker.pending() == 0


# --- Redis goes away ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OwnRedis:
    """A redis-server of this test's own, on a free port, without persistence."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, "redis-server starts", bound=20)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path, settings) -> Iterator[Broker]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server program")
    server = OwnRedis(tmp_path)
    server.start()
    broker = Broker("redis", server.url, {"visibility_timeout": 5})
    broker.server = server  # type: ignore[attr-defined]
    try:
        with broker_in_use(broker, settings):
            yield broker
    finally:
        server.stop()


def test_with_redis_down_annotators_work_pages_say_work_is_delayed_and_it_runs_when_redis_is_back(
    own_redis, tmp_path, settings
):
    server: OwnRedis = own_redis.server  # type: ignore[attr-defined]
    settings.CACHES = {
        "default": {
            "BACKEND": "platform.cache.TolerantRedisCache",
            "LOCATION": server.url.replace("/0", "/1"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
    cast = make_cast()
    project_update(project=cast.project, data={"overlap": 1, "gold_ratio": 0.0, "consolidate_every": 3})
    project = Project.objects.get(pk=cast.project.pk)
    Item.objects.bulk_create(Item(project=project, text=f"Story {n}") for n in range(6))
    worker_start(own_redis, tmp_path)
    server.stop()  # Redis goes away, under the worker and the site

    annotator = Client()
    annotator.force_login(cast.annotator)
    for _ in range(3):  # the third answer asks for a consolidation: its message cannot leave
        assert annotator.get(f"/projects/{project.pk}/annotate/").status_code == 200
        lease = task_next_for_annotator(project=project, annotator=cast.annotator).assignment
        response = annotator.post(
            f"/projects/{project.pk}/annotate/submit/",
            {"assignment": lease.pk, "label": cast.labels["Sports"].pk, "submission_id": str(uuid.uuid4())},
        )
        assert response.status_code == 302, response.content[:500]
    assert Annotation.objects.filter(project=project).count() == 3
    run = ConsolidationRun.objects.get(project=project)
    assert run.state == JobState.QUEUED and run.sent_at is None

    wait_for(lambda: run.health == "delayed", "the run counts as delayed", bound=10)
    manager = Client()
    manager.force_login(cast.manager)
    page = manager.get(f"/projects/{project.pk}/reports/")
    assert b"background work is delayed" in page.content

    server.start()  # Redis is back (empty: it kept nothing): the worker reconnects and sweeps
    wait_for(lambda: finished(run), "the consolidation runs once Redis is back")
    assert run.state == JobState.SUCCEEDED and run.attempts == 1
    no_endless_redelivery(own_redis, run)
