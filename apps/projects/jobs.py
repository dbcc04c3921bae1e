"""One lifecycle for every background job of a project: imports, consolidations, training
runs, pool rankings, and the jobs still to come.

A job is a row, and the row is the truth about it (Celery keeps no results):
1. it is created ``queued``; a kind that allows one active job per project (a partial
   unique constraint, ``one_active_per_project``) hands back the active one instead
   (``job_request``), after failing a stale one;
2. the worker that runs it claims it with one conditional UPDATE, ``queued`` to
   ``running`` (``job_claim``), so a redelivered task finds it taken and does nothing;
   a kind may let the claim take over a ``running`` job whose holder went quiet;
3. while it runs, heartbeats record its stage and progress (``job_beat``);
4. it ends ``succeeded``, ``failed`` (``error`` says why, for people) or ``cancelled``
   (``job_finish``).
A running job whose last heartbeat (or, before any, its start) is older than its kind's
``stale_after`` is stale: its worker is gone.

``templates/partials/job_progress.html`` shows any job's state, stage and progress.
"""

from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def one_active_per_project(name: str) -> models.UniqueConstraint:
    """The constraint a kind declares when a project may have only one job of it queued or running."""
    return models.UniqueConstraint(
        fields=["project"], condition=models.Q(state__in=[state.value for state in ACTIVE_STATES]), name=name
    )


class JobQuerySet(models.QuerySet):
    def active(self) -> "JobQuerySet":
        return self.filter(state__in=ACTIVE_STATES)

    def stale(self, now: Any = None) -> "JobQuerySet":
        """Running jobs whose holder has not beaten for the kind's ``stale_after``."""
        now = now or timezone.now()
        stale_after: timedelta = self.model.stale_after  # type: ignore[attr-defined]
        return self.alias(last_sign=Coalesce("heartbeat_at", "started_at", "created_at")).filter(
            state=JobState.RUNNING, last_sign__lt=now - stale_after
        )


class Job(models.Model):
    """What every background job records. A kind adds its ``project`` foreign key (with its
    own related name) and what it produces."""

    # How long a running job may go without a heartbeat before it counts as dead.
    stale_after: ClassVar[timedelta] = timedelta(minutes=10)

    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    stage = models.CharField(max_length=200, blank=True, help_text="What it is doing, or how it ended, for people.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
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


J = TypeVar("J", bound=Job)


def jobs_fail_stale(*, model: type[Job], project: Any, reason: str = "The worker stopped before finishing.") -> int:
    """Fail the project's stale jobs of this kind, so that new work can start."""
    now = timezone.now()
    jobs: Any = model.objects  # every kind has a project; the abstract model does not say so
    return jobs.filter(project=project).stale(now).update(state=JobState.FAILED, error=reason, finished_at=now)


def job_request(*, model: type[J], project: Any, **fields: Any) -> tuple[J, bool]:
    """A new queued job, or, when the kind allows one active job per project and there is
    one, that job: (job, created). A stale active job is failed first."""
    jobs_fail_stale(model=model, project=project)
    jobs: Any = model.objects
    try:
        with transaction.atomic():
            return jobs.create(project=project, **fields), True
    except IntegrityError:
        return jobs.filter(project=project).active().get(), False


def job_claim(*, model: type[Job], job_id: int, take_over_stale: bool = False) -> bool:
    """Take a queued job for this worker (one conditional UPDATE, so of two deliveries only
    one wins). With ``take_over_stale``, a running job whose holder went quiet is taken
    over too. True when this caller now holds the job."""
    now = timezone.now()
    claimed = model.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now, heartbeat_at=now
    )
    if claimed or not take_over_stale:
        return bool(claimed)
    return bool(
        model.objects.filter(pk=job_id).stale(now).update(heartbeat_at=now, stage="Restarted after the worker stopped")
    )


def job_beat(job: Job, *, stage: str | None = None, progress: float | None = None, **fields: Any) -> None:
    """Record that the job is alive, with its stage and progress (0-100) when given. One
    small UPDATE of its own, so pages see it while the job works."""
    changes: dict[str, Any] = {"heartbeat_at": timezone.now(), **fields}
    if stage is not None:
        job.stage = changes["stage"] = stage[:200]
    if progress is not None:
        job.progress = changes["progress"] = max(0, min(100, int(progress)))
    for name, value in fields.items():
        setattr(job, name, value)
    type(job).objects.filter(pk=job.pk).update(**changes)


def job_finish(job: J, *, state: str, error: str = "", stage: str | None = None, **fields: Any) -> J:
    """End the job: succeeded, failed (``error`` says why) or cancelled."""
    job.state, job.error, job.finished_at = state, error, timezone.now()
    if stage is not None:
        job.stage = stage[:200]
    if state == JobState.SUCCEEDED:
        job.progress = 100
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=["state", "error", "finished_at", "stage", "progress", *fields])
    return job
