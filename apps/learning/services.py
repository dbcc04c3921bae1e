"""Training runs and the model registry.

A run, in a worker (``training_run_execute``):
1. claims its row (``queued`` -> ``running``; a run whose heartbeat stopped ten minutes
   ago is taken over, so a killed worker's run is retried by the redelivered task);
2. makes sure every item has a cached embedding (chunks, with progress);
3. builds the training set from consolidated labels (weighted by confidence when the
   project says so) and the evaluation set: the gold items when there are at least 20,
   else a fixed fifth of the consolidated items, never trained on;
4. trains a challenger (a head on smoothed embeddings, or a fine-tuned transformer);
5. scores the challenger and the current champion on the same evaluation set;
6. in one transaction, records the version and promotes it if it beats the champion
   (macro-F1, then accuracy) and the champion is not pinned. A failure anywhere before
   leaves the registry as it was and the run marked failed, with the error.
After a promotion the pool is re-ranked (``ranking.pool_rank_start``; large pools in parallel chunks).
"""

import hashlib
import json
import logging
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.annotation.models import ItemConsensus
from apps.projects.models import GoldLabel, Item, JobState, Project, TaskType

from .cache import EmbeddingCache, Features
from .models import ModelVersion, TrainingRun, VersionStatus

logger = logging.getLogger(__name__)

STALE_HEARTBEAT = timedelta(minutes=10)
MIN_GOLD_FOR_EVALUATION = 20
EMBED_CHUNK = 512
MIN_TRAINING_ITEMS = 4


# --- backbones and embeddings ----------------------------------------------------------------


def backbone_path(project: Project) -> str:
    from .embeddings import default_backbone_path

    return project.backbone_path or default_backbone_path()


def backbone_key(path: str) -> str:
    from .embeddings import MAX_TOKENS

    name = Path(path).name if Path(path).name != "model" else Path(path).parent.name
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"{name}-{digest}-{MAX_TOKENS}"


def embedding_cache(project: Project, path: str | None = None) -> EmbeddingCache:
    return EmbeddingCache(project.pk, backbone_key(path or backbone_path(project)))


def embeddings_missing(project: Project, path: str | None = None) -> list[int]:
    cached = embedding_cache(project, path).cached_ids()
    return [pk for pk in Item.objects.filter(project=project).values_list("pk", flat=True) if pk not in cached]


def embeddings_compute(project: Project, item_ids: list[int], path: str | None = None) -> int:
    """Embed these items and add them to the cache, as one chunk."""
    from .embeddings import backbone_load, embed

    path = path or backbone_path(project)
    texts = dict(Item.objects.filter(project=project, pk__in=item_ids).values_list("pk", "text"))
    ids = [pk for pk in item_ids if pk in texts]
    if not ids:
        return 0
    vectors = embed(backbone_load(path), [texts[pk] for pk in ids])
    embedding_cache(project, path).add(ids, vectors)
    return len(ids)


def embeddings_refresh_request(project: Project) -> int:
    """Embed the project's new items in chunks, in parallel Celery tasks (after commit)."""
    from .tasks import embed_chunk_task

    missing = embeddings_missing(project)
    chunks = [missing[i : i + 2000] for i in range(0, len(missing), 2000)]
    for chunk in chunks:
        transaction.on_commit(partial(embed_chunk_task.delay, project.pk, chunk))
    return len(missing)


def features_for(project: Project, progress: Callable[[float], None] | None = None) -> Features:
    """Smoothed features of every item, embedding what is missing first."""
    missing = embeddings_missing(project)
    for done in range(0, len(missing), EMBED_CHUNK):
        embeddings_compute(project, missing[done : done + EMBED_CHUNK])
        if progress:
            progress(min(1.0, (done + EMBED_CHUNK) / len(missing)))
    return embedding_cache(project).features()


# --- training and evaluation sets ------------------------------------------------------------


