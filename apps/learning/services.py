"""Learning's writes on the request side: training requests, the registry (promote, pin,
prune), embedding and export requests, streamed items. The training itself runs in a worker
(``training.py``), and so does ranking; web processes import neither."""

import logging
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.projects.imports import items_add
from apps.projects.jobs import JobLost, JobState, job_beat, job_finish, job_held, job_request, job_send
from apps.projects.models import Item, Project
from platform.tasks import task_send_on_commit

from .models import EmbeddingJob, ModelVersion, TrainingRun, VersionStatus
from .store import artifact_path, embedding_cache, embeddings_compute, embeddings_missing

logger = logging.getLogger(__name__)

# New items are embedded by parallel tasks of this many each.
EMBED_TASK_ITEMS = 2000


def embeddings_refresh_request(*, project: Project) -> int:
    """Embed the project's new items in chunks: one job each, run in parallel by workers
    (sent after commit). Items that an active job already embeds are left to it."""
    taken = {
        pk
        for ids in EmbeddingJob.objects.filter(project=project).active().values_list("item_ids", flat=True)
        for pk in ids
    }
    missing = [pk for pk in embeddings_missing(project) if pk not in taken]
    for start in range(0, len(missing), EMBED_TASK_ITEMS):
        job, _ = job_request(
            model=EmbeddingJob, project=project, item_ids=missing[start : start + EMBED_TASK_ITEMS], stage="Queued"
        )
        job_send(job)
    return len(missing)


def embedding_job_run(*, job_id: int) -> EmbeddingJob | None:
    """Embed one job's items (in a worker); those already in the cache are skipped, so a
    resumed job does what its killed worker left."""
    with job_held(model=EmbeddingJob, job_id=job_id) as job:
        if job is None:
            return EmbeddingJob.objects.filter(pk=job_id).first()
        try:
            cached = embedding_cache(job.project).cached_ids()
            job_beat(job, stage=f"Embedding {len(job.item_ids):,} items")
            done = embeddings_compute(job.project, [pk for pk in job.item_ids if pk not in cached])
        except JobLost:
            return job
        except Exception:
            logger.exception("embedding job %s failed", job_id)
            return job_finish(
                job, state=JobState.FAILED, error="Embedding stopped on an error; it is in the server log."
            )
        return job_finish(job, state=JobState.SUCCEEDED, stage=f"Embedded {done:,} items", embedded=done)


def labels_counted(*, project: Project, new: int) -> None:
    """Items got consolidated labels (inside the annotation's transaction): after
    ``train_every`` of them, train."""
    Project.objects.filter(pk=project.pk).update(pending_training=F("pending_training") + new)
    if project.pending_training + new >= project.train_every:
        transaction.on_commit(lambda: training_request(project=project, trigger="auto"))


# --- runs ------------------------------------------------------------------------------------------


def training_request(*, project: Project, trigger: str = "manual", user: User | None = None) -> TrainingRun:
    """Queue a training run, or return the one already queued or running (a run whose
    worker went quiet is failed first, so a new request starts fresh work)."""
    run, created = job_request(
        model=TrainingRun,
        project=project,
        trigger=trigger,
        requested_by=user,
        mode=project.training_mode,
        stage="Queued",
    )
    if created:
        job_send(run)
    return run


# --- registry ---------------------------------------------------------------------------------------


def champion_crown(*, project: Project, version: ModelVersion) -> None:
    """Make ``version`` the project's champion; the one before retires (and loses its pin)."""
    ModelVersion.objects.filter(project=project, status=VersionStatus.CHAMPION).update(
        status=VersionStatus.RETIRED, pinned=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION, promoted_at=timezone.now())


@transaction.atomic
def version_promote(*, version: ModelVersion, pin: bool = False) -> ModelVersion:
    """Make a version champion by hand (roll back to an older one, or force a challenger)."""
    if version.pruned_at is not None:
        raise ValidationError("This version's files were pruned; it cannot serve any more.")
    champion_crown(project=version.project, version=version)
    if pin:
        ModelVersion.objects.filter(pk=version.pk).update(pinned=True)
    version.refresh_from_db()
    task_send_on_commit("learning.pool_rank", version.project_id)
    return version


@transaction.atomic
def version_pin(*, version: ModelVersion, pinned: bool) -> ModelVersion:
    if pinned and version.status != VersionStatus.CHAMPION:
        raise ValidationError("Only the champion can be pinned; promote this version first.")
    ModelVersion.objects.filter(pk=version.pk).update(pinned=pinned)
    version.refresh_from_db()
    return version


def versions_prune(*, project: Project, keep: int | None = None) -> int:
    """Delete the files of old versions beyond the newest ``keep`` (the champion and pinned
    versions are always kept); their rows stay, with their metrics."""
    keep = settings.QUORUM_MODELS_KEEP if keep is None else keep
    old = list(
        ModelVersion.objects.filter(project=project, pruned_at__isnull=True)
        .exclude(status=VersionStatus.CHAMPION)
        .exclude(pinned=True)
        .order_by("-number")[keep:]
    )
    for version in old:
        shutil.rmtree(artifact_path(version), ignore_errors=True)
        ModelVersion.objects.filter(pk=version.pk).update(pruned_at=timezone.now())
    return len(old)


def export_request(*, version: ModelVersion) -> None:
    """Prepare a version's downloads in a worker (copying the backbone and exporting ONNX
    take a while); the page offers them once they exist."""
    task_send_on_commit("learning.export_build", version.pk)


@transaction.atomic
def stream_items_create(*, project: Project, rows: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Add streamed items (checked by the import's row rules, all or none) and score them
    in a worker after commit (``streaming.stream_items_score``)."""
    items = items_add(project=project, rows=rows)
    task_send_on_commit("learning.stream_score", project.pk, [item.pk for item in items])
    return items
