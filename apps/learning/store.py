"""Where learning keeps its files: model artifacts, and each project's embeddings and
smoothed features per backbone. Modelling, ranking, serving, streaming and the services
all read and write through here.

Layout under ``VAR_DIR``:
- ``models/project-<id>/v<number>-run<run id>/``: one version's artifact (``config.json``
  plus safetensors; see ``modelling``);
- ``embeddings/project-<id>/<backbone key>/``: the embedding cache (see ``cache``).
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.projects.models import Item, Project
from platform.backbones import BackboneUnavailable, backbone_folder, backbone_name_of

from . import embeddings
from .cache import EmbeddingCache, Features
from .models import ModelVersion

# New items are embedded in chunks of this many, so progress shows and memory stays flat.
EMBED_CHUNK = 512


# --- model artifacts ------------------------------------------------------------------------------


def models_root() -> Path:
    return Path(settings.VAR_DIR) / "models"


def artifact_dir(*, project: Project, number: int, run_id: int) -> Path:
    """Where a new version's files go."""
    return models_root() / f"project-{project.pk}" / f"v{number}-run{run_id}"


def artifact_path(version: ModelVersion) -> Path:
    return models_root() / version.artifact


def artifact_config(version: ModelVersion) -> dict[str, Any]:
    return json.loads((artifact_path(version) / "config.json").read_text())


# --- backbones and embeddings ------------------------------------------------------------------------


def backbone_path(project: Project) -> str:
    """The folder of the project's backbone (a name from the site's list)."""
    return str(backbone_folder(project.backbone))


def backbone_resolve(recorded: str) -> str:
    """The folder of the backbone an artifact records: its name, or, in artifacts of older
    code, its folder, accepted only when the site still offers that folder."""
    name = recorded if recorded in settings.QUORUM_BACKBONES else backbone_name_of(recorded)
    if name is None:
        raise BackboneUnavailable("This model was trained on a backbone the site no longer offers; train a new one.")
    return str(backbone_folder(name))


def backbone_key(path: str) -> str:
    """Names an embedding space: the backbone's folder, a hash of its path, the token limit."""
    name = Path(path).name if Path(path).name != "model" else Path(path).parent.name
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"{name}-{digest}-{embeddings.MAX_TOKENS}"


def embedding_cache(project: Project, path: str | None = None) -> EmbeddingCache:
    return EmbeddingCache(project.pk, backbone_key(path or backbone_path(project)))


def embeddings_missing(project: Project, path: str | None = None) -> list[int]:
    cached = embedding_cache(project, path).cached_ids()
    return [pk for pk in Item.objects.filter(project=project).values_list("pk", flat=True) if pk not in cached]


def embeddings_compute(project: Project, item_ids: list[int], path: str | None = None) -> int:
    """Embed these items and add them to the cache, as one chunk."""
    path = path or backbone_path(project)
    texts = dict(Item.objects.filter(project=project, pk__in=item_ids).values_list("pk", "text"))
    ids = [pk for pk in item_ids if pk in texts]
    if not ids:
        return 0
    vectors = embeddings.embed(embeddings.backbone_load(path), [texts[pk] for pk in ids])
    embedding_cache(project, path).add(ids, vectors)
    return len(ids)


def features_for(project: Project, progress: Callable[[float], None] | None = None) -> Features:
    """Smoothed features of every item, embedding what is missing first."""
    missing = embeddings_missing(project)
    for done in range(0, len(missing), EMBED_CHUNK):
        embeddings_compute(project, missing[done : done + EMBED_CHUNK])
        if progress:
            progress(min(1.0, (done + EMBED_CHUNK) / len(missing)))
    return embedding_cache(project).features()
