"""Reads of the learning side: the model registry, training runs and pool rankings."""

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from apps.projects.models import Project

from .models import ModelVersion, PoolRanking, TrainingRun, VersionStatus
from .store import artifact_path


def champion(*, project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, status=VersionStatus.CHAMPION).first()


def versions(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project)


def version_get(*, project: Project, number: Any, servable: bool = False) -> ModelVersion:
    """A version of this project by number (``servable``: only one whose files are kept);
    anything else is a 404."""
    found = versions(project=project)
    if servable:
        found = found.filter(pruned_at__isnull=True)
    try:
        return found.get(number=int(number))
    except (ModelVersion.DoesNotExist, TypeError, ValueError):
        raise Http404("No such model version in this project.") from None


def training_runs(*, project: Project) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.filter(project=project).select_related("version", "requested_by")


def training_run_get(*, project: Project, run_id: Any) -> TrainingRun:
    try:
        return training_runs(project=project).get(pk=int(run_id))
    except (TrainingRun.DoesNotExist, TypeError, ValueError):
        raise Http404("No such training run in this project.") from None


def ranking_latest(*, project: Project) -> PoolRanking | None:
    return PoolRanking.objects.filter(project=project).select_related("version").first()


def version_servable(*, version_id: int) -> ModelVersion | None:
    """A version whose files are kept and complete, by id (for workers), else None."""
    version = ModelVersion.objects.filter(pk=version_id, pruned_at__isnull=True).select_related("project").first()
    if version is None or not version.artifact or not (artifact_path(version) / "config.json").exists():
        return None
    return version
