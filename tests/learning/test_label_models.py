"""Label models on synthetic votes whose sources' accuracies are known."""

import numpy as np
import pytest

from apps.learning import label_models
from apps.learning.label_models import ABSTAIN, fit, lf_analysis, votes_matrix

ITEMS, SOURCES, CLASSES = 3000, 8, 4
ACCURACIES = np.linspace(0.55, 0.95, SOURCES)
COVERAGES = np.linspace(0.3, 0.8, SOURCES)


def noisy_votes(
    truth: np.ndarray, accuracies: np.ndarray, coverages: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Each source votes on a random share ``coverage`` of items: right with probability
    ``accuracy``, else a uniformly chosen wrong class."""
    votes = np.full((len(truth), len(accuracies)), ABSTAIN)
    for column, (accuracy, coverage) in enumerate(zip(accuracies, coverages, strict=True)):
        voted = rng.random(len(truth)) < coverage
        right = rng.random(len(truth)) < accuracy
        wrong = (truth + rng.integers(1, k, len(truth))) % k
        votes[voted, column] = np.where(right, truth, wrong)[voted]
    return votes


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    truth = rng.integers(0, CLASSES, ITEMS)
    return noisy_votes(truth, ACCURACIES, COVERAGES, CLASSES, rng), truth


def accuracy_on_covered(result: label_models.LabelModelResult, truth: np.ndarray) -> float:
    return float((result.labels()[result.covered] == truth[result.covered]).mean())


def test_dawid_skene_recovers_each_source_accuracy(synthetic):
    votes, truth = synthetic
    result = fit(votes, CLASSES, "dawid_skene")
    realised = [np.mean(votes[votes[:, j] != ABSTAIN, j] == truth[votes[:, j] != ABSTAIN]) for j in range(SOURCES)]
    assert np.abs(result.accuracies - ACCURACIES).max() < 0.05
    assert np.abs(result.accuracies - realised).max() < 0.03
    assert result.iterations > 1
    assert np.allclose(result.class_balance, 0.25, atol=0.03)


def test_dawid_skene_beats_majority_vote(synthetic):
    votes, truth = synthetic
    majority = fit(votes, CLASSES, "majority_vote")
    skene = fit(votes, CLASSES, "dawid_skene")
    assert np.array_equal(majority.covered, skene.covered)
    assert accuracy_on_covered(skene, truth) > accuracy_on_covered(majority, truth) + 0.005


def test_probabilities_are_rows_of_covered_items_only(synthetic):
    votes, _ = synthetic
    votes = votes.copy()
    votes[:5] = ABSTAIN  # nobody voted on these
    anyone = (votes != ABSTAIN).any(axis=1)
    for method in ("majority_vote", "dawid_skene"):
        result = fit(votes, CLASSES, method)
        assert np.array_equal(result.covered, anyone) and anyone[5:].mean() > 0.99
        assert np.all(result.probs[~anyone] == 0)
        assert np.allclose(result.probs[anyone].sum(axis=1), 1)
        assert list(result.labels()[:5]) == [ABSTAIN] * 5
        assert np.all(result.confidence()[:5] == 0)


def test_majority_vote_splits_ties_evenly():
    votes = np.array([[0, 1, ABSTAIN], [2, 2, 1], [ABSTAIN, ABSTAIN, ABSTAIN]])
    result = fit(votes, 3, "majority_vote")
    assert np.allclose(result.probs, [[0.5, 0.5, 0], [0, 0, 1], [0, 0, 0]])
    assert list(result.covered) == [True, True, False]
    # agreement with the majority: source 2 voted 1 on an item that went to 2
    assert np.allclose(result.accuracies, [0.75, 0.75, 0.0])


def test_a_weighted_reliable_source_outweighs_a_conflicting_one():
    """A person (right on every item) and two rules that agree with each other and are wrong on a
    third of the items: unweighted, the rules win those conflicts; weighted, the person does."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 600)
    wrong = rng.random(600) < 1 / 3
    rule = np.where(wrong, (truth + 1) % 3, truth)
    votes = np.stack([truth, rule, rule], axis=1)
    plain = fit(votes, 3, "majority_vote")
    weighted = fit(votes, 3, "dawid_skene", weights=np.array([3.0, 1.0, 1.0]))
    assert (plain.labels()[wrong] == truth[wrong]).mean() == 0
    assert (weighted.labels() == truth).all()
    assert weighted.accuracies[0] > 0.95 > weighted.accuracies[1]


def test_abstentions_of_one_class_functions_carry_signal():
    """Keyword-like sources each vote one class: they fire on half its items and, some
    precise, some sloppy, on a share of the others. Skipping their abstentions leaves
    nothing to tell classes apart; modelling them beats majority vote, which cannot tell a
    precise function from a sloppy one."""
    rng = np.random.default_rng(0)
    k, n = 4, 4000
    truth = rng.integers(0, k, n)
    misfires = [0.02, 0.3, 0.03, 0.2, 0.05, 0.25, 0.02, 0.15]  # source j votes class j % k
    votes = np.full((n, len(misfires)), ABSTAIN)
    for column, misfire in enumerate(misfires):
        fires = np.where(truth == column % k, rng.random(n) < 0.5, rng.random(n) < misfire)
        votes[fires, column] = column % k
    signal = np.ones(len(misfires), bool)
    majority = fit(votes, k, "majority_vote")
    skipped = fit(votes, k, "dawid_skene")
    signalled = fit(votes, k, "dawid_skene", abstain_signal=signal)
    assert accuracy_on_covered(skipped, truth) < 0.3
    assert accuracy_on_covered(signalled, truth) > accuracy_on_covered(majority, truth) + 0.04
    assert np.allclose(signalled.class_balance, 0.25)  # assumed even, as Snorkel does
    realised = [np.mean(truth[votes[:, j] != ABSTAIN] == j % k) for j in range(len(misfires))]
    assert np.abs(signalled.accuracies - realised).max() < 0.08


def test_class_balance_can_be_fixed(synthetic):
    votes, _ = synthetic
    result = fit(votes, CLASSES, "dawid_skene", class_balance=np.array([1.0, 1.0, 1.0, 5.0]))
    assert np.allclose(result.class_balance, [0.125, 0.125, 0.125, 0.625])


def test_a_source_with_no_votes_has_no_accuracy(synthetic):
    votes, _ = synthetic
    votes = np.hstack([votes, np.full((len(votes), 1), ABSTAIN)])
    result = fit(votes, CLASSES, "dawid_skene")
    assert np.isnan(result.accuracies[-1]) and not np.isnan(result.accuracies[:-1]).any()


@pytest.mark.parametrize(
    ("votes", "k", "message"),
    [
        (np.array([0, 1]), 2, "2-D"),
        (np.array([[0, 3]]), 3, "class indices"),
        (np.array([[0, -2]]), 3, "class indices"),
        (np.array([[0, 1]]), 1, "two classes"),
    ],
)
def test_bad_votes_are_refused(votes, k, message):
    with pytest.raises(ValueError, match=message):
        fit(votes, k, "majority_vote")


def test_unknown_method_and_bad_weights_are_refused():
    votes = np.array([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match="Unknown label model"):
        fit(votes, 2, "vote_harder")
    with pytest.raises(ValueError, match="one non-negative number per source"):
        fit(votes, 2, "dawid_skene", weights=np.array([1.0]))


def test_snorkel_label_model(synthetic):
    votes, truth = synthetic
    result = fit(votes, CLASSES, "snorkel")
    assert result.probs.shape == (ITEMS, CLASSES)
    assert np.abs(result.accuracies - ACCURACIES).max() < 0.06
    assert accuracy_on_covered(result, truth) > 0.9
    with pytest.raises(ValueError, match="no per-source weights"):
        fit(votes, CLASSES, "snorkel", weights=np.ones(SOURCES))


def test_votes_matrix_places_each_sources_votes():
    votes = votes_matrix(3, [[(0, 1), (2, 0)], [], [(1, 2)]])
    assert votes.tolist() == [[1, ABSTAIN, ABSTAIN], [ABSTAIN, ABSTAIN, 2], [0, ABSTAIN, ABSTAIN]]


def test_lf_analysis_on_a_hand_counted_matrix():
    # items x sources; gold for the last item unknown
    votes = np.array(
        [
            [0, 0, ABSTAIN],
            [0, 1, ABSTAIN],
            [1, ABSTAIN, 1],
            [ABSTAIN, ABSTAIN, 0],
            [1, 1, 0],
        ]
    )
    gold = np.array([0, 1, 1, 0, ABSTAIN])
    rows = lf_analysis(votes, 2, gold)
    first, second, third = rows
    assert first == {
        "source": 0,
        "polarity": [0, 1],
        "coverage": 4 / 5,
        "overlaps": 4 / 5,  # items 0, 1, 2, 4 all have another vote
        "conflicts": 2 / 5,  # item 1 (source 1 says 1), item 4 (source 2 says 0)
        "correct": 2,  # items 0 and 2; item 1 wrong; item 4 has no gold
        "incorrect": 1,
        "accuracy": 2 / 3,
    }
    assert second["polarity"] == [0, 1] and second["coverage"] == 3 / 5
    assert second["overlaps"] == 3 / 5 and second["conflicts"] == 2 / 5
    assert (second["correct"], second["incorrect"]) == (2, 0)
    assert third["polarity"] == [0, 1] and third["coverage"] == 3 / 5
    assert third["overlaps"] == 2 / 5 and third["conflicts"] == 1 / 5
    assert (third["correct"], third["incorrect"], third["accuracy"]) == (2, 0, 1.0)
    assert lf_analysis(votes, 2)[0]["accuracy"] is None
