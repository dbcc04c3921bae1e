"""Truth inference over crowd answers, with crowd-kit, independent of Django.

Input is a table of answers (``task``, ``worker``, ``label``); output, per task, the
inferred label and its posterior, and per worker an estimated skill and (where the
method models it) a confusion matrix. Used by project consolidation and by
``bench/consolidation.py``.

crowd-kit 1.4.2's Wawa and ZeroBasedSkill call scikit-learn's ``check_is_fitted``,
which since scikit-learn 1.6 asks the estimator for ``__sklearn_tags__``; crowd-kit's
aggregators do not inherit scikit-learn's ``BaseEstimator``, so the call fails. The
subclasses below declare the tags (an estimator that needs no target), which is the
protocol scikit-learn documents for third-party estimators; nothing else changes.
"""

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from crowdkit.aggregation import (
    GLAD,
    MACE,
    MMSR,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)
from sklearn.utils import Tags, TargetTags


class _DeclaresSklearnTags:
    def __sklearn_tags__(self) -> Tags:
        return Tags(estimator_type=None, target_tags=TargetTags(required=False))


class WawaAggregator(_DeclaresSklearnTags, Wawa):
    """Worker agreement with aggregate: majority vote weighted by agreement with it."""


class ZeroBasedSkillAggregator(_DeclaresSklearnTags, ZeroBasedSkill):
    """Skills learnt by gradient steps from zero, then a weighted vote."""


# name -> (title, factory). The order is the tie-break order of ``auto``: simpler and
# better-understood methods first, so a tie goes to the one people can reason about.
METHODS: dict[str, tuple[str, Callable[[], Any]]] = {
    "dawid_skene": ("Dawid-Skene", lambda: DawidSkene(n_iter=100, tol=1e-6)),
    "majority_vote": ("Majority vote", MajorityVote),
    "one_coin_dawid_skene": ("One-coin Dawid-Skene", lambda: OneCoinDawidSkene(n_iter=100, tol=1e-6)),
    "wawa": ("Wawa", WawaAggregator),
    "zero_based_skill": ("Zero-based skill", ZeroBasedSkillAggregator),
    "glad": ("GLAD", lambda: GLAD(n_iter=100, tol=1e-5, silent=True)),
    "mace": ("MACE", lambda: MACE(n_iter=50, random_state=0)),
    "mmsr": ("M-MSR", lambda: MMSR(n_iter=10000, random_state=0)),
}
FALLBACK = "dawid_skene"
# ``auto`` needs this many gold items with answers to judge methods; fewer and it
# falls back to Dawid-Skene, which the literature finds strongest on most data.
AUTO_MIN_GOLD = 20


@dataclass
class Aggregate:
    method: str
    labels: pd.Series  # task -> label
    posteriors: pd.DataFrame  # task x label, rows sum to 1
    skills: pd.Series  # worker -> skill in [0, 1] (a probability of being right where the method has one)
    confusion: dict[Any, pd.DataFrame] = field(default_factory=dict)  # worker -> true x given
    seconds: float = 0.0

    def confidence(self) -> pd.Series:
        return self.posteriors.max(axis=1)


def _posteriors(model: Any, data: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    probas = getattr(model, "probas_", None)
    if isinstance(probas, pd.DataFrame) and not probas.empty:
        probas = probas.fillna(0.0)
        return probas.div(probas.sum(axis=1).replace(0, 1), axis=0)
    # Methods without posteriors (M-MSR): the share of answers that agree with the label,
    # which is what a reviewer would call the item's agreement.
    votes = data.groupby(["task", "label"]).size().unstack(fill_value=0).astype(float)
    return votes.div(votes.sum(axis=1), axis=0)


def _skills(model: Any, data: pd.DataFrame, labels: pd.Series) -> pd.Series:
    for attribute in ("skills_", "alphas_"):
        values = getattr(model, attribute, None)
        if isinstance(values, pd.Series) and not values.empty:
            return values.astype(float)
    errors = getattr(model, "errors_", None)
    if isinstance(errors, pd.DataFrame) and not errors.empty:
        # Dawid-Skene keeps a confusion matrix per worker; skill = mean of its diagonal.
        return _confusion_diagonals(errors)
    # Otherwise: how often each worker agrees with the inferred labels.
    merged = data.join(labels.rename("inferred"), on="task")
    return (merged["label"] == merged["inferred"]).groupby(merged["worker"]).mean().astype(float)


def _confusion_diagonals(errors: pd.DataFrame) -> pd.Series:
    skills = {}
    for worker, matrix in errors.groupby(level=0):
        matrix = matrix.droplevel(0)
        common = [label for label in matrix.index if label in matrix.columns]
        skills[worker] = float(np.mean([matrix.loc[label, label] for label in common])) if common else np.nan
    return pd.Series(skills, dtype=float)


def _confusion(model: Any) -> dict[Any, pd.DataFrame]:
    errors = getattr(model, "errors_", None)
    if not isinstance(errors, pd.DataFrame) or errors.empty or not isinstance(errors.index, pd.MultiIndex):
        return {}
    # crowd-kit stores P(given label | true label) with rows = given, columns = true.
    return {worker: matrix.droplevel(0).T for worker, matrix in errors.groupby(level=0)}


def aggregate(data: pd.DataFrame, method: str) -> Aggregate:
    """Run one method over answers (columns task, worker, label; optional weight)."""
    if method not in METHODS:
        raise ValueError(f"Unknown consolidation method {method!r}")
    started = time.perf_counter()
    model = METHODS[method][1]()
    answers = data[["task", "worker", "label"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crowd-kit's pandas FutureWarnings
        labels = model.fit_predict(answers)
    labels = labels.rename("label")
    return Aggregate(
        method=method,
        labels=labels,
        posteriors=_posteriors(model, answers, labels),
        skills=_skills(model, answers, labels),
        confusion=_confusion(model),
        seconds=time.perf_counter() - started,
    )


def accuracy(labels: pd.Series, truth: Mapping[Any, Any]) -> float:
    scored = [labels[task] == answer for task, answer in truth.items() if task in labels.index]
    return float(np.mean(scored)) if scored else float("nan")


@dataclass
class Choice:
    method: str
    scores: dict[str, float]  # method -> accuracy on gold
    reason: str


def choose_method(data: pd.DataFrame, gold: Mapping[Any, Any], methods: list[str] | None = None) -> Choice:
    """``auto``: the method with the best accuracy on gold items.

    No method is given the gold answers, so none is fitted on what it is judged by;
    with fewer than ``AUTO_MIN_GOLD`` gold items that have answers, Dawid-Skene."""
    answered_gold = {task: label for task, label in gold.items() if task in set(data["task"])}
    if len(answered_gold) < AUTO_MIN_GOLD:
        return Choice(FALLBACK, {}, f"only {len(answered_gold)} gold items have answers (needs {AUTO_MIN_GOLD})")
    scores = {}
    for name in methods or list(METHODS):
        try:
            scores[name] = accuracy(aggregate(data, name).labels, answered_gold)
        except Exception as error:  # noqa: BLE001  (a method that fails on this data is not chosen)
            scores[name] = float("nan")
            warnings.warn(f"{name} failed: {error}", RuntimeWarning, stacklevel=2)
    best = max((name for name in scores if not np.isnan(scores[name])), key=lambda name: scores[name])
    return Choice(best, scores, f"best on {len(answered_gold)} gold items")
