"""Every strategy's scores on small hand-made probability tables."""

import numpy as np
import pytest

from apps.learning import strategies

PROBS = np.array(
    [
        [0.98, 0.01, 0.01],  # sure
        [0.50, 0.49, 0.01],  # torn between two
        [0.34, 0.33, 0.33],  # no idea
        [0.70, 0.20, 0.10],  # fairly sure
    ]
)


def order(scores):
    return list(np.argsort(-scores, kind="stable"))


def test_least_confidence():
    assert np.allclose(strategies.least_confidence(PROBS), [0.02, 0.50, 0.66, 0.30])


def test_margin_prefers_the_item_torn_between_two_classes():
    assert np.allclose(strategies.margin(PROBS), [1 - 0.97, 1 - 0.01, 1 - 0.01, 1 - 0.5])
    assert order(strategies.margin(PROBS))[:2] == [1, 2]


def test_entropy_is_highest_for_the_flat_distribution():
    scores = strategies.entropy(PROBS)
    assert order(scores) == [2, 3, 1, 0]  # [.7, .2, .1] is flatter than [.5, .49, .01]
    assert scores[2] == pytest.approx(np.log(3), abs=1e-3)


def test_committee_vote_entropy_and_kl():
    agree = np.array([[[0.9, 0.1]], [[0.8, 0.2]], [[0.7, 0.3]], [[0.9, 0.1]]])  # 4 members, 1 item
    split = np.array([[[0.9, 0.1]], [[0.1, 0.9]], [[0.8, 0.2]], [[0.2, 0.8]]])
    committee = np.concatenate([agree, split], axis=1)

    votes = strategies.vote_entropy(committee)
    kl = strategies.mean_kl(committee)

    assert votes[0] == pytest.approx(0.0, abs=1e-9) and votes[1] == pytest.approx(np.log(2))
    assert kl[1] > kl[0] > 0


def test_bald_separates_model_disagreement_from_ambiguity():
    # Item 0: every member says 50/50 (ambiguous text). Item 1: members are sure but disagree.
    committee = np.array([[[0.5, 0.5], [0.99, 0.01]], [[0.5, 0.5], [0.01, 0.99]]])

    scores = strategies.bald(committee)

    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    assert scores[1] > 0.6


def test_expected_model_change_grows_with_uncertainty_and_norm():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    probs = np.array([[0.99, 0.01], [0.5, 0.5], [0.5, 0.5]])

    scores = strategies.expected_model_change(probs, embeddings)

    assert scores[0] < scores[1] < scores[2]
    assert scores[1] == pytest.approx(np.sqrt(0.5))  # |p - e_y| = sqrt(0.5) for either y


def test_diversity_spreads_over_clusters():
    rng = np.random.default_rng(0)
    clusters = [rng.normal(centre, 0.01, (20, 2)) for centre in ([1, 0], [0, 1], [-1, 0])]
    embeddings = np.concatenate(clusters)

    scores = strategies.diversity(embeddings, batch=3)
    top = order(scores)[:3]

    assert sorted(i // 20 for i in top) == [0, 1, 2]


def test_core_set_takes_the_farthest_point_first():
    embeddings = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    labelled = np.array([[1.0, 0.0]])

    assert order(strategies.core_set(embeddings, labelled, batch=1))[0] == 2


def test_boundary_prefers_items_between_opposite_labels():
    labelled = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 1])
    middle = np.array([0.7071, 0.7071])
    embeddings = np.array([[1.0, 0.0], middle, [0.0, 1.0]])

    assert order(strategies.boundary(embeddings, labelled, labels))[0] == 1


def test_mnlp_ranks_unsure_sequences_first():
    sure = np.array([[0.99, 0.01], [0.98, 0.02]])
    unsure = np.array([[0.6, 0.4], [0.55, 0.45]])

    assert order(strategies.mnlp([sure, unsure])) == [1, 0]


def test_mix_weights_rank_normalised_scores():
    embeddings = np.eye(4)

    only_margin = strategies.mix({"margin": 1.0}, probs=PROBS, embeddings=embeddings)

    assert np.allclose(only_margin, strategies.rank_normalise(strategies.margin(PROBS)))
    mixed = strategies.strategy_scores(
        "mix", weights={"margin": 0.7, "random": 0.3}, probs=PROBS, embeddings=embeddings
    )
    assert mixed.shape == (4,) and mixed.min() >= 0 and mixed.max() <= 1


def test_batch_selection_skips_near_duplicates():
    embeddings = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]])
    scores = np.array([0.9, 0.8, 0.1])

    assert list(strategies.select_batch(scores, embeddings, 2)) == [0, 2]


def test_unknown_strategies_are_refused():
    with pytest.raises(ValueError):
        strategies.strategy_scores("astrology", probs=PROBS, embeddings=np.eye(4))
