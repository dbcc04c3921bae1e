"""Ranking the pool: the champion scores every open item and writes item priorities,
which task distribution already follows (highest first), and pre-labels.

1. The pool is every non-gold item that is not complete and has no consolidated label.
2. The champion predicts it; the project's strategy turns predictions (and, for
   committee and BALD, a bootstrap committee refitted on the champion's training set;
   for diversity and boundary, the embeddings) into scores.
3. Scores become priorities in (0, 1] by rank; the first batch is chosen without
   near-duplicates and lifted above the rest (+1), so the next annotators get a varied
   batch rather than five copies of one confusing text.
4. The top items get the champion's suggestion (pre-labels), unless the project hides
   them; with an auto-label threshold, items the model is at least that sure of get a
   model label (marked as such) instead of annotators.
A pool above ``CHUNK`` items, ranked by a strategy that scores each item on its own
(uncertainty, committee, expected model change; MNLP for spans), is split into chunks of
consecutive item ids that Celery workers score in parallel (``pool_rank_start`` ->
``pool_rank_chunk``): more workers, faster ranking. Their scores share one scale, so each
chunk writes its priorities directly; the last chunk to finish lifts the first batch.
Diversity, boundary, core-set and mixes compare items with each other and rank the
whole pool in one worker.
"""

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.annotation.consensus import (
    Prelabel,
    Verdict,
    consensus_from_model,
    suggestions_keep_only,
    suggestions_replace,
)
from apps.projects.answers import Answer, LabelPart
from apps.projects.jobs import JobState, job_finish, job_heartbeat
from apps.projects.models import Item, ItemState, PrelabelMode, Project, TaskType
from platform.errors import error_for_people
from platform.tasks import task_send_on_commit

from . import strategies
from .cache import Features
from .heads import committee_fit
from .modelling import predictor_load
from .models import ModelVersion, PoolRanking
from .selectors import champion
from .store import artifact_path, embedding_cache, features_for

logger = logging.getLogger(__name__)

BATCH = 50
SUGGESTIONS = 2000
CHUNK = 20_000
# Strategies whose score for an item does not depend on the other pool items (the
# committee is refitted with a fixed seed, so every chunk gets the same committee).
# Random is not among them: its seeded draws would repeat from chunk to chunk.
PER_ITEM = {"least_confidence", "margin", "entropy", "expected_model_change", "mnlp"}
PER_ITEM |= strategies.NEEDS_COMMITTEE


def pool_items(project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project, is_gold=False, consensus__isnull=True).exclude(state=ItemState.COMPLETE)


def pool_ids(project: Project, within: tuple[int, int] | None = None) -> list[int]:
    pool = pool_items(project) if within is None else pool_items(project).filter(pk__range=within)
    return list(pool.order_by("pk").values_list("pk", flat=True))


def scored_per_item(project: Project) -> bool:
    return project.task_type != TaskType.SINGLE_LABEL or project.sampling_strategy in PER_ITEM


def priorities_write(item_ids: Sequence[int], priorities: "Sequence[float] | np.ndarray") -> None:
    """One statement per 5,000 items (PostgreSQL: unnest; SQLite: executemany)."""
    table = Item._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(item_ids), 5000):
            ids = [int(i) for i in item_ids[start : start + 5000]]
            values = [float(p) for p in priorities[start : start + 5000]]
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {table} SET priority = v.p FROM unnest(%s::bigint[], %s::float8[]) AS v(id, p) "
                    f"WHERE {table}.id = v.id",  # nosec B608 # the model's own table name; values are bound
                    [ids, values],
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET priority = %s WHERE id = %s",  # nosec B608 # the model's own table; values bound
                    list(zip(values, ids, strict=True)),
                )


