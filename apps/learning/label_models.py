"""Label models: many noisy votes per item (labelling functions, people, models) in,
one probabilistic label per item and an estimated accuracy per source out. Pure numpy.

A votes matrix is (items, sources) of class indices in ``[0, k)``, ``ABSTAIN`` (-1) where a
source said nothing. An item no source voted on is *not covered*: its probability row is
all zeros and it should not be used as training data.

Methods:
- ``majority_vote``: each item's (weighted) vote counts, ties split evenly.
- ``dawid_skene``: EM over a confusion matrix per source (Dawid and Skene, 1979),
  initialised from majority vote. Abstentions are skipped by default, which is right for
  people (they abstain because they were not asked). For labelling functions, whose silence
  says something (a sports-keyword function silent on an item makes Sports less likely),
  ``abstain_signal`` models abstaining as one more answer, per source.
- ``snorkel``: Snorkel's ``LabelModel`` (matrix-completion estimate of LF accuracies), from
  the pinned ``snorkel`` package, loaded only when a project chooses it.
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ABSTAIN = -1
METHODS = ("majority_vote", "dawid_skene", "snorkel")

# Dawid-Skene's Dirichlet prior on each row of a confusion matrix, in pseudo-votes: a
# source with three votes is not judged perfect or useless on them. The prior leans to
# "better than chance" (PRIOR_ACCURACY), as any source someone bothered to write does.
PRIOR_VOTES = 2.0
PRIOR_ACCURACY = 0.7
# ... and on the class balance, so a class that EM starves does not vanish for good.
PRIOR_CLASS_VOTES = 1.0
MAX_ITERATIONS = 200
TOLERANCE = 1e-6


@dataclass
class LabelModelResult:
    method: str
    probs: np.ndarray  # (n, k); all zeros on items no source voted on
    covered: np.ndarray  # (n,) bool
    accuracies: np.ndarray  # (m,) estimated P(vote correct | source voted); NaN for a source with no votes
    class_balance: np.ndarray  # (k,)
    seconds: float
    iterations: int = 0

    def labels(self) -> np.ndarray:
        """The most probable class per item, ``ABSTAIN`` where no source voted."""
        return np.where(self.covered, self.probs.argmax(axis=1), ABSTAIN)

    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)


def votes_matrix(items: int, sources: Sequence[Iterable[tuple[int, int]]]) -> np.ndarray:
    """(items, sources) votes from each source's (item index, class index) pairs; the rest abstain."""
    votes = np.full((items, len(sources)), ABSTAIN, dtype=np.int64)
    for column, pairs in enumerate(sources):
        for item, label in pairs:
            votes[item, column] = label
    return votes


def _check(votes: np.ndarray, k: int, weights: np.ndarray | None) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must be a 2-D (items, sources) matrix, not {votes.ndim}-D.")
    if k < 2:
        raise ValueError("A label model needs at least two classes.")
    if votes.size and (votes.min() < ABSTAIN or votes.max() >= k):
        raise ValueError(f"votes must be class indices in [0, {k}) or {ABSTAIN} (abstain).")
    if weights is not None and (np.shape(weights) != (votes.shape[1],) or np.min(weights, initial=0) < 0):
        raise ValueError("weights must hold one non-negative number per source.")
    return votes.astype(np.int64, copy=False)


