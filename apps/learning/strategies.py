"""Active-learning strategies: which unlabelled items are worth a person's time.

Each strategy maps the model's view of the pool to one score per item; higher means
"label this sooner". They are pure functions of numpy arrays, so the same code ranks a
project's pool in a worker and runs the benchmark campaigns.

Inputs:
- ``probs``: (n, classes) predicted probabilities of the pool items;
- ``committee``: (members, n, classes) probabilities from a bootstrap ensemble of heads;
- ``embeddings``: (n, d) L2-normalised item embeddings;
- ``labelled`` / ``labels``: embeddings and class indices of the labelled items.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.cluster import MiniBatchKMeans

EPS = 1e-12


def least_confidence(probs: np.ndarray, **_: Any) -> np.ndarray:
    return 1.0 - probs.max(axis=1)


def margin(probs: np.ndarray, **_: Any) -> np.ndarray:
    """Small gap between the two likeliest classes = high score."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray, **_: Any) -> np.ndarray:
    return -(probs * np.log(probs + EPS)).sum(axis=1)


def vote_entropy(committee: np.ndarray, **_: Any) -> np.ndarray:
    """Committee disagreement: entropy of the members' hard votes."""
    members, n, classes = committee.shape
    votes = committee.argmax(axis=2)
    shares = np.zeros((n, classes))
    for member in range(members):
        shares[np.arange(n), votes[member]] += 1.0 / members
    return -(shares * np.log(shares + EPS)).sum(axis=1)


def mean_kl(committee: np.ndarray, **_: Any) -> np.ndarray:
    """Committee disagreement: mean KL divergence of each member from the consensus."""
    consensus = committee.mean(axis=0)
    kl = (committee * (np.log(committee + EPS) - np.log(consensus + EPS)[None])).sum(axis=2)
    return kl.mean(axis=0)


def bald(committee: np.ndarray, **_: Any) -> np.ndarray:
    """Mutual information between the label and the model (BALD), with the ensemble as the
    posterior sample: entropy of the mean minus mean entropy."""
    mean = committee.mean(axis=0)
    total = -(mean * np.log(mean + EPS)).sum(axis=1)
    expected = -(committee * np.log(committee + EPS)).sum(axis=2).mean(axis=0)
    return total - expected


def expected_model_change(probs: np.ndarray, embeddings: np.ndarray, **_: Any) -> np.ndarray:
    """Expected gradient length of a softmax-linear head: for label y the gradient is
    (p - e_y) x^T, whose norm is |p - e_y| |x|; take its expectation under p."""
    norms = np.linalg.norm(embeddings, axis=1)
    classes = probs.shape[1]
    expected = np.zeros(len(probs))
    for y in range(classes):
        one_hot = np.zeros(classes)
        one_hot[y] = 1.0
        expected += probs[:, y] * np.linalg.norm(probs - one_hot[None], axis=1)
    return expected * norms


def diversity(embeddings: np.ndarray, batch: int = 50, seed: int = 0, **_: Any) -> np.ndarray:
    """k-means over the pool (k = batch): the item nearest each cluster centre scores
    highest, so a batch covers the pool rather than one corner of it."""
    k = max(1, min(batch, len(embeddings)))
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit(embeddings)
    distance = np.linalg.norm(embeddings - model.cluster_centers_[model.labels_], axis=1)
    scores = 1.0 / (1.0 + distance)
    # Each cluster's most central item ranks above every other item: one per cluster first.
    for cluster in np.unique(model.labels_):
        members = np.flatnonzero(model.labels_ == cluster)
        scores[members[np.argmin(distance[members])]] += 1.0
    return scores


def core_set(embeddings: np.ndarray, labelled: np.ndarray, batch: int = 50, **_: Any) -> np.ndarray:
    """Greedy k-centre: repeatedly take the item farthest from everything labelled or
    taken; the order of taking becomes the score."""
    n = len(embeddings)
    distance = np.full(n, np.inf) if len(labelled) == 0 else 1.0 - np.max(embeddings @ labelled.T, axis=1)
    score = np.zeros(n)
    for rank in range(min(batch, n)):
        pick = int(np.argmax(distance))
        score[pick] = batch - rank
        distance = np.minimum(distance, 1.0 - embeddings @ embeddings[pick])
    return score