@dataclass
class LabelledSet:
    item_ids: list[int] = field(default_factory=list)
    answers: list[list[tuple[int | None, int | None, int]]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass
class Sets:
    train: LabelledSet
    evaluation: LabelledSet
    source: str  # "gold" or "holdout"

    @property
    def evaluation_hash(self) -> str:
        return hashlib.sha256(",".join(map(str, sorted(self.evaluation.item_ids))).encode()).hexdigest()[:16]


def _parts(raw: list[dict[str, Any]]) -> list[tuple[int | None, int | None, int]]:
    return [(p.get("start"), p.get("end"), p["label_id"]) for p in raw]


def sets_build(project: Project) -> Sets:
    """Consolidated human labels to train on, and the held-out items to judge by."""
    consensus = ItemConsensus.objects.filter(project=project, is_model_label=False, item__is_gold=False).values_list(
        "item_id", "parts", "confidence"
    )
    labelled = [
        (item_id, _parts(parts), confidence if confidence is not None else 1.0)
        for item_id, parts, confidence in consensus
    ]
    if project.task_type == TaskType.SINGLE_LABEL:
        labelled = [row for row in labelled if len(row[1]) == 1]
    gold: dict[int, list[tuple[int | None, int | None, int]]] = {}
    for item_id, start, end, label_id in GoldLabel.objects.filter(item__project=project).values_list(
        "item_id", "start", "end", "label_id"
    ):
        gold.setdefault(item_id, []).append((start, end, label_id))
    gold_items = list(Item.objects.filter(project=project, is_gold=True).values_list("pk", flat=True))
    train, evaluation = LabelledSet(), LabelledSet()
    if len(gold_items) >= MIN_GOLD_FOR_EVALUATION:
        source = "gold"
        for item_id in gold_items:
            answer = gold.get(item_id, [])
            if project.task_type == TaskType.SINGLE_LABEL and len(answer) != 1:
                continue
            evaluation.item_ids.append(item_id)
            evaluation.answers.append(answer)
            evaluation.weights.append(1.0)
        chosen = labelled
    else:
        source = "holdout"
        chosen = []
        for row in labelled:
            # A fixed fifth of the items, by id, so every run is judged on the same ones.
            if int(hashlib.sha256(str(row[0]).encode()).hexdigest(), 16) % 5 == 0:
                evaluation.item_ids.append(row[0])
                evaluation.answers.append(row[1])
                evaluation.weights.append(1.0)
            else:
                chosen.append(row)
    for item_id, answer, confidence in chosen:
        train.item_ids.append(item_id)
        train.answers.append(answer)
        train.weights.append(float(confidence) if project.train_weight_by_confidence else 1.0)
    return Sets(train, evaluation, source)


# --- runs ------------------------------------------------------------------------------------


def training_request(*, project: Project, trigger: str = "manual", user: User | None = None) -> TrainingRun:
    """Queue a training run, or return the one already queued or running."""
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project, trigger=trigger, requested_by=user, mode=project.training_mode, stage="Queued"
            )
    except IntegrityError:
        return TrainingRun.objects.get(project=project, state__in=[JobState.QUEUED, JobState.RUNNING])
    from .tasks import training_run_task

    transaction.on_commit(lambda: training_run_task.delay(run.pk))
    return run


def training_claim(run_id: int) -> bool:
    now = timezone.now()
    queued = TrainingRun.objects.filter(pk=run_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now, heartbeat_at=now, stage="Starting"
    )
    if queued:
        return True
    # A run whose worker died (no heartbeat for a while) is taken over by the redelivery.
    return bool(
        TrainingRun.objects.filter(pk=run_id, state=JobState.RUNNING, heartbeat_at__lt=now - STALE_HEARTBEAT).update(
            heartbeat_at=now, stage="Restarted after the worker stopped", log=F("log")
        )
    )


class RunReporter:
    """Progress, stage and log lines written to the run row as it goes (each its own
    small write, so the page sees them while the run works)."""

    def __init__(self, run: TrainingRun):
        self.run = run

    def __call__(self, stage: str, progress: float) -> None:
        value = max(0, min(100, int(progress)))
        self.run.stage, self.run.progress = stage, value
        line = f"{timezone.now():%H:%M:%S} {stage}"
        self.run.log = (self.run.log + "\n" + line).strip() if not self.run.log.endswith(stage) else self.run.log
        TrainingRun.objects.filter(pk=self.run.pk).update(
            stage=stage, progress=value, log=self.run.log, heartbeat_at=timezone.now()
        )

    def part(self, stage: str, low: float, high: float) -> Callable[[float], None]:
        return lambda fraction: self(stage, low + (high - low) * fraction)


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    if not training_claim(run_id):
        return TrainingRun.objects.filter(pk=run_id).first()
    run = TrainingRun.objects.select_related("project").get(pk=run_id)
    report = RunReporter(run)
    try:
        version, promoted, metrics = _train(run, report)
    except Exception as error:
        logger.exception("training run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            state=JobState.FAILED,
            error=f"{type(error).__name__}: {error}\n\n{traceback.format_exc(limit=6)}",
            finished_at=timezone.now(),
            stage="Failed",
        )
        return TrainingRun.objects.get(pk=run_id)
    TrainingRun.objects.filter(pk=run_id).update(
        state=JobState.SUCCEEDED,
        version=version,
        promoted=promoted,
        metrics=metrics,
        progress=100,
        stage="Done" + (": promoted to champion" if promoted else ": kept as challenger"),
        finished_at=timezone.now(),
    )
    if promoted:
        from .ranking import pool_rank_start

        pool_rank_start(project=run.project)
    return TrainingRun.objects.get(pk=run_id)