def _scores(
    project: Project, version: ModelVersion, predictor: Any, ids: list[int], features: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """(scores, probabilities) for the given pool items."""
    if predictor.kind == "spans":
        outputs = predictor.spans_items(ids)
        return strategies.mnlp([probs for _, probs in outputs]), None
    probs = predictor.probs_items(ids)
    if predictor.kind == "multi":
        # Per label, how near one half; an item's score is its least certain label.
        return 1 - np.abs(probs - 0.5).min(axis=1) * 2, probs
    name = project.sampling_strategy if project.sampling_strategy not in ("mnlp",) else "margin"
    embeddings = features.smoothed[features.rows(ids)] if features is not None else None
    inputs: dict[str, Any] = {"probs": probs, "embeddings": embeddings, "batch": BATCH}
    wanted = set(project.strategy_weights) if name == "mix" and project.strategy_weights else {name}
    if wanted & ({"boundary", "core_set"} | strategies.NEEDS_COMMITTEE) and features is not None:
        train = np.load(artifact_path(version) / "train_set.npz")
        known = features.has(train["ids"])
        labelled = features.smoothed[features.rows(train["ids"][known])]
        inputs.update(labelled=labelled, labels=train["labels"][known])
        if wanted & strategies.NEEDS_COMMITTEE:
            assert embeddings is not None
            members = committee_fit(labelled, train["labels"][known], c=getattr(predictor.head, "c", 1.0))
            inputs["committee"] = np.stack([m.predict_proba(embeddings) for m in members])
    return strategies.strategy_scores(name, weights=project.strategy_weights or None, **inputs), probs


def _predictor(project: Project, version: ModelVersion) -> tuple[Any, Features | None]:
    """The version's predictor and, for classification, the smoothed features of every item."""
    features = None if project.task_type == TaskType.SPANS else features_for(project)
    return predictor_load(version, features if features is not None else embedding_cache(project).features()), features


def pool_rank(*, project: Project, item_ids: list[int] | None = None) -> dict[str, int]:
    """Score the pool (or these items of it) with the champion and write priorities."""
    version = champion(project=project)
    if version is None:
        return {"ranked": 0}
    ids = item_ids if item_ids is not None else pool_ids(project)
    if not ids:
        return {"ranked": 0}
    predictor, features = _predictor(project, version)
    if features is not None:
        ids = [pk for pk, ok in zip(ids, features.has(ids), strict=True) if ok]
    scores, probs = _scores(project, version, predictor, ids, features)
    priority = strategies.rank_normalise(scores) if len(scores) > 1 else np.ones(len(scores))
    if features is not None and item_ids is None and len(ids) > BATCH:
        top = np.argsort(-scores, kind="stable")[: BATCH * 10]
        first = top[strategies.select_batch(scores[top], features.smoothed[features.rows(np.array(ids)[top])], BATCH)]
        priority[first] += 1.0
    with transaction.atomic():
        priorities_write(ids, priority)
        suggested = _suggest(project, version, predictor, ids, priority, probs)
        labelled = auto_label(project=project, version=version, predictor=predictor, ids=ids, probs=probs)
    return {"ranked": len(ids), "suggested": suggested, "auto_labelled": labelled}


def pool_rank_start(*, project: Project) -> dict[str, int]:
    """Rank the pool after a promotion, as a ranking job: here, as one chunk, if the pool is
    small or the strategy compares items with each other, otherwise as chunks for the
    workers. Either way a worker killed half-way leaves a ranking that the job sweep resumes."""
    version = champion(project=project)
    ids = pool_ids(project) if version is not None else []
    if version is None or not ids:
        return {"ranked": 0}
    if len(ids) <= CHUNK or not scored_per_item(project):
        ranking = _ranking_create(project, version, len(ids), [(ids[0], ids[-1])])
        return pool_rank_chunk(ranking_id=ranking.pk, index=0, first=ids[0], last=ids[-1])
    if project.task_type != TaskType.SPANS:
        features_for(project)  # embed and smooth once here, not once per worker
    bounds = [(ids[start], ids[min(start + CHUNK, len(ids)) - 1]) for start in range(0, len(ids), CHUNK)]
    ranking = _ranking_create(project, version, len(ids), bounds)
    for index, (first, last) in enumerate(bounds):
        task_send_on_commit("learning.pool_rank_chunk", ranking.pk, index, first, last)
    return {"ranked": 0, "chunks": len(bounds)}


@transaction.atomic
def _ranking_create(project: Project, version: ModelVersion, items: int, bounds: list[tuple[int, int]]) -> PoolRanking:
    """A new running ranking, cancelling the one running before (one active per project).
    The project row is locked so that two rankings started at once follow each other."""
    Project.objects.select_for_update().get(pk=project.pk)
    now = timezone.now()
    PoolRanking.objects.filter(project=project).active().update(
        state=JobState.CANCELLED, error="Superseded by a newer ranking.", finished_at=now
    )
    return PoolRanking.objects.create(
        project=project, version=version, item_count=items, chunks_total=len(bounds), chunk_bounds=bounds,
        state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=1, stage=f"Scoring {items:,} items",
    )  # fmt: skip


def pool_rank_chunk(*, ranking_id: int, index: int, first: int, last: int) -> dict[str, int]:
    """Score the pool items with ids in [first, last] for one ranking (the whole pool, with
    the whole-pool ranking, when it is the only chunk), beating for the ranking meanwhile.
    Idempotent: a redelivered chunk rewrites the same priorities and is counted once."""
    ranking = PoolRanking.objects.select_related("project", "version").filter(pk=ranking_id).first()
    if ranking is None or ranking.state != JobState.RUNNING:
        return {"ranked": 0}
    with job_heartbeat(ranking):
        return _chunk_rank(ranking, index, first, last)


def _chunk_rank(ranking: PoolRanking, index: int, first: int, last: int) -> dict[str, int]:
    ranking_id, project, version = ranking.pk, ranking.project, ranking.version
    if ranking.chunks_total == 1:
        try:
            outcome = pool_rank(project=project)
        except Exception as error:
            _ranking_fail(ranking_id, index, error)
            raise
        _chunk_done(ranking_id, index)  # pool_rank lifted its first batch and replaced every pre-label
        return outcome
    try:
        ids = pool_ids(project, within=(first, last))
        predictor, features = _predictor(project, version)
        if features is not None:
            ids = [pk for pk, ok in zip(ids, features.has(ids), strict=True) if ok]
        scores, probs = _scores(project, version, predictor, ids, features) if ids else (np.zeros(0), None)
        # One scale for every chunk: a monotone squash of the raw scores into (0, 1).
        priority = 0.5 + 0.5 * scores / (1 + np.abs(scores))
        quota = math.ceil(SUGGESTIONS * len(ids) / max(ranking.item_count, 1))
        with transaction.atomic():
            priorities_write(ids, priority)
            suggested = _suggest(project, version, predictor, ids, priority, probs, limit=quota, within=(first, last))
            labelled = auto_label(project=project, version=version, predictor=predictor, ids=ids, probs=probs)
    except Exception as error:
        _ranking_fail(ranking_id, index, error)
        raise
    if _chunk_done(ranking_id, index):
        _ranking_finish(ranking, features)
    return {"ranked": len(ids), "suggested": suggested, "auto_labelled": labelled}


def _ranking_fail(ranking_id: int, index: int, error: Exception) -> None:
    message = error_for_people(error, logger=logger, job=f"Chunk {index} of ranking {ranking_id}")
    PoolRanking.objects.filter(pk=ranking_id, state=JobState.RUNNING).update(
        state=JobState.FAILED, error=message, finished_at=timezone.now()
    )


def _chunk_done(ranking_id: int, index: int) -> bool:
    """Count a chunk once; True for the call that completes the ranking."""
    with transaction.atomic():
        ranking = PoolRanking.objects.select_for_update().get(pk=ranking_id)
        if ranking.state != JobState.RUNNING or index in ranking.chunks_done:
            return False
        ranking.chunks_done = sorted([*ranking.chunks_done, index])
        ranking.progress = round(100 * len(ranking.chunks_done) / ranking.chunks_total)
        ranking.heartbeat_at = timezone.now()
        ranking.save(update_fields=["chunks_done", "progress", "heartbeat_at"])
        finished = len(ranking.chunks_done) == ranking.chunks_total
        if finished:
            job_finish(ranking, state=JobState.SUCCEEDED, stage=f"Ranked {ranking.item_count:,} items")
    return finished


def _ranking_finish(ranking: PoolRanking, features: Features | None) -> None:
    """Lift a varied first batch above the rest, and drop pre-labels older models left."""
    project = ranking.project
    suggestions_keep_only(project=project, source=_source(ranking.version))
    if features is None:
        return
    top = list(
        pool_items(project)
        .filter(priority__lt=1.0)
        .order_by("-priority", "pk")
        .values_list("pk", "priority")[: BATCH * 10]
    )
    top = [(pk, p) for pk, p in top if features.has([pk])[0]]
    if len(top) <= BATCH:
        return
    ids = np.array([pk for pk, _ in top])
    chosen = strategies.select_batch(np.array([p for _, p in top]), features.smoothed[features.rows(ids)], BATCH)
    priorities_write([int(pk) for pk in ids[chosen]], [p + 1.0 for p in np.array([p for _, p in top])[chosen]])


def _source(version: ModelVersion) -> str:
    """How pre-labels and model labels name the version that made them."""
    return f"model v{version.number}"


def _scores_by_label(classes: Sequence[int], probabilities: np.ndarray) -> dict[str, float]:
    return {str(label): round(float(q), 4) for label, q in zip(classes, probabilities, strict=True)}


def _suggest(
    project: Project,
    version: ModelVersion,
    predictor: Any,
    ids: list[int],
    priority: np.ndarray,
    probs: np.ndarray | None,
    limit: int = SUGGESTIONS,
    within: tuple[int, int] | None = None,
) -> int:
    """Pre-labels for the ``limit`` highest-priority items; they replace the project's
    earlier ones (or, for one chunk, those of the items in ``within``)."""
    if project.prelabel_mode == PrelabelMode.HIDE:
        return 0
    order = np.argsort(-priority)[:limit]
    chosen = [ids[i] for i in order]
    prelabels = []
    if predictor.kind == "spans":
        for item_id, (answer, token_probs) in zip(chosen, predictor.spans_items(chosen), strict=True):
            confidence = float(np.mean(token_probs.max(axis=1))) if len(token_probs) else None
            prelabels.append(Prelabel(item_id, answer, confidence, {}))
    else:
        assert probs is not None
        for position in order:
            p = probs[position]
            if predictor.kind == "multi":
                answer = Answer(
                    LabelPart(None, None, label) for label, q in zip(predictor.classes, p, strict=True) if q >= 0.5
                )
                confidence = float(np.min(np.maximum(p, 1 - p)))
            else:
                best = int(p.argmax())
                answer, confidence = Answer([LabelPart(None, None, predictor.classes[best])]), float(p[best])
            prelabels.append(Prelabel(ids[position], answer, confidence, _scores_by_label(predictor.classes, p)))
    return suggestions_replace(project=project, prelabels=prelabels, source=_source(version), within=within)


def auto_label(
    *, project: Project, version: ModelVersion, predictor: Any, ids: list[int], probs: np.ndarray | None
) -> int:
    """Model labels for items the champion is sure enough of, always marked as the model's."""
    threshold = project.auto_label_threshold
    if threshold is None or probs is None or predictor.kind != "single":
        return 0
    verdicts = {
        ids[i]: Verdict(
            Answer([LabelPart(None, None, predictor.classes[int(probs[i].argmax())])]),
            float(probs[i].max()),
            _scores_by_label(predictor.classes, probs[i]),
        )
        for i in np.flatnonzero(probs.max(axis=1) >= threshold)
    }
    return consensus_from_model(project=project, verdicts=verdicts, source=_source(version))