def boundary(
    embeddings: np.ndarray, labelled: np.ndarray, labels: np.ndarray, probs: np.ndarray | None = None, **_: Any
) -> np.ndarray:
    """Boundary search: the midpoint between each labelled item and its nearest labelled
    item of another class lies near the decision boundary; the pool item nearest each
    midpoint scores above every other item (closer pairs higher). Other items are
    ordered by margin, below those. Taking one item per midpoint keeps a batch from
    piling into a single ambiguous region."""
    n = len(embeddings)
    scores = 0.5 * rank_normalise(margin(probs)) if probs is not None else np.zeros(n)
    if len(labelled) < 2 or len(set(labels.tolist())) < 2:
        return scores
    similarity = labelled @ labelled.T
    similarity = np.where(labels[:, None] != labels[None, :], similarity, -np.inf)
    partner = similarity.argmax(axis=1)
    closeness = similarity[np.arange(len(labelled)), partner]
    midpoints = labelled + labelled[partner]
    midpoints /= np.linalg.norm(midpoints, axis=1, keepdims=True) + EPS
    nearest = (midpoints @ embeddings.T).argmax(axis=1)
    for pair, item in enumerate(nearest):
        scores[item] = max(scores[item], 1.0 + (closeness[pair] + 1) / 2)
    return scores


def random_scores(n: int, seed: int = 0, **_: Any) -> np.ndarray:
    return np.random.default_rng(seed).random(n)


def mnlp(token_probs: list[np.ndarray], **_: Any) -> np.ndarray:
    """Maximum normalised log-probability for sequence labelling (Shen et al. 2017): the
    mean over tokens of the log-probability of the best tag; low = unsure = high score."""
    return np.array([-float(np.mean(np.log(p.max(axis=1) + EPS))) if len(p) else 0.0 for p in token_probs])


STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "committee": vote_entropy,
    "committee_kl": mean_kl,
    "bald": bald,
    "expected_model_change": expected_model_change,
    "diversity": diversity,
    "core_set": core_set,
    "boundary": boundary,
}
NEEDS_COMMITTEE = {"committee", "committee_kl", "bald"}


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores to ranks in [0, 1], so strategies on different scales can be mixed. Equal
    scores get equal ranks (vote entropy, for one, takes few values): the tie is broken
    later by task distribution's random order, not by item id."""
    if len(scores) <= 1:
        return np.ones(len(scores))
    return (rankdata(scores, method="average") - 1) / (len(scores) - 1)


def mix(weights: Mapping[str, float], seed: int = 0, **inputs: Any) -> np.ndarray:
    """A weighted sum of rank-normalised strategy scores, e.g. 70% margin, 20% diversity,
    10% random."""
    n = len(inputs["embeddings"])
    total = np.zeros(n)
    for name, weight in weights.items():
        scores = random_scores(n, seed) if name == "random" else STRATEGIES[name](**inputs)
        total += weight * rank_normalise(scores)
    return total


def strategy_scores(
    name: str, *, seed: int = 0, weights: Mapping[str, float] | None = None, **inputs: Any
) -> np.ndarray:
    if name == "random":
        return random_scores(len(inputs["embeddings"]), seed)
    if name == "mix":
        return mix(weights or {"margin": 0.7, "diversity": 0.2, "random": 0.1}, seed=seed, **inputs)
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}")
    return STRATEGIES[name](**inputs)


def select_batch(scores: np.ndarray, embeddings: np.ndarray, batch: int, max_similarity: float = 0.95) -> np.ndarray:
    """The top-scoring ``batch`` items, skipping near-duplicates of items already taken
    (cosine similarity above ``max_similarity``), so one batch does not spend labels on
    the same text twice."""
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    for index in order:
        if len(chosen) == batch:
            break
        if chosen and float(np.max(embeddings[chosen] @ embeddings[index])) > max_similarity:
            continue
        chosen.append(int(index))
    return np.array(chosen, dtype=int)
