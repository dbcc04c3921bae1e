"""Each crowd-kit method on a small hand-made crowd whose truth is known."""

import random

import pandas as pd
import pytest

from apps.annotation.aggregation import AUTO_MIN_GOLD, METHODS, accuracy, aggregate, choose_method


def crowd(seed: int = 3) -> tuple[pd.DataFrame, dict[int, str]]:
    """60 items, labels a/b/c; three careful workers (95%), two careless ones (40%)."""
    rng = random.Random(seed)
    truth = {item: rng.choice("abc") for item in range(60)}
    rows = []
    for worker, skill in [("w1", 0.95), ("w2", 0.95), ("w3", 0.95), ("w4", 0.4), ("w5", 0.4)]:
        for item, label in truth.items():
            given = label if rng.random() < skill else rng.choice([x for x in "abc" if x != label])
            rows.append((item, worker, given))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_recovers_the_truth_of_an_easy_crowd(method):
    data, truth = crowd()

    result = aggregate(data, method)

    assert accuracy(result.labels, truth) >= 0.9
    assert result.posteriors.shape[0] == 60
    assert result.posteriors.sum(axis=1).round(6).eq(1).all()
    assert set(result.skills.index) >= {"w1", "w4"}


def test_wawa_and_zero_based_skill_work_with_this_scikit_learn():
    data, _ = crowd()

    for method in ("wawa", "zero_based_skill"):
        assert len(aggregate(data, method).labels) == 60


def test_skill_aware_methods_rank_careful_workers_above_careless_ones():
    data, _ = crowd()

    skills = aggregate(data, "dawid_skene").skills

    assert min(skills[w] for w in ("w1", "w2", "w3")) > max(skills[w] for w in ("w4", "w5"))


def test_dawid_skene_beats_majority_vote_when_a_majority_is_careless():
    """Two careful workers against three who answer at random: the vote follows the
    noise, Dawid-Skene learns whom to trust."""
    rng = random.Random(5)
    truth = {item: rng.choice("ab") for item in range(200)}
    rows = []
    for worker, skill in [("good1", 0.97), ("good2", 0.97), ("rand1", 0.5), ("rand2", 0.5), ("rand3", 0.5)]:
        for item, label in truth.items():
            rows.append((item, worker, label if rng.random() < skill else ("b" if label == "a" else "a")))
    data = pd.DataFrame(rows, columns=["task", "worker", "label"])

    assert (
        accuracy(aggregate(data, "dawid_skene").labels, truth)
        > accuracy(aggregate(data, "majority_vote").labels, truth) + 0.05
    )


def test_auto_chooses_by_gold_and_falls_back_without_enough_gold():
    data, truth = crowd()

    choice = choose_method(data, truth)
    scarce = choose_method(data, dict(list(truth.items())[: AUTO_MIN_GOLD - 1]))

    assert choice.scores[choice.method] == max(choice.scores.values())
    assert set(choice.scores) == set(METHODS)
    assert scarce.method == "dawid_skene" and "only 19 gold items" in scarce.reason


def test_unknown_methods_are_refused():
    data, _ = crowd()
    with pytest.raises(ValueError):
        aggregate(data, "telepathy")