def _train(run: TrainingRun, report: RunReporter) -> tuple[ModelVersion, bool, dict[str, Any]]:
    from . import modelling

    project = run.project
    report("Embedding items", 2)
    features = features_for(project, progress=report.part("Embedding items", 2, 40))
    report("Building the training set", 42)
    sets = sets_build(project)
    if len(sets.train.item_ids) < MIN_TRAINING_ITEMS:
        raise ValidationError(
            f"Only {len(sets.train.item_ids)} consolidated labels to train on; "
            f"at least {MIN_TRAINING_ITEMS} are needed."
        )
    number = (
        ModelVersion.objects.filter(project=project).order_by("-number").values_list("number", flat=True).first() or 0
    ) + 1
    artifact = Path(settings.VAR_DIR) / "models" / f"project-{project.pk}" / f"v{number}-run{run.pk}"
    if artifact.exists():
        shutil.rmtree(artifact)  # a half-written artifact from a run that died here
    report(f"Training ({run.mode})", 45)
    trained = modelling.train(
        project,
        run.mode,
        sets,
        features,
        backbone_path(project),
        artifact,
        report.part(f"Training ({run.mode})", 45, 85),
    )
    report("Evaluating", 88)
    metrics = modelling.evaluate(project, trained.predictor, sets.evaluation, features)
    champion = ModelVersion.objects.filter(project=project, status=VersionStatus.CHAMPION).first()
    champion_metrics = None
    if champion is not None:
        try:
            champion_metrics = modelling.evaluate(
                project, modelling.predictor_load(champion, features), sets.evaluation, features
            )
        except Exception as error:  # noqa: BLE001  (a champion that cannot be loaded is beaten by default)
            logger.warning("champion v%s could not be evaluated: %s", champion.number, error)
    better = champion_metrics is None or _score(metrics) > _score(champion_metrics)
    with transaction.atomic():
        locked_champion = (
            ModelVersion.objects.select_for_update().filter(project=project, status=VersionStatus.CHAMPION).first()
        )
        version = ModelVersion.objects.create(
            project=project,
            number=number,
            mode=run.mode,
            backbone=backbone_path(project),
            artifact=str(artifact.relative_to(Path(settings.VAR_DIR) / "models")),
            metrics={**metrics, "champion_on_same_set": champion_metrics},
            evaluation={
                "source": sets.source,
                "size": len(sets.evaluation.item_ids),
                "items_hash": sets.evaluation_hash,
            },
            snapshot=_snapshot(project, sets),
            hyperparameters=trained.hyperparameters,
            train_size=len(sets.train.item_ids),
        )
        promoted = better and not (locked_champion and locked_champion.pinned)
        if promoted:
            _crown(project, version)
        Project.objects.filter(pk=project.pk).update(pending_training=0)
    versions_prune(project=project)
    return version, promoted, {**metrics, "champion_on_same_set": champion_metrics, "promoted": promoted}


def _score(metrics: dict[str, Any]) -> tuple[float, float]:
    return (metrics.get("macro_f1") or 0.0, metrics.get("accuracy") or 0.0)


def _snapshot(project: Project, sets: Sets) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for answer in sets.train.answers:
        for _, _, label in answer:
            counts[str(label)] = counts.get(str(label), 0) + 1
    return {
        "labels": {str(label.pk): label.name for label in project.labels.all()},
        "train_items": len(sets.train.item_ids),
        "label_counts": counts,
        "consolidation_method": project.consolidation_method,
        "weighted_by_confidence": project.train_weight_by_confidence,
        "evaluation_source": sets.source,
    }


# --- registry ---------------------------------------------------------------------------------


def _crown(project: Project, version: ModelVersion) -> None:
    ModelVersion.objects.filter(project=project, status=VersionStatus.CHAMPION).update(
        status=VersionStatus.RETIRED, pinned=False
    )
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION, promoted_at=timezone.now())


@transaction.atomic
def version_promote(*, version: ModelVersion, pin: bool = False) -> ModelVersion:
    """Make a version champion by hand (roll back to an older one, or force a challenger)."""
    if version.pruned_at is not None:
        raise ValidationError("This version's files were pruned; it cannot serve any more.")
    _crown(version.project, version)
    if pin:
        ModelVersion.objects.filter(pk=version.pk).update(pinned=True)
    version.refresh_from_db()
    transaction.on_commit(lambda: _rank_after_change(version.project_id))
    return version


def _rank_after_change(project_id: int) -> None:
    from .tasks import pool_rank_task

    pool_rank_task.delay(project_id)


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
        shutil.rmtree(Path(settings.VAR_DIR) / "models" / version.artifact, ignore_errors=True)
        ModelVersion.objects.filter(pk=version.pk).update(pruned_at=timezone.now())
    return len(old)


def champion(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, status=VersionStatus.CHAMPION).first()


def labels_counted(*, project: Project, new: int) -> None:
    """Called as items get consolidated labels: after ``train_every`` of them, train."""
    Project.objects.filter(pk=project.pk).update(pending_training=F("pending_training") + new)
    if project.pending_training + new >= project.train_every:
        transaction.on_commit(lambda: training_request(project=project, trigger="auto"))


def artifact_path(version: ModelVersion) -> Path:
    return Path(settings.VAR_DIR) / "models" / version.artifact


def read_config(version: ModelVersion) -> dict[str, Any]:
    return json.loads((artifact_path(version) / "config.json").read_text())