def _one_hot_counts(votes: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """(n, k): the summed weight of the sources that voted each class on each item."""
    counts = np.zeros((votes.shape[0], k))
    for column in range(votes.shape[1]):
        voted = votes[:, column] != ABSTAIN
        counts[np.flatnonzero(voted), votes[voted, column]] += weights[column]
    return counts


def _expected_accuracies(votes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per source, the mean probability its votes are right under ``probs``."""
    accuracies = np.full(votes.shape[1], np.nan)
    for column in range(votes.shape[1]):
        voted = np.flatnonzero(votes[:, column] != ABSTAIN)
        if len(voted):
            accuracies[column] = float(probs[voted, votes[voted, column]].mean())
    return accuracies


def majority_vote(votes: np.ndarray, k: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probs, covered): each item's top-voted class; a tie shares the probability evenly."""
    counts = _one_hot_counts(votes, k, np.ones(votes.shape[1]) if weights is None else np.asarray(weights, float))
    covered = (votes != ABSTAIN).any(axis=1)
    top = (counts == counts.max(axis=1, keepdims=True)) & covered[:, None]
    probs = top / np.maximum(top.sum(axis=1, keepdims=True), 1)
    return probs, covered


def _fit_majority(votes: np.ndarray, k: int, weights: np.ndarray | None, balance: np.ndarray | None) -> dict:
    probs, covered = majority_vote(votes, k, weights)
    if balance is None:
        balance = probs[covered].mean(axis=0) if covered.any() else np.full(k, 1 / k)
    return {"probs": probs, "covered": covered, "accuracies": _expected_accuracies(votes, probs), "balance": balance}


# --- Dawid-Skene -------------------------------------------------------------------------------------


def _confusions(votes: np.ndarray, posteriors: np.ndarray, k: int, signal: np.ndarray) -> np.ndarray:
    """(m, k, k + 1) smoothed P(answer | true class); the last column is "abstained", used
    only by sources in ``signal`` (for the others it stays zero and abstentions are skipped)."""
    m = votes.shape[1]
    prior = np.full((k, k), PRIOR_VOTES * (1 - PRIOR_ACCURACY) / (k - 1))
    np.fill_diagonal(prior, PRIOR_VOTES * PRIOR_ACCURACY)
    confusions = np.zeros((m, k, k + 1))
    for column in range(m):
        answers = votes[:, column]
        counts = np.zeros((k, k + 1))
        for answer in range(k):
            counts[:, answer] = posteriors[answers == answer].sum(axis=0)
        counts[:, :k] += prior
        if signal[column]:
            counts[:, k] = posteriors[answers == ABSTAIN].sum(axis=0) + 1.0
        confusions[column] = counts / counts.sum(axis=1, keepdims=True)
    return confusions


def _posteriors(
    votes: np.ndarray, log_confusions: np.ndarray, log_balance: np.ndarray, weights: np.ndarray, signal: np.ndarray
) -> tuple[np.ndarray, float]:
    """E-step: P(class | votes) per item, and the (weighted) log-likelihood."""
    k = log_balance.shape[0]
    scores = np.tile(log_balance, (votes.shape[0], 1))
    for column in range(votes.shape[1]):
        answers = votes[:, column]
        table = log_confusions[column].copy()
        if not signal[column]:
            table[:, k] = 0.0  # an abstention adds nothing (for signalling sources: P(abstain | class))
        scores += weights[column] * table[:, np.where(answers == ABSTAIN, k, answers)].T
    top = scores.max(axis=1, keepdims=True)
    exp = np.exp(scores - top)
    total = exp.sum(axis=1, keepdims=True)
    return exp / total, float((np.log(total) + top).sum())


def dawid_skene(
    votes: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
    class_balance: np.ndarray | None = None,
    abstain_signal: np.ndarray | None = None,
) -> dict[str, Any]:
    """EM on the covered items (on all items when some source signals by abstaining).

    1. Start from the (weighted) majority-vote posteriors.
    2. M-step: class balance (unless fixed) and each source's confusion matrix from the
       posteriors, smoothed by a Dirichlet prior.
    3. E-step: posteriors from the balance and the confusions; a source's log-likelihood
       term is multiplied by its weight (so people can outweigh rules).
    4. Repeat until the log-likelihood stops improving."""
    m = votes.shape[1]
    weights = np.ones(m) if weights is None else np.asarray(weights, float)
    signal = np.zeros(m, bool) if abstain_signal is None else np.asarray(abstain_signal, bool)
    if class_balance is None and signal.any():
        # One-class sources (keyword functions) confound "class c is common" with "c's
        # functions fire often": EM drifts to a skewed balance. Assume it even, as Snorkel does.
        class_balance = np.ones(k)
    start, covered = majority_vote(votes, k, weights)
    # With signalling sources, silence is evidence, and conditioning on "someone voted" would
    # break the sources' independence given the class: EM then runs on every item.
    fitted = np.ones(len(votes), bool) if signal.any() else covered
    on = votes[fitted]
    posteriors = np.where(covered[:, None], start, 1 / k)[fitted]
    previous = -np.inf
    iterations = 0
    balance = np.full(k, 1 / k)
    confusions = np.zeros((m, k, k + 1))
    while iterations < MAX_ITERATIONS:
        iterations += 1
        if class_balance is None:
            balance = (posteriors.sum(axis=0) + PRIOR_CLASS_VOTES) / (len(posteriors) + k * PRIOR_CLASS_VOTES)
        else:
            balance = np.asarray(class_balance, float) / np.sum(class_balance)
        confusions = _confusions(on, posteriors, k, signal)
        with np.errstate(divide="ignore"):
            log_confusions = np.log(confusions)
        posteriors, likelihood = _posteriors(on, log_confusions, np.log(balance), weights, signal)
        if likelihood - previous < TOLERANCE * max(1.0, abs(likelihood)):
            break
        previous = likelihood
    probs = np.zeros((len(votes), k))
    probs[fitted] = posteriors
    probs[~covered] = 0.0
    return {
        "probs": probs,
        "covered": covered,
        "accuracies": _source_accuracies(on, posteriors, confusions, k),
        "balance": balance,
        "iterations": iterations,
    }


def _source_accuracies(votes: np.ndarray, posteriors: np.ndarray, confusions: np.ndarray, k: int) -> np.ndarray:
    """P(vote right | voted) from the model: the diagonal of each confusion matrix, weighed by
    the posterior class mix of the items the source voted on."""
    accuracies = np.full(votes.shape[1], np.nan)
    for column in range(votes.shape[1]):
        voted = votes[:, column] != ABSTAIN
        if not voted.any():
            continue
        mix = posteriors[voted].mean(axis=0)
        rows = confusions[column][:, :k]
        right = np.diag(rows) / rows.sum(axis=1)  # P(right | class, voted)
        accuracies[column] = float(mix @ right)
    return accuracies


# --- Snorkel -----------------------------------------------------------------------------------------


def _fit_snorkel(votes: np.ndarray, k: int, balance: np.ndarray | None, seed: int = 0) -> dict[str, Any]:
    # deferred: snorkel loads torch and tensorboard; only a project that chose it pays for them
    from snorkel.labeling.model import LabelModel

    covered = (votes != ABSTAIN).any(axis=1)
    probs = np.zeros((len(votes), k))
    model = LabelModel(cardinality=k, verbose=False)
    model.fit(
        votes[covered],
        class_balance=None if balance is None else list(np.asarray(balance, float) / np.sum(balance)),
        progress_bar=False,
        seed=seed,  # training as Snorkel's defaults have it (100 epochs): longer overfits the votes
    )
    probs[covered] = model.predict_proba(votes[covered])
    accuracies = np.asarray(model.get_weights(), float)
    accuracies[~(votes != ABSTAIN).any(axis=0)] = np.nan
    used = probs[covered].mean(axis=0) if covered.any() else np.full(k, 1 / k)
    return {"probs": probs, "covered": covered, "accuracies": accuracies, "balance": used}


def fit(
    votes: np.ndarray,
    k: int,
    method: str,
    *,
    weights: np.ndarray | None = None,
    class_balance: np.ndarray | None = None,
    abstain_signal: np.ndarray | None = None,
) -> LabelModelResult:
    """Denoise ``votes`` (n, m) into (n, k) probabilities with ``method`` (see ``METHODS``).

    ``weights`` (m,) scale each source's say (majority vote, Dawid-Skene); ``class_balance``
    (k,) fixes the class prior instead of estimating it; ``abstain_signal`` (m,) bool marks
    the sources whose abstentions carry information (Dawid-Skene only)."""
    votes = _check(votes, k, weights)
    started = time.perf_counter()
    if method == "majority_vote":
        fitted = _fit_majority(votes, k, weights, class_balance)
    elif method == "dawid_skene":
        fitted = dawid_skene(votes, k, weights=weights, class_balance=class_balance, abstain_signal=abstain_signal)
    elif method == "snorkel":
        if weights is not None:
            raise ValueError('The "snorkel" label model has no per-source weights; use "dawid_skene".')
        fitted = _fit_snorkel(votes, k, class_balance)
    else:
        raise ValueError(f"Unknown label model {method!r}; choose one of {', '.join(METHODS)}.")
    return LabelModelResult(
        method,
        fitted["probs"],
        fitted["covered"],
        fitted["accuracies"],
        np.asarray(fitted["balance"], float),
        time.perf_counter() - started,
        fitted.get("iterations", 0),
    )


# --- analysis ----------------------------------------------------------------------------------------


def lf_analysis(votes: np.ndarray, k: int, gold: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per source, Snorkel's ``LFAnalysis.lf_summary`` columns: polarity (the classes it voted),
    coverage (share of items it voted on), overlaps (share of items it and another source
    voted on), conflicts (share where another source voted a different class), and, against
    ``gold`` (-1 = unknown), correct and incorrect counts and empirical accuracy."""
    votes = _check(votes, k, None)
    n = max(len(votes), 1)
    voted = votes != ABSTAIN
    others = voted.sum(axis=1, keepdims=True) - voted  # other sources voting on the item
    rows = []
    for column in range(votes.shape[1]):
        mine = voted[:, column]
        answers = votes[:, column]
        disagree = np.zeros(len(votes), bool)
        for other in range(votes.shape[1]):
            if other != column:
                disagree |= voted[:, other] & (votes[:, other] != answers)
        row: dict[str, Any] = {
            "source": column,
            "polarity": sorted(int(x) for x in np.unique(answers[mine])),
            "coverage": float(mine.sum() / n),
            "overlaps": float((mine & (others[:, column] > 0)).sum() / n),
            "conflicts": float((mine & disagree).sum() / n),
            "correct": None,
            "incorrect": None,
            "accuracy": None,
        }
        if gold is not None:
            judged = mine & (np.asarray(gold) != ABSTAIN)
            correct = int((answers[judged] == np.asarray(gold)[judged]).sum())
            row.update(
                correct=correct,
                incorrect=int(judged.sum()) - correct,
                accuracy=float(correct / judged.sum()) if judged.any() else float("nan"),
            )
        rows.append(row)
    return rows
