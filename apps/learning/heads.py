"""Classification heads over (smoothed) embeddings: multinomial logistic regression,
with its regularisation chosen on held-out folds, and bootstrap committees.

A head's weights travel as plain arrays (``tensors``) so the registry stores them as
safetensors, never pickle.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

C_GRID = (0.25, 1.0, 4.0)
DEFAULT_C = 1.0
MIN_PER_CLASS_FOR_SEARCH = 5


@dataclass
class LinearHead:
    classes: list[int]  # label ids, in column order
    coef: np.ndarray  # (classes, d) - for two classes, (1, d) as scikit-learn keeps it
    intercept: np.ndarray
    c: float = DEFAULT_C
    search: dict[str, float] = field(default_factory=dict)  # C -> cross-validated accuracy

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # binary: scikit-learn's single logit
            positive = 1 / (1 + np.exp(-logits[:, 0]))
            return np.stack([1 - positive, positive], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef.astype(np.float32),
            "intercept": self.intercept.astype(np.float32),
            "classes": np.array(self.classes, dtype=np.int64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], c: float = DEFAULT_C) -> "LinearHead":
        return cls([int(x) for x in tensors["classes"]], tensors["coef"], tensors["intercept"], c)


def _fit(features: np.ndarray, labels: np.ndarray, c: float, weights: np.ndarray | None) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=c, max_iter=2000).fit(features, labels, sample_weight=weights)


def search_c(
    features: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = C_GRID
) -> tuple[float, dict[str, float]]:
    """The regularisation with the best 3-fold accuracy; the default when some class has
    too few labels to fold."""
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < MIN_PER_CLASS_FOR_SEARCH:
        return DEFAULT_C, {}
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in grid:
            scores[str(c)] = float(
                cross_val_score(LogisticRegression(C=c, max_iter=1000), features, labels, cv=folds).mean()
            )
    best = max(grid, key=lambda c: scores[str(c)])
    return best, scores


def head_fit(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None, c: float | None = None
) -> LinearHead:
    """Fit a head on label ids; ``c=None`` searches the regularisation."""
    search: dict[str, float] = {}
    if c is None:
        c, search = search_c(features, labels)
    model = _fit(features, labels, c, weights)
    return LinearHead([int(x) for x in model.classes_], model.coef_.copy(), model.intercept_.copy(), c, search)


def committee_fit(
    features: np.ndarray, labels: np.ndarray, members: int = 5, c: float = DEFAULT_C, seed: int = 0
) -> list[LinearHead]:
    """Heads fitted on bootstrap resamples, for committee and BALD strategies. Each member
    sees every class at least once, so all members predict the same classes."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    committee = []
    for _ in range(members):
        sample = rng.choice(len(labels), len(labels), replace=True)
        sample = np.concatenate([sample, [int(np.flatnonzero(labels == k)[0]) for k in classes]])
        model = _fit(features[sample], labels[sample], c, None)
        committee.append(LinearHead([int(x) for x in model.classes_], model.coef_.copy(), model.intercept_.copy(), c))
    return committee


@dataclass
class MultiLabelHead:
    """One yes/no logistic regression per label (multi-label projects)."""

    classes: list[int]
    coef: np.ndarray  # (labels, d)
    intercept: np.ndarray  # (labels,)
    c: float = DEFAULT_C

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(label applies), one column per label (columns need not sum to one)."""
        return 1 / (1 + np.exp(-(features @ self.coef.T + self.intercept)))

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef.astype(np.float32),
            "intercept": self.intercept.astype(np.float32),
            "classes": np.array(self.classes, dtype=np.int64),
            "multi_label": np.array([1], dtype=np.int64),
        }


def multilabel_fit(
    features: np.ndarray, targets: np.ndarray, classes: list[int], c: float = DEFAULT_C
) -> MultiLabelHead:
    """``targets``: (n, labels) of 0/1. A label nobody used gets a head that always says no."""
    coef = np.zeros((len(classes), features.shape[1]))
    intercept = np.full(len(classes), -10.0)
    for column in range(len(classes)):
        column_targets = targets[:, column]
        if column_targets.min() == column_targets.max():
            intercept[column] = 10.0 if column_targets.max() == 1 else -10.0
            continue
        model = _fit(features, column_targets, c, None)
        coef[column], intercept[column] = model.coef_[0], model.intercept_[0]
    return MultiLabelHead(classes, coef, intercept, c)


def head_from_tensors(tensors: dict[str, np.ndarray], c: float = DEFAULT_C) -> LinearHead | MultiLabelHead:
    if "multi_label" in tensors:
        return MultiLabelHead([int(x) for x in tensors["classes"]], tensors["coef"], tensors["intercept"], c)
    return LinearHead.from_tensors(tensors, c)


# --- weak supervision: soft labels and self-training ---------------------------------------------

# A soft label's class with less probability than this is left out of the expanded rows:
# it would add a row per item and class for almost no weight.
MIN_SOFT_PROB = 0.05
SELF_TRAIN_ROUNDS = 2
# Each round, the most confident SELF_TRAIN_SHARE of the unlabelled items *of each predicted
# class* join, if the head gives them at least SELF_TRAIN_FLOOR. Ranking within each class,
# not one global threshold, keeps the easiest class from taking over the pseudo-labels (a
# strongly regularised head is rarely above 0.9, and then only on one or two classes), and
# does not depend on how the head is calibrated.
SELF_TRAIN_SHARE = 0.5
SELF_TRAIN_FLOOR = 0.5


def soft_rows(
    probs: np.ndarray, classes: list[int], weights: np.ndarray | None = None, min_prob: float = MIN_SOFT_PROB
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, labels, weights): each item once per class it has at least ``min_prob`` of,
    weighted by that probability (times the item's weight), so a logistic regression fitted
    on them minimises the cross-entropy against the soft labels."""
    item_weights = np.ones(len(probs)) if weights is None else np.asarray(weights, float)
    kept = probs >= min_prob
    rows, columns = np.nonzero(kept)
    kept_probs = probs[rows, columns]
    # renormalise over the kept classes so every item keeps its whole weight
    totals = np.bincount(rows, weights=kept_probs, minlength=len(probs))
    return rows, np.asarray(classes)[columns], item_weights[rows] * kept_probs / totals[rows]


