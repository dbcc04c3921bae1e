"""Learning tests embed real texts with the bundled MiniLM (loaded once per process) and
keep their caches and model files in a folder of their own."""

import json
from pathlib import Path

import numpy as np
import pytest

from apps.annotation.models import ItemConsensus
from apps.learning import cache, embeddings
from apps.projects.models import GoldLabel, Item, Project
from apps.projects.services import project_update

DEMO = Path(__file__).resolve().parents[2] / "apps" / "projects" / "demo_data" / "news.jsonl"


_vectors: dict[tuple[str, str], np.ndarray] = {}


@pytest.fixture(autouse=True)
def own_var_dir(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path / "var"
    cache._memory.clear()
    # The same demo texts come back in many tests: embed each once per test process
    # (with the real model), so the suite stays quick.
    real = embeddings.embed

    def remembered(backbone, texts, batch_size=embeddings.BATCH_SIZE):
        missing = [t for t in dict.fromkeys(texts) if (backbone.key, t) not in _vectors]
        if missing:
            for text, vector in zip(missing, real(backbone, missing, batch_size), strict=True):
                _vectors[(backbone.key, text)] = vector
        dimension = backbone.dimension
        return np.array([_vectors[(backbone.key, t)] for t in texts], dtype=np.float32).reshape(-1, dimension)

    monkeypatch.setattr(embeddings, "embed", remembered)


def news(limit: int) -> list[dict]:
    """News items written for Quorum's demo (in the repository), with their true topic."""
    return [json.loads(line) for line in DEMO.read_text().splitlines()[:limit]]


@pytest.fixture
def labelled_project(cast):
    """A topic project: 160 items with consensus labels (their true topics), 40 gold items
    to judge by, and 80 open items to rank."""
    project = Project.objects.get(pk=cast.project.pk)
    project_update(project=project, data={"gold_ratio": 0.0, "overlap": 1})
    labels = {label.name: label for label in project.labels.all()}
    rows = news(280)
    for n, row in enumerate(rows):
        item = Item.objects.create(project=project, text=row["text"], external_id=row["id"], is_gold=160 <= n < 200)
        if n < 160:
            ItemConsensus.objects.create(
                project=project, item=item, parts=[{"start": None, "end": None, "label_id": labels[row["topic"]].pk}],
                confidence=1.0, method="majority_vote", is_provisional=False,
            )  # fmt: skip
        elif n < 200:
            GoldLabel.objects.create(item=item, label=labels[row["topic"]])
    return project
