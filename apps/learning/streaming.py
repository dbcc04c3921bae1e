"""Stream mode: items that arrive through the API are scored on arrival.

Each new item is embedded and scored by the champion in a worker: an item the model
is unsure of (its margin or least-confidence score ranks above the pool's median) gets
a priority above every ranked item, so it joins the annotation queue at once; an item
the model is sure of gets a model label when the project auto-labels, and otherwise
waits in the pool with its score like any other item."""

from typing import Any

import numpy as np
from django.db import transaction

from apps.projects.models import Item, Project, TaskType

from . import strategies
from .ranking import _auto_label, priorities_write


def stream_items_score(*, project: Project, item_ids: list[int]) -> dict[str, Any]:
    from .modelling import predictor_load
    from .services import champion, features_for

    version = champion(project)
    if version is None or project.task_type == TaskType.SPANS or not item_ids:
        return {"scored": 0}
    features = features_for(project)
    ids = [pk for pk, ok in zip(item_ids, features.has(item_ids), strict=True) if ok]
    predictor = predictor_load(version, features)
    probs = predictor.probs_items(ids)
    multi = predictor.kind == "multi"
    uncertainty = 1 - np.abs(probs - 0.5).min(axis=1) * 2 if multi else strategies.margin(probs)
    # Above the pool's ranked priorities (which lie in 0..2): unsure new items go first.
    priorities = np.where(uncertainty >= 0.5, 2.0 + uncertainty, uncertainty)
    with transaction.atomic():
        priorities_write(ids, priorities)
        labelled = _auto_label(project, version, predictor, ids, probs if predictor.kind == "single" else None)
    return {"scored": len(ids), "queued_first": int((uncertainty >= 0.5).sum()), "auto_labelled": labelled}


def stream_items_create(*, project: Project, rows: list[dict[str, Any]]) -> list[Item]:
    """Create streamed items (already validated) and score them after commit."""
    from .tasks import stream_score_task

    with transaction.atomic():
        items = Item.objects.bulk_create(
            Item(
                project=project,
                text=row["text"],
                external_id=row.get("external_id", ""),
                metadata=row.get("metadata", {}),
            )
            for row in rows
        )
        ids = [item.pk for item in items]
        transaction.on_commit(lambda: stream_score_task.delay(project.pk, ids))
    return items
