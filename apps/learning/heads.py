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
