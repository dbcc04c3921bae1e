"""Heads trained on weak labels: soft labels and self-training, on small synthetic data."""

import numpy as np
import pytest

from apps.learning import heads
from apps.learning.heads import LinearHead, head_fit, self_train, soft_head_fit, soft_rows

CLASSES = [10, 20, 30]  # label ids, as a project's labels have them


def blobs(n: int, seed: int, dimensions: int = 5, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian clusters, one per class (indices 0..2), 3 apart along the first axes;
    the other dimensions are noise."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, dimensions))
    centres[[0, 1, 2], [0, 1, 2]] = 3.0
    truth = rng.integers(0, 3, n)
    return centres[truth] + rng.normal(0, spread, (n, dimensions)), truth


def accuracy(head: LinearHead, features: np.ndarray, truth: np.ndarray) -> float:
    predicted = np.array(head.classes)[head.predict_proba(features).argmax(axis=1)]
    return float((predicted == np.array(CLASSES)[truth]).mean())


def test_soft_rows_expand_each_item_per_likely_class():
    probs = np.array([[0.7, 0.3, 0.0], [0.02, 0.0, 0.98], [1 / 3, 1 / 3, 1 / 3]])
    rows, labels, weights = soft_rows(probs, CLASSES, np.array([1.0, 2.0, 1.0]))
    assert rows.tolist() == [0, 0, 1, 2, 2, 2]
    assert labels.tolist() == [10, 20, 30, 10, 20, 30]
    # 0.02 is dropped and item 1 keeps its whole weight on its one class
    assert np.allclose(weights, [0.7, 0.3, 2.0, 1 / 3, 1 / 3, 1 / 3])


def test_soft_labels_carry_the_label_models_doubt():
    """Items whose weak label is a coin toss between two classes pull the head less than
    confident ones: the head on soft labels is less sure of them than a head on hard labels."""
    features, truth = blobs(600, seed=1)
    probs = np.eye(3)[truth]
    doubtful = np.arange(600) % 4 == 0
    probs[doubtful] = 0.0
    probs[doubtful, truth[doubtful]] = 0.55
    probs[doubtful, (truth[doubtful] + 1) % 3] = 0.45
    soft = soft_head_fit(features, probs, CLASSES, c=1.0)
    hard = head_fit(features, np.array(CLASSES)[truth], c=1.0)
    assert soft.classes == CLASSES
    assert accuracy(soft, features, truth) > 0.95
    assert soft.predict_proba(features).max(axis=1).mean() < hard.predict_proba(features).max(axis=1).mean()


def test_soft_head_with_one_hot_labels_is_the_hard_head():
    features, truth = blobs(300, seed=2)
    soft = soft_head_fit(features, np.eye(3)[truth], CLASSES, c=1.0)
    hard = head_fit(features, np.array(CLASSES)[truth], c=1.0)
    assert np.allclose(soft.predict_proba(features), hard.predict_proba(features), atol=1e-3)


def test_soft_head_searches_c_when_not_given():
    features, truth = blobs(300, seed=3)
    head = soft_head_fit(features, np.eye(3)[truth], CLASSES)
    assert set(head.search) == {"0.25", "1.0", "4.0"}


def test_weights_scale_items():
    """Two conflicting copies of every item: the heavier copy's label wins."""
    features, truth = blobs(300, seed=4)
    other = (truth + 1) % 3
    doubled = np.vstack([features, features])
    probs = np.vstack([np.eye(3)[truth], np.eye(3)[other]])
    heavy_first = np.concatenate([np.full(300, 3.0), np.ones(300)])
    assert accuracy(soft_head_fit(doubled, probs, CLASSES, heavy_first, c=1.0), features, truth) > 0.85
    assert accuracy(soft_head_fit(doubled, probs, CLASSES, heavy_first[::-1], c=1.0), features, truth) < 0.15


def test_self_training_learns_from_the_unlabelled_pool():
    """Four labels per class in 20 dimensions, 17 of them noise: the head on them leans on
    noise; pseudo-labels on the confident part of a 3,000-item pool average it out."""
    features, truth = blobs(3000, seed=5, dimensions=20)
    test, test_truth = blobs(2000, seed=6, dimensions=20)
    rng = np.random.default_rng(0)
    labelled = np.concatenate([rng.choice(np.flatnonzero(truth == k), 4, replace=False) for k in range(3)])
    targets = np.eye(3)[truth[labelled]]
    head = soft_head_fit(features[labelled], targets, CLASSES, c=1.0)
    trained = self_train(head, features, labelled, targets, CLASSES)
    assert accuracy(head, test, test_truth) < 0.92
    assert accuracy(trained, test, test_truth) > accuracy(head, test, test_truth) + 0.04
    assert trained.c == head.c


def test_self_training_stops_when_nothing_is_confident():
    features, truth = blobs(200, seed=7)
    labelled = np.arange(100)
    targets = np.eye(3)[truth[labelled]]
    head = soft_head_fit(features[labelled], targets, CLASSES, c=1.0)
    same = self_train(head, features, labelled, targets, CLASSES, floor=1.01)
    assert same is head
    everything = self_train(head, features[:100], labelled, targets, CLASSES)
    assert everything is head  # no unlabelled item left


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_self_training_takes_its_share_of_each_predicted_class(share, monkeypatch):
    """One class is far easier (further out) than the others: a global confidence cut would
    pseudo-label mostly that class; the per-class share takes each class alike."""
    features, truth = blobs(1000, seed=8, spread=0.8)
    features[truth == 0, 0] += 6.0
    labelled = np.arange(60)
    targets = np.eye(3)[truth[labelled]]
    head = soft_head_fit(features[labelled], targets, CLASSES, c=1.0)
    predicted = head.predict_proba(features[60:]).argmax(axis=1)
    pseudo_labels = []
    real = heads.soft_head_fit

    def spy(features, probs, classes, weights=None, c=None):
        pseudo_labels.append(probs[len(labelled) :].argmax(axis=1))
        return real(features, probs, classes, weights, c)

    monkeypatch.setattr(heads, "soft_head_fit", spy)
    self_train(head, features, labelled, targets, CLASSES, share=share, rounds=1)
    counts = np.bincount(pseudo_labels[0], minlength=3)
    assert counts.tolist() == [int(share * (predicted == k).sum()) for k in range(3)]
