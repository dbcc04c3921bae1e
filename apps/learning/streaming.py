"""Stream mode: items that arrive through the API are scored on arrival.

Each new item is embedded and scored by the champion in a worker: an item the model
is unsure of (its margin or least-confidence score ranks above the pool's median) gets
a priority above every ranked item, so it joins the annotation queue at once; an item
the model is sure of gets a model label when the project auto-labels, and otherwise
waits in the pool with its score like any other item."""

from typing import Any

import numpy as np
from django.db import transaction

from apps.projects.models import Project, TaskType

from . import strategies
from .modelling import predictor_load
from .ranking import auto_label, priorities_write
from .selectors import champion
from .store import embeddings_compute, features_for


def stream_items_score(*, project: Project, item_ids: list[int]) -> dict[str, Any]:
    """Embed and score streamed items; unsure ones go to the front of the queue."""
    embeddings_compute(project, item_ids)
    version = champion(project=project)
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
        labelled = auto_label(
            project=project,
            version=version,
            predictor=predictor,
            ids=ids,
            probs=probs if predictor.kind == "single" else None,
        )
    return {"scored": len(ids), "queued_first": int((uncertainty >= 0.5).sum()), "auto_labelled": labelled}
