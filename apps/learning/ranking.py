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
Chunks of the pool can be scored in parallel (``pool_rank_chunk``) for the strategies
that score each item on its own.
"""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from apps.annotation.models import ItemConsensus
from apps.projects.models import Item, ItemState, Project, TaskType

from . import strategies
from .heads import committee_fit
from .models import ModelVersion, Suggestion

logger = logging.getLogger(__name__)

BATCH = 50
SUGGESTIONS = 2000
CHUNK = 20_000
PER_ITEM = {"random", "least_confidence", "margin", "entropy", "expected_model_change"}


def pool_ids(project: Project) -> list[int]:
    return list(
        Item.objects.filter(project=project, is_gold=False, consensus__isnull=True)
        .exclude(state=ItemState.COMPLETE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


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
                    f"WHERE {table}.id = v.id",
                    [ids, values],
                )
            else:
                cursor.executemany(
                    f"UPDATE {table} SET priority = %s WHERE id = %s", list(zip(values, ids, strict=True))
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
        from .services import artifact_path

        train = np.load(artifact_path(version) / "train_set.npz")
        known = features.has(train["ids"])
        labelled = features.smoothed[features.rows(train["ids"][known])]
        inputs.update(labelled=labelled, labels=train["labels"][known])
        if wanted & strategies.NEEDS_COMMITTEE:
            assert embeddings is not None
            members = committee_fit(labelled, train["labels"][known], c=getattr(predictor.head, "c", 1.0))
            inputs["committee"] = np.stack([m.predict_proba(embeddings) for m in members])
    return strategies.strategy_scores(name, weights=project.strategy_weights or None, **inputs), probs


def pool_rank(*, project: Project, item_ids: list[int] | None = None) -> dict[str, int]:
    """Score the pool (or these items of it) with the champion and write priorities."""
    from .modelling import predictor_load
    from .services import champion, embedding_cache, features_for

    version = champion(project)
    if version is None:
        return {"ranked": 0}
    ids = item_ids if item_ids is not None else pool_ids(project)
    if not ids:
        return {"ranked": 0}
    features = None if project.task_type == TaskType.SPANS else features_for(project)
    if features is not None:
        ids = [pk for pk, ok in zip(ids, features.has(ids), strict=True) if ok]
    predictor = predictor_load(version, features if features is not None else embedding_cache(project).features())
    scores, probs = _scores(project, version, predictor, ids, features)
    priority = strategies.rank_normalise(scores) if len(scores) > 1 else np.ones(len(scores))
    if features is not None and item_ids is None and len(ids) > BATCH:
        top = np.argsort(-scores)[: BATCH * 10]
        first = top[strategies.select_batch(scores[top], features.smoothed[features.rows(np.array(ids)[top])], BATCH)]
        priority[first] += 1.0
    with transaction.atomic():
        priorities_write(ids, priority)
        suggested = _suggest(project, version, predictor, ids, priority, probs)
        labelled = _auto_label(project, version, predictor, ids, probs)
    return {"ranked": len(ids), "suggested": suggested, "auto_labelled": labelled}


def _suggest(
    project: Project,
    version: ModelVersion,
    predictor: Any,
    ids: list[int],
    priority: np.ndarray,
    probs: np.ndarray | None,
) -> int:
    if project.prelabel_mode == "hide":
        return 0
    order = np.argsort(-priority)[:SUGGESTIONS]
    chosen = [ids[i] for i in order]
    rows = []
    if predictor.kind == "spans":
        for item_id, (spans, token_probs) in zip(chosen, predictor.spans_items(chosen), strict=True):
            confidence = float(np.mean(token_probs.max(axis=1))) if len(token_probs) else None
            parts = [{"start": s, "end": e, "label_id": label} for s, e, label in spans]
            rows.append(
                Suggestion(item_id=item_id, parts=parts, confidence=confidence, source=f"model v{version.number}")
            )
    else:
        assert probs is not None
        for position in order:
            p = probs[position]
            if predictor.kind == "multi":
                parts = [
                    {"start": None, "end": None, "label_id": label}
                    for label, q in zip(predictor.classes, p, strict=True)
                    if q >= 0.5
                ]
                confidence = float(np.min(np.maximum(p, 1 - p)))
            else:
                best = int(p.argmax())
                parts, confidence = [{"start": None, "end": None, "label_id": predictor.classes[best]}], float(p[best])
            scores = {str(label): round(float(q), 4) for label, q in zip(predictor.classes, p, strict=True)}
            rows.append(Suggestion(item_id=ids[position], parts=parts, confidence=confidence, scores=scores,
                                   source=f"model v{version.number}"))  # fmt: skip
    Suggestion.objects.filter(item__project=project).delete()
    Suggestion.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _auto_label(
    project: Project, version: ModelVersion, predictor: Any, ids: list[int], probs: np.ndarray | None
) -> int:
    """Model labels for items the champion is sure enough of, always marked as the model's."""
    threshold = project.auto_label_threshold
    if threshold is None or probs is None or predictor.kind != "single":
        return 0
    sure = np.flatnonzero(probs.max(axis=1) >= threshold)
    untouched = set(
        Item.objects.filter(pk__in=[ids[i] for i in sure], annotation_count=0, lease_count=0).values_list(
            "pk", flat=True
        )
    )
    now = timezone.now()
    rows = [
        ItemConsensus(
            project=project,
            item_id=ids[i],
            parts=[{"start": None, "end": None, "label_id": predictor.classes[int(probs[i].argmax())]}],
            confidence=float(probs[i].max()),
            posteriors={str(label): round(float(q), 4) for label, q in zip(predictor.classes, probs[i], strict=True)},
            method=f"model v{version.number}",
            is_provisional=False,
            is_model_label=True,
        )
        for i in sure
        if ids[i] in untouched
    ]
    ItemConsensus.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    Item.objects.filter(pk__in=[row.item_id for row in rows]).update(state=ItemState.COMPLETE, consolidated_at=now)
    return len(rows)
