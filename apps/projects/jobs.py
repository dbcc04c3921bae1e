"""One lifecycle for every background job of a project: imports, consolidations, training
runs, pool rankings, embeddings, and the jobs still to come.

A job is a row, and the row is the truth about it (Celery keeps no results):
1. it is created ``queued`` (``job_request``); a kind that allows one active job per project
   (a partial unique constraint, ``one_active_per_project``) hands back the active one
   instead, after failing a stale one, so a new request always gets live work;
2. its message goes to the broker after commit (``job_send``); ``sent_at`` records that the
   broker took it, so a message that never left (broker down) is sent again by the sweep;
3. the worker that runs it claims it with one conditional UPDATE, ``queued`` to ``running``,
   counting an attempt (``job_claim``), so of two deliveries one runs; ``attempts`` is
   also the holder's fence: beats and the finish of a holder that lost the job match no row;
4. while it runs, a thread of the worker beats every ``QUORUM_JOB_BEAT_SECONDS``
   (``job_heartbeat``, whatever the work is doing), and ``job_beat`` records stage and progress;
5. it ends ``succeeded``, ``failed`` (``error`` says why, for people) or ``cancelled``
   (``job_finish``), and the kind's ``on_end`` hook runs once (e.g. to delete an upload).

A running job with no heartbeat for ``QUORUM_JOB_STALE_SECONDS`` is stale: its worker is
gone (killed, machine lost). The sweep (``jobs_recover``: at worker start, every
``QUORUM_JOB_SWEEP_SECONDS`` in every worker, and from Celery beat when one runs) resumes
it, queued again with its message sent again, until ``QUORUM_JOB_MAX_ATTEMPTS``; then it
fails with the reason, so a job that kills its worker is not retried for ever. A claim that
finds a stale job (a broker redelivering the message) does the same. The sweep also sends
again the message of a queued job that the broker never took or may have lost.

``templates/partials/job_progress.html`` shows any job's state, stage and progress, and says
when a job is stalled or waits for a worker (``Job.health``).
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from platform.errors import Conflict
from platform.tasks import task_send

logger = logging.getLogger(__name__)


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def stale_after() -> timedelta:
    """How long a running job may go without a heartbeat before its worker counts as gone.
    One value for every kind: beats come from a thread, not from the work's own pace."""
    return timedelta(seconds=settings.QUORUM_JOB_STALE_SECONDS)


def delayed_after() -> timedelta:
    """How long a queued job may wait for a worker before pages say background work is delayed."""
    return timedelta(seconds=settings.QUORUM_JOB_DELAYED_SECONDS)


def one_active_per_project(name: str) -> models.UniqueConstraint:
    """The constraint a kind declares when a project may have only one job of it queued or running."""
    return models.UniqueConstraint(
        fields=["project"], condition=models.Q(state__in=[state.value for state in ACTIVE_STATES]), name=name
    )


def _last_sign() -> Coalesce:
    # The heartbeat; before the first, the start or (queued) the moment it was queued.
    return Coalesce("heartbeat_at", "started_at", "created_at")


class JobQuerySet(models.QuerySet):
    def active(self) -> "JobQuerySet":
        return self.filter(state__in=ACTIVE_STATES)

    def stale(self, now: datetime | None = None) -> "JobQuerySet":
        """Running jobs whose holder has not beaten for ``stale_after()``."""
        now = now or timezone.now()
        return self.alias(last_sign=_last_sign()).filter(state=JobState.RUNNING, last_sign__lt=now - stale_after())

    def unsent(self, now: datetime | None = None) -> "JobQuerySet":
        """Queued jobs whose message the broker never took (sent_at empty for a while: the
        send failed) or took long ago and may have lost (a broker restarted without its
        data, a worker killed between taking the message and claiming the job)."""
        now = now or timezone.now()
        never = Q(sent_at__isnull=True, created_at__lt=now - timedelta(seconds=settings.QUORUM_JOB_BEAT_SECONDS))
        long_ago = Q(sent_at__lt=now - timedelta(seconds=settings.QUORUM_JOB_RESEND_SECONDS))
        return self.filter(never | long_ago, state=JobState.QUEUED)


