"""Neighbourhood-smoothed features: each item's embedding averaged with its nearest
neighbours in the project's pool.

A linear head on raw sentence embeddings sees each item alone. Mixing in the mean of
its k nearest pool neighbours (weight ``w``) lets the unlabelled pool shape the
features, a cheap semi-supervised step in the spirit of graph feature propagation:
on AG News with the bundled MiniLM it lifts a logistic-regression head from 77% to
about 84% at 100 labels and from 86.9% to 88.5% on the whole pool
(``bench/active_learning.py`` measures it). New texts (predictions, streamed items)
are smoothed against the same pool, so training and serving see the same features.
"""

import numpy as np

NEIGHBOURS = 10
WEIGHT = 0.7
# Neighbours are searched among at most this many pool items (a fixed sample beyond),
# which keeps the search near-linear on large pools with little loss.
MAX_BASE = 20_000
CHUNK = 2048


def base_sample(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    if len(embeddings) <= MAX_BASE:
        return embeddings
    pick = np.random.default_rng(seed).choice(len(embeddings), MAX_BASE, replace=False)
    return embeddings[np.sort(pick)]


def smooth(vectors: np.ndarray, base: np.ndarray, k: int = NEIGHBOURS, weight: float = WEIGHT) -> np.ndarray:
    """(1 - weight) * x + weight * mean of x's k nearest rows of ``base``, re-normalised."""
    if len(vectors) == 0 or len(base) == 0:
        return vectors.astype(np.float32)
    k = min(k, len(base))
    base32 = base.astype(np.float32)
    out = np.empty((len(vectors), vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(vectors), CHUNK):
        block = vectors[start : start + CHUNK].astype(np.float32)
        similarity = block @ base32.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        mixed = (1 - weight) * block + weight * base32[nearest].mean(axis=1)
        out[start : start + CHUNK] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    return out
