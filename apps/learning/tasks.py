"""Celery tasks of the learning side: thin, idempotent, each calling one service. Services
send them by name (``platform.tasks``), so nothing below imports this module."""

from celery import shared_task

from apps.projects.selectors import project_get

from . import ranking, services, serving, streaming, training, weak
from .selectors import version_servable


@shared_task(name="learning.embedding_job")
def embedding_job_task(job_id: int) -> None:
    """Embed one chunk of new items; only the job's holder works, so repeating is harmless."""
    services.embedding_job_run(job_id=job_id)


@shared_task(name="learning.training_run")
def training_run_task(run_id: int) -> None:
    training.training_run_execute(run_id=run_id)


@shared_task(name="learning.pool_rank")
def pool_rank_task(project_id: int) -> None:
    project = project_get(project_id=project_id)
    if project is not None:
        ranking.pool_rank_start(project=project)


@shared_task(name="learning.pool_rank_chunk")
def pool_rank_chunk_task(ranking_id: int, index: int, first: int, last: int) -> None:
    """Score one chunk of a large pool; chunks of one ranking run on any free workers."""
    ranking.pool_rank_chunk(ranking_id=ranking_id, index=index, first=first, last=last)


@shared_task(name="learning.rule_apply_chunk")
def rule_apply_chunk_task(application_id: int, index: int, first: int, last: int) -> None:
    """Apply the labelling functions to one chunk of items; chunks run on any free workers."""
    weak.rule_apply_chunk(application_id=application_id, index=index, first=first, last=last)


@shared_task(name="learning.rule_application_fit")
def rule_application_fit_task(application_id: int) -> None:
    """Fit the label model of an application whose chunks are done (a resumed one)."""
    weak.rule_application_fit(application_id=application_id)


@shared_task(name="learning.stream_score")
def stream_score_task(project_id: int, item_ids: list[int]) -> None:
    """Items that arrived through the stream API: embed and score them at once."""
    project = project_get(project_id=project_id)
    if project is not None:
        streaming.stream_items_score(project=project, item_ids=item_ids)


@shared_task(name="learning.export_build")
def export_build_task(version_id: int) -> None:
    """Prepare a version's downloads (copying the backbone and exporting ONNX take a while)."""
    version = version_servable(version_id=version_id)
    if version is not None:
        serving.export_build(version)
