"""Celery tasks of the learning side: thin, idempotent, each calling one service."""

from celery import shared_task

from apps.projects.models import Project


@shared_task(name="learning.embed_chunk")
def embed_chunk_task(project_id: int, item_ids: list[int]) -> None:
    """Embed one chunk of new items. Repeating it only rewrites the same vectors."""
    from .services import embedding_cache, embeddings_compute

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    cached = embedding_cache(project).cached_ids()
    embeddings_compute(project, [pk for pk in item_ids if pk not in cached])


@shared_task(name="learning.training_run")
def training_run_task(run_id: int) -> None:
    from .services import training_run_execute

    training_run_execute(run_id=run_id)


@shared_task(name="learning.pool_rank")
def pool_rank_task(project_id: int) -> None:
    from .ranking import pool_rank_start

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        pool_rank_start(project=project)


@shared_task(name="learning.pool_rank_chunk")
def pool_rank_chunk_task(ranking_id: int, index: int, first: int, last: int) -> None:
    """Score one chunk of a large pool; chunks of one ranking run on any free workers."""
    from .ranking import pool_rank_chunk

    pool_rank_chunk(ranking_id=ranking_id, index=index, first=first, last=last)


@shared_task(name="learning.stream_score")
def stream_score_task(project_id: int, item_ids: list[int]) -> None:
    """Items that arrived through the stream API: embed and score them at once."""
    from .services import embeddings_compute
    from .streaming import stream_items_score

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    embeddings_compute(project, item_ids)
    stream_items_score(project=project, item_ids=item_ids)


@shared_task(name="learning.export_build")
def export_build_task(version_id: int) -> None:
    """Prepare a version's downloads (copying the backbone and exporting ONNX take a while)."""
    from .models import ModelVersion
    from .services import artifact_path
    from .serving import export_build

    version = ModelVersion.objects.filter(pk=version_id, pruned_at__isnull=True).first()
    if version is not None and version.artifact and (artifact_path(version) / "config.json").exists():
        export_build(version)
