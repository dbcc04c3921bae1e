"""Item embeddings cached on disk, per project and backbone.

Layout: ``VAR_DIR/embeddings/project-<id>/<backbone key>/``
- ``chunk-<uuid>.npz``: item ids and their float16 vectors, written whole by one task
  (to a temporary name, then renamed, so a reader never sees half a chunk);
- ``features.npz``: the neighbour-smoothed features of every cached item, rebuilt when
  the set of cached items changes, plus the neighbour base that new texts are smoothed
  against.

Several chunk tasks may run at once; if two embed the same item, the later chunk wins
when loading, and both hold the same vector anyway.
"""

import hashlib
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from .features import base_sample, smooth


def _root(project_id: int, backbone_key: str) -> Path:
    return Path(settings.VAR_DIR) / "embeddings" / f"project-{project_id}" / backbone_key


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npz")
    # numpy's stub reads the keyword arrays as its allow_pickle flag.
    np.savez(temporary, **arrays)  # type: ignore[arg-type]
    os.replace(temporary, path)


@dataclass
class Features:
    ids: np.ndarray  # int64, sorted
    raw: np.ndarray  # float32 embeddings
    smoothed: np.ndarray  # float32 features the heads use
    base: np.ndarray  # the neighbour base new texts are smoothed against
    signature: str

    def rows(self, item_ids: "np.ndarray | Sequence[int]") -> np.ndarray:
        """Positions of ``item_ids`` in this set (all must be cached)."""
        return np.searchsorted(self.ids, np.asarray(item_ids, dtype=np.int64))

    def has(self, item_ids: "np.ndarray | Sequence[int]") -> np.ndarray:
        wanted = np.asarray(item_ids, dtype=np.int64)
        positions = np.clip(np.searchsorted(self.ids, wanted), 0, max(len(self.ids) - 1, 0))
        return (self.ids[positions] == wanted) if len(self.ids) else np.zeros(len(wanted), dtype=bool)


_memory: dict[tuple[int, str], Features] = {}
_lock = threading.Lock()


class EmbeddingCache:
    def __init__(self, project_id: int, backbone_key: str):
        self.project_id = project_id
        self.backbone_key = backbone_key
        self.root = _root(project_id, backbone_key)

    def chunks(self) -> list[Path]:
        return sorted(self.root.glob("chunk-*.npz"), key=lambda p: p.stat().st_mtime) if self.root.is_dir() else []

    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of every cached item, sorted by id."""
        ids_parts, vector_parts = [], []
        for path in self.chunks():
            with np.load(path) as chunk:
                ids_parts.append(chunk["ids"])
                vector_parts.append(chunk["vectors"])
        if not ids_parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.concatenate(ids_parts)
        vectors = np.concatenate(vector_parts).astype(np.float32)
        # Later chunks win for repeated ids: keep the last occurrence.
        last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
        order = last[np.argsort(ids[last])]
        return ids[order], vectors[order]

    def cached_ids(self) -> set[int]:
        found: set[int] = set()
        for path in self.chunks():
            with np.load(path) as chunk:
                found.update(int(i) for i in chunk["ids"])
        return found

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        if ids:
            _atomic_save(
                self.root / f"chunk-{uuid.uuid4().hex}.npz",
                ids=np.asarray(ids, dtype=np.int64),
                vectors=vectors.astype(np.float16),
            )

    def _signature(self) -> str:
        names = "|".join(f"{p.name}:{p.stat().st_size}" for p in self.chunks())
        return hashlib.sha256(names.encode()).hexdigest()[:16]

    def features(self) -> Features:
        """Smoothed features of every cached item; rebuilt (and kept in memory) only when
        chunks were added since."""
        signature = self._signature()
        key = (self.project_id, self.backbone_key)
        with _lock:
            cached = _memory.get(key)
            if cached is not None and cached.signature == signature:
                return cached
        path = self.root / "features.npz"
        if path.exists():
            with np.load(path) as stored:
                if str(stored["signature"]) == signature:
                    features = Features(stored["ids"], stored["raw"], stored["smoothed"], stored["base"], signature)
                    with _lock:
                        _memory[key] = features
                    return features
        ids, raw = self.raw()
        base = base_sample(raw) if len(raw) else raw
        smoothed = smooth(raw, base) if len(raw) else raw
        features = Features(ids, raw, smoothed, base.astype(np.float32), signature)
        if len(ids):
            _atomic_save(path, ids=ids, raw=raw, smoothed=smoothed, base=features.base, signature=np.array(signature))
        with _lock:
            _memory[key] = features
        return features