def soft_head_fit(
    features: np.ndarray,
    probs: np.ndarray,
    classes: list[int],
    weights: np.ndarray | None = None,
    c: float | None = None,
) -> LinearHead:
    """A head fitted on soft labels: ``probs`` (n, len(classes)), column j the probability of
    label id ``classes[j]``; ``weights`` (n,) scale items (a weak label's confidence, a
    person's answer above a rule's). ``c=None`` searches the regularisation on the labels'
    most probable classes."""
    rows, labels, row_weights = soft_rows(probs, classes, weights)
    search: dict[str, float] = {}
    if c is None:
        c, search = search_c(features, np.asarray(classes)[probs.argmax(axis=1)])
    model = _fit(features[rows], labels, c, row_weights)
    return LinearHead([int(x) for x in model.classes_], model.coef_.copy(), model.intercept_.copy(), c, search)


def _aligned(probs: np.ndarray, from_classes: list[int], to_classes: list[int]) -> np.ndarray:
    """``probs`` with columns ``from_classes`` laid out in the order of ``to_classes`` (missing: 0)."""
    out = np.zeros((len(probs), len(to_classes)))
    for column, label in enumerate(from_classes):
        if label in to_classes:
            out[:, to_classes.index(label)] = probs[:, column]
    return out


def _confident(probs: np.ndarray, share: float, floor: float) -> np.ndarray:
    """Rows of ``probs`` to pseudo-label: per predicted class, the top ``share`` by
    confidence, of those at least ``floor``."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    chosen = []
    for column in range(probs.shape[1]):
        mine = np.flatnonzero(predicted == column)
        top = mine[np.argsort(-confidence[mine], kind="stable")[: int(share * len(mine))]]
        chosen.append(top[confidence[top] >= floor])
    return np.sort(np.concatenate(chosen))


def self_train(
    head: LinearHead,
    features: np.ndarray,
    labelled: np.ndarray,
    targets: np.ndarray,
    classes: list[int],
    weights: np.ndarray | None = None,
    *,
    rounds: int = SELF_TRAIN_ROUNDS,
    share: float = SELF_TRAIN_SHARE,
    floor: float = SELF_TRAIN_FLOOR,
) -> LinearHead:
    """Self-training: the pool items the head is surest of become training data too.

    ``features`` is the whole pool; ``labelled`` the indices of the items with labels,
    ``targets`` their (soft or one-hot) labels over ``classes``, ``weights`` theirs. Each
    round, the unlabelled items the head is surest of (see ``_confident``) join with the
    head's label, weighted by its probability, and the head is refitted (same C) on the
    labels and these pseudo-labels; the labels themselves never change. Returns the last
    head (the one given when no item qualifies)."""
    labelled = np.asarray(labelled, dtype=np.int64)
    base_weights = np.ones(len(labelled)) if weights is None else np.asarray(weights, float)
    free = np.setdiff1d(np.arange(len(features)), labelled)
    for _ in range(rounds):
        if len(free) == 0:
            break
        probs = _aligned(head.predict_proba(features[free]), head.classes, classes)
        chosen = _confident(probs, share, floor)
        if len(chosen) == 0:
            break
        head = soft_head_fit(
            np.vstack([features[labelled], features[free[chosen]]]),
            np.vstack([targets, np.eye(len(classes))[probs[chosen].argmax(axis=1)]]),
            classes,
            np.concatenate([base_weights, probs[chosen].max(axis=1)]),
            c=head.c,
        )
    return head
