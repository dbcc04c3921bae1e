"""Simulated active-learning campaigns: how many labels does each strategy need?

A campaign starts from ``start`` labelled items (random, or none: then the first batch
is chosen for diversity), and in rounds: fits a head, scores the unlabelled pool with
a strategy, sends the best ``batch`` items to simulated annotators (the data set's
labels, flipped with probability ``noise``), until ``budget`` labels are spent. After
every round the head is scored on the held-out test set.

It uses the same embeddings, features, heads and strategies as a project's workers,
so its figures are the product's figures. Used by ``bench/active_learning.py`` and the
``simulate`` management command.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import f1_score

from . import strategies
from .features import base_sample, smooth
from .heads import DEFAULT_C, committee_fit, head_fit


@dataclass
class Data:
    pool: np.ndarray  # (n, d) embeddings
    pool_labels: np.ndarray  # class indices
    test: np.ndarray
    test_labels: np.ndarray
    smoothed_pool: np.ndarray | None = None
    smoothed_test: np.ndarray | None = None

    def features(self, smoothed: bool) -> tuple[np.ndarray, np.ndarray]:
        if not smoothed:
            return self.pool, self.test
        if self.smoothed_pool is None or self.smoothed_test is None:
            base = base_sample(self.pool)
            self.smoothed_pool, self.smoothed_test = smooth(self.pool, base), smooth(self.test, base)
        return self.smoothed_pool, self.smoothed_test


@dataclass
class Plan:
    name: str
    strategy: str
    smoothed: bool = True  # Quorum's head; False = raw embeddings (the simple baseline)
    search_c: bool = False  # choose the head's regularisation by cross-validation each round
    start: int = 50
    batch: int = 50
    budget: int = 1000
    weights: dict[str, float] | None = None


@dataclass
class Result:
    plan: Plan
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (labels, accuracy, macro-F1)
    seconds: float = 0.0

    def accuracy_at(self, labels: int) -> float | None:
        return next((acc for n, acc, _ in self.curve if n >= labels), None)

    def labels_to_reach(self, target: float) -> int | None:
        return next((n for n, acc, _ in self.curve if acc >= target), None)


def full_pool_accuracy(data: Data, smoothed: bool) -> float:
    pool, test = data.features(smoothed)
    head = head_fit(pool, data.pool_labels, c=DEFAULT_C)
    return float((head.predict_proba(test).argmax(axis=1) == data.test_labels).mean())


def run(plan: Plan, data: Data, seed: int = 0, noise: float = 0.0) -> Result:
    rng = np.random.default_rng(seed)
    pool, test = data.features(plan.smoothed)
    n = len(pool)
    # Simulated annotators: the true label, or with probability ``noise`` another one.
    classes = int(max(data.pool_labels.max(), data.test_labels.max())) + 1
    flips = rng.random(n) < noise
    answers = np.where(flips, (data.pool_labels + rng.integers(1, classes, n)) % classes, data.pool_labels)
    labelled = np.zeros(n, dtype=bool)
    if plan.start:
        labelled[rng.choice(n, plan.start, replace=False)] = True
    result = Result(plan)
    started = time.perf_counter()
    while True:
        taken = np.flatnonzero(labelled)
        head = None
        if len(np.unique(answers[taken])) >= 2:
            head = head_fit(pool[taken], answers[taken], c=None if plan.search_c else DEFAULT_C)
            predicted = np.array(head.classes)[head.predict_proba(test).argmax(axis=1)]
            result.curve.append(
                (
                    len(taken),
                    float((predicted == data.test_labels).mean()),
                    float(f1_score(data.test_labels, predicted, average="macro")),
                )
            )
        if len(taken) >= plan.budget:
            break
        free = np.flatnonzero(~labelled)
        batch = min(plan.batch, plan.budget - len(taken), len(free))
        labelled[free[_choose(plan, head, pool, free, taken, answers, batch, rng)]] = True
    result.seconds = time.perf_counter() - started
    return result


def _choose(plan, head, pool, free, taken, answers, batch, rng) -> np.ndarray:  # noqa: ANN001
    """Indices into ``free`` of the next batch."""
    if plan.strategy == "random":
        return rng.choice(len(free), batch, replace=False)
    if head is None:  # nothing to learn from yet: cover the pool
        return strategies.select_batch(strategies.diversity(pool[free], batch=batch), pool[free], batch)
    inputs: dict = {"probs": head.predict_proba(pool[free]), "embeddings": pool[free]}
    if plan.strategy in strategies.NEEDS_COMMITTEE or (plan.weights and strategies.NEEDS_COMMITTEE & set(plan.weights)):
        members = committee_fit(pool[taken], answers[taken], c=head.c)
        inputs["committee"] = np.stack([m.predict_proba(pool[free]) for m in members])
    inputs.update(labelled=pool[taken], labels=answers[taken], batch=batch)
    scores = strategies.strategy_scores(plan.strategy, weights=plan.weights, **inputs)
    return strategies.select_batch(scores, pool[free], batch)


def run_all(plans: Sequence[Plan], data: Data, seeds: Sequence[int] = (0,), noise: float = 0.0) -> list[list[Result]]:
    return [[run(plan, data, seed=seed, noise=noise) for seed in seeds] for plan in plans]


def mean_curve(results: Sequence[Result]) -> list[tuple[int, float, float]]:
    """The curves of several seeds, averaged at the label counts they share."""
    shared = set.intersection(*[{n for n, _, _ in r.curve} for r in results])
    return [
        (
            n,
            float(np.mean([acc for r in results for m, acc, _ in r.curve if m == n])),
            float(np.mean([f1 for r in results for m, _, f1 in r.curve if m == n])),
        )
        for n in sorted(shared)
    ]