class Job(models.Model):
    """What every background job records. A kind adds its ``project`` foreign key (with its
    own related name), what it produces, and ``task_name``."""

    # The Celery task that runs a job of this kind, given its id (sent by name: platform.tasks).
    task_name: ClassVar[str] = ""
    # False for a kind whose tasks do not claim it (a ranking's chunks run side by side on a
    # running ranking): resuming keeps it running and sends its messages again.
    claimed_by_task: ClassVar[bool] = True

    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    stage = models.CharField(max_length=200, blank=True, help_text="What it is doing, or how it ended, for people.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims so far; the holder's fence.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the broker last took its message.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def last_sign_at(self) -> datetime:
        return self.heartbeat_at or self.started_at or self.created_at

    @property
    def health(self) -> str:
        """``stalled`` (running, no heartbeat for stale_after: it will be resumed or failed),
        ``delayed`` (queued and no worker took it for a while), or empty."""
        if self.state == JobState.RUNNING and self.last_sign_at < timezone.now() - stale_after():
            return "stalled"
        if self.state == JobState.QUEUED and self.last_sign_at < timezone.now() - delayed_after():
            return "delayed"
        return ""

    def resume_messages(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The tasks (name, arguments) that run or resume this job; none: it cannot resume."""
        return [(self.task_name, (self.pk,))] if self.task_name else []

    def on_end(self) -> None:
        """Runs once when the job ends, however it ends (finished by its worker, failed as
        stale by the sweep or a new request): a kind frees what it holds (an upload) here."""


J = TypeVar("J", bound=Job)


def job_kinds() -> list[type[Job]]:
    """Every kind of job installed (the models that extend Job, in any app)."""
    return [model for model in apps.get_models() if issubclass(model, Job)]


# --- requests and messages ----------------------------------------------------------------------


def _one_active(model: type[Job]) -> bool:
    return any(
        isinstance(constraint, models.UniqueConstraint) and tuple(constraint.fields) == ("project",)
        for constraint in model._meta.constraints
    )


def job_request(*, model: type[J], project: Any, **fields: Any) -> tuple[J, bool]:
    """A new queued job, or, when the kind allows one active job per project and there is
    one, that job: (job, created). A stale active job is failed first, so the request gets
    fresh work; an active one still queued whose message was lost is sent again."""
    jobs: Any = model.objects  # every kind has a project; the abstract model does not say so
    if _one_active(model):  # other kinds' stale jobs do not block this one: the sweep resumes them
        for stale in jobs.filter(project=project).stale():
            _stale_fail(
                stale, f"Its worker stopped (no heartbeat for {_seconds(stale_after())}); a new request replaced it."
            )
    for _ in range(3):
        try:
            with transaction.atomic():
                return jobs.create(project=project, **fields), True
        except IntegrityError:
            active = jobs.filter(project=project).active().first()
            if active is None:  # it finished between our insert and this read: ask again
                continue
            if jobs.filter(pk=active.pk).unsent().exists():
                job_send(active)
            return active, False
    raise Conflict("Another job of this kind keeps starting and finishing; try again in a moment.")


def job_send(job: Job) -> None:
    """Send the job's messages after the current transaction commits (at once outside one);
    ``sent_at`` records that the broker took them. A broker that is down fails nothing here:
    the job stays queued with ``sent_at`` empty, and the sweep sends it again later."""
    transaction.on_commit(partial(_messages_send, type(job), job.pk, job.resume_messages()))


def _messages_send(model: type[Job], job_id: int, messages: list[tuple[str, tuple[Any, ...]]]) -> None:
    if all([task_send(name, *args) for name, args in messages]):
        model.objects.filter(pk=job_id).update(sent_at=timezone.now())


# --- holding a job --------------------------------------------------------------------------------


def job_claim(*, model: type[Job], job_id: int) -> int:
    """Take a queued job for this worker (one conditional UPDATE, so of two deliveries only
    one wins), or take over a stale running one that may still be retried. The attempt
    now held (1, 2, ...), or 0 when this caller does not hold the job."""
    now = timezone.now()
    claimed = model.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if claimed:
        return int(model.objects.values_list("attempts", flat=True).get(pk=job_id))
    stale = model.objects.filter(pk=job_id).stale(now).first()
    if stale is None:
        return 0  # finished, or held by a live worker: a redelivered message does nothing
    if stale.attempts >= settings.QUORUM_JOB_MAX_ATTEMPTS:
        _stale_fail(stale, _gave_up(stale))
        return 0
    taken = (
        model.objects.filter(pk=job_id, attempts=stale.attempts)
        .stale(now)
        .update(heartbeat_at=now, attempts=F("attempts") + 1, stage="Resumed after its worker stopped")
    )
    return stale.attempts + 1 if taken else 0


@contextmanager
def job_held(*, model: type[J], job_id: int) -> Iterator[J | None]:
    """Claim the job and keep its heartbeat while the block runs; the job (with its
    project), or None when this caller does not hold it and must do nothing."""
    if not job_claim(model=model, job_id=job_id):
        yield None
        return
    jobs: Any = model.objects
    job: J = jobs.select_related("project").get(pk=job_id)
    with job_heartbeat(job):
        yield job


class _Heartbeat(threading.Thread):
    """Beats for one held job until stopped, on a database connection of its own."""

    def __init__(self, model: type[Job], job_id: int, attempt: int):
        super().__init__(name=f"heartbeat-{model._meta.label_lower}-{job_id}", daemon=True)
        self.model, self.job_id, self.attempt = model, job_id, attempt
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.QUORUM_JOB_BEAT_SECONDS):
                try:
                    held = self.beat()
                except DatabaseError as error:
                    # The database is away for a moment: the next beat tries again, on a new connection.
                    logger.warning("heartbeat of %s %s failed: %s", self.model.__name__, self.job_id, error)
                    connection.close()
                    continue
                if not held:
                    return  # finished, or no longer ours
        finally:
            connection.close()

    def beat(self) -> bool:
        """One heartbeat; False when the job is no longer this holder's. A row that a
        transaction holds locked (the holder's own final write, which may take minutes) is
        skipped, not waited for: its holder is alive, and waiting could wait for ever on a
        transaction that waits for this thread."""
        with transaction.atomic():
            row = (
                self.model.objects.select_for_update(skip_locked=True)
                .filter(pk=self.job_id)
                .values_list("state", "attempts")
                .first()
            )
            if row is None:
                return self.model.objects.filter(pk=self.job_id).exists()  # locked: beat next time
            if row != (JobState.RUNNING, self.attempt):
                return False
            self.model.objects.filter(pk=self.job_id).update(heartbeat_at=timezone.now())
            return True


@contextmanager
def job_heartbeat(job: Job) -> Iterator[None]:
    """Beat for the job from a thread while the block runs, whatever the block does (a long
    model fit, a lock wait), so that only a dead worker goes quiet."""
    beat = _Heartbeat(type(job), job.pk, job.attempts)
    beat.start()
    try:
        yield
    finally:
        beat.stopped.set()
        beat.join()


class JobLost(Exception):
    """The job is no longer this holder's (taken over, failed as stale, or cancelled)."""


def job_beat(job: Job, *, stage: str | None = None, progress: float | None = None, **fields: Any) -> None:
    """Record stage and progress (0-100) when given, with a heartbeat. One small UPDATE of
    its own, so pages see it while the job works. Raises JobLost when the job is no longer
    this holder's, so work that another worker has taken over stops."""
    changes: dict[str, Any] = {"heartbeat_at": timezone.now(), **fields}
    if stage is not None:
        job.stage = changes["stage"] = stage[:200]
    if progress is not None:
        job.progress = changes["progress"] = max(0, min(100, int(progress)))
    for name, value in fields.items():
        setattr(job, name, value)
    if not type(job).objects.filter(pk=job.pk, state=JobState.RUNNING, attempts=job.attempts).update(**changes):
        raise JobLost(f"{type(job).__name__} {job.pk} is no longer held by this worker.")


def job_finish(job: J, *, state: str, error: str = "", stage: str | None = None, **fields: Any) -> J:
    """End the job: succeeded, failed (``error`` says why) or cancelled, if this holder
    still holds it (same attempt, still active); then run the kind's ``on_end``. When it
    does not, nothing is written and the job is read back as it stands."""
    changes: dict[str, Any] = {"state": state, "error": error, "finished_at": timezone.now(), **fields}
    if stage is not None:
        changes["stage"] = stage[:200]
    if state == JobState.SUCCEEDED:
        changes["progress"] = 100
    held = type(job).objects.filter(pk=job.pk, state__in=ACTIVE_STATES, attempts=job.attempts).update(**changes)
    if not held:
        logger.warning("%s %s was no longer held; its outcome (%s) was not recorded", type(job).__name__, job.pk, state)
        job.refresh_from_db()
        return job
    for name, value in changes.items():
        setattr(job, name, value)
    job.on_end()
    return job


# --- recovery ------------------------------------------------------------------------------------------


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"


def _gave_up(job: Job) -> str:
    during = f" during “{job.stage}”" if job.stage else ""
    return (
        f"Its worker stopped{during} (no heartbeat for {_seconds(stale_after())}) after {job.attempts} "
        f"attempt{'s' if job.attempts != 1 else ''}, so it was not started again. Request it again to retry."
    )


def _stale_fail(job: Job, reason: str) -> bool:
    """Fail a stale job with the reason, unless it beat or changed meanwhile."""
    failed = (
        type(job)
        .objects.filter(pk=job.pk, attempts=job.attempts)
        .stale()
        .update(state=JobState.FAILED, error=reason, finished_at=timezone.now())
    )
    if failed:
        job.state, job.error = JobState.FAILED, reason
        job.on_end()
    return bool(failed)


def _stale_resume(job: Job) -> bool:
    """Queue a stale job again (or, for a kind its tasks do not claim, keep it running as a
    new attempt) and send its messages."""
    now = timezone.now()
    held = type(job).objects.filter(pk=job.pk, attempts=job.attempts).stale(now)
    if job.claimed_by_task:
        resumed = held.update(
            state=JobState.QUEUED, heartbeat_at=now, sent_at=None, stage="Waiting to resume: its worker stopped"
        )
    else:
        resumed = held.update(heartbeat_at=now, attempts=F("attempts") + 1, stage="Resumed after a worker stopped")
    if resumed:
        job.refresh_from_db()
        job_send(job)
    return bool(resumed)


def jobs_recover() -> dict[str, int]:
    """The sweep: resume or fail every stale job of every kind, and send again the messages
    of queued jobs the broker never took or may have lost. Safe to run anywhere, any number
    of times at once: every change is a conditional UPDATE. A stale job whose row a
    transaction holds locked is skipped: that transaction (its holder's final write) is alive."""
    counts = {"resumed": 0, "failed": 0, "resent": 0}
    for model in job_kinds():
        with transaction.atomic():  # messages go after commit (job_send)
            for job in model.objects.select_for_update(skip_locked=True).stale():
                if job.attempts < settings.QUORUM_JOB_MAX_ATTEMPTS and job.resume_messages():
                    counts["resumed"] += _stale_resume(job)
                else:
                    counts["failed"] += _stale_fail(job, _gave_up(job))
        for job in model.objects.unsent():
            job_send(job)
            counts["resent"] += 1
    if any(counts.values()):
        logger.warning("jobs recovered: %s", counts)
    return counts
