"""A training run, in a worker. The work itself is in the modules below (``training_sets``,
``modelling``, ``ranking``; files in ``store``); ``services`` requests runs and keeps the
registry.

A run, in a worker (``training_run_execute``):
1. claims its row and beats for it from a thread (``job_held``; a run whose worker was
   killed is resumed or failed by the job sweep, apps/projects/jobs.py);
2. makes sure every item has a cached embedding (chunks, with progress);
3. builds the training set from consolidated labels (weighted by confidence when the
   project says so) and the evaluation set (``training_sets``);
4. trains a challenger (a head on smoothed embeddings, or a fine-tuned transformer);
5. scores the challenger and the current champion on the same evaluation set;
6. in one transaction, records the version, promotes it if it beats the champion
   (macro-F1, then accuracy) and the champion is not pinned, and finishes the run, if it
   still holds the run. A failure anywhere before (a killed worker included) leaves the
   registry as it was, and the run failed with the error or resumed.
After a promotion the pool is re-ranked (``ranking.pool_rank_start``, looked up on the module so
that a benchmark can hold it back; large pools in parallel chunks).
"""

import logging
import shutil
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.projects.jobs import JobLost, JobState, job_beat, job_finish, job_held
from apps.projects.models import Project
from platform.errors import error_for_people

from . import modelling, ranking
from .models import ModelVersion, TrainingRun, VersionStatus
from .selectors import champion
from .services import champion_crown, versions_prune
from .store import artifact_dir, features_for, models_root
from .training_sets import Sets, sets_build

logger = logging.getLogger(__name__)

MIN_TRAINING_ITEMS = 4


class RunReporter:
    """Progress, stage and log lines written to the run row as it goes (each a heartbeat
    of its own, so the page sees them while the run works)."""

    def __init__(self, run: TrainingRun):
        self.run = run

    def __call__(self, stage: str, progress: float) -> None:
        line = f"{timezone.now():%H:%M:%S} {stage}"
        log = self.run.log if self.run.log.endswith(stage) else (self.run.log + "\n" + line).strip()
        job_beat(self.run, stage=stage, progress=progress, log=log)

    def part(self, stage: str, low: float, high: float) -> Callable[[float], None]:
        return lambda fraction: self(stage, low + (high - low) * fraction)


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    with job_held(model=TrainingRun, job_id=run_id) as run:
        if run is None:  # finished, or running in a live worker
            return TrainingRun.objects.filter(pk=run_id).first()
        try:
            promoted = _train(run, RunReporter(run))
        except JobLost:
            run.refresh_from_db()  # another worker resumed it, or the sweep failed it: theirs to record
            return run
        except Exception as error:
            # Library errors name server paths: people see a reference, the log the traceback.
            error_text = error_for_people(error, logger=logger, job=f"Training run {run_id}")
            return job_finish(run, state=JobState.FAILED, error=error_text, stage="Failed")
    if promoted:
        ranking.pool_rank_start(project=run.project)
    return run


def _train(run: TrainingRun, report: RunReporter) -> bool:
    """Train, record the version and finish the run, in one transaction with the registry:
    the version exists if and only if the run succeeded. True when it was promoted."""
    project = run.project
    report("Embedding items", 2)
    features = features_for(project, progress=report.part("Embedding items", 2, 40))
    report("Building the training set", 42)
    sets = sets_build(project=project)
    if not features.has([*sets.train.item_ids, *sets.evaluation.item_ids]).all():
        # Items imported and labelled while the others were embedded: embed them too.
        features = features_for(project)
    if len(sets.train.item_ids) < MIN_TRAINING_ITEMS:
        raise ValidationError(
            f"Only {len(sets.train.item_ids)} labels (consolidated or weak) to train on; "
            f"at least {MIN_TRAINING_ITEMS} are needed."
        )
    number = (
        ModelVersion.objects.filter(project=project).order_by("-number").values_list("number", flat=True).first() or 0
    ) + 1
    artifact = artifact_dir(project=project, number=number, run_id=run.pk)
    if artifact.exists():
        shutil.rmtree(artifact)  # a half-written artifact from a run that died here
    report(f"Training ({run.mode})", 45)
    trained = modelling.train(
        project,
        run.mode,
        sets,
        features,
        project.backbone,
        artifact,
        report.part(f"Training ({run.mode})", 45, 85),
    )
    report("Evaluating", 88)
    metrics = modelling.evaluate(project, trained.predictor, sets.evaluation, features)
    current = champion(project=project)
    champion_metrics = None
    if current is not None:
        try:
            champion_metrics = modelling.evaluate(
                project, modelling.predictor_load(current, features), sets.evaluation, features
            )
        except Exception as error:  # noqa: BLE001  (a champion that cannot be loaded is beaten by default)
            logger.warning("champion v%s could not be evaluated: %s", current.number, error)
    # With nothing to judge by (no gold, no consensus: a model on weak labels alone) the
    # newer training data wins; otherwise the challenger must score better on the same items.
    better = champion_metrics is None or not sets.evaluation.item_ids or _score(metrics) > _score(champion_metrics)
    with transaction.atomic():
        locked_champion = (
            ModelVersion.objects.select_for_update().filter(project=project, status=VersionStatus.CHAMPION).first()
        )
        version = ModelVersion.objects.create(
            project=project,
            number=number,
            mode=run.mode,
            backbone=project.backbone,
            artifact=str(artifact.relative_to(models_root())),
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
            champion_crown(project=project, version=version)
        Project.objects.filter(pk=project.pk).update(pending_training=0)
        job_finish(
            run,
            state=JobState.SUCCEEDED,
            stage="Done" + (": promoted to champion" if promoted else ": kept as challenger"),
            version=version,
            promoted=promoted,
            metrics={**metrics, "champion_on_same_set": champion_metrics, "promoted": promoted},
        )
        if run.state != JobState.SUCCEEDED:  # the run is no longer ours: record nothing
            shutil.rmtree(artifact, ignore_errors=True)
            raise JobLost(f"Training run {run.pk} was taken over; its version is not recorded.")
    versions_prune(project=project)
    return promoted


def _score(metrics: dict[str, Any]) -> tuple[float, float]:
    return (metrics.get("macro_f1") or 0.0, metrics.get("accuracy") or 0.0)


def _snapshot(project: Project, sets: Sets) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for answer in sets.train.answers:
        for label_id in answer.label_ids:
            counts[str(label_id)] = counts.get(str(label_id), 0) + 1
    return {
        "labels": {str(label.pk): label.name for label in project.labels.all()},
        "train_items": len(sets.train.item_ids),
        "weak_items": sets.train.weak_count,
        "human_items": len(sets.train.item_ids) - sets.train.weak_count,
        "label_counts": counts,
        "consolidation_method": project.consolidation_method,
        "weighted_by_confidence": project.train_weight_by_confidence,
        "evaluation_source": sets.source,
    }
