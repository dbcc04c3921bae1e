"""Inter-annotator agreement, as pure functions over answers.

``units`` maps an item to the answers it got (hashable values: a label id, a yes/no,
...). Items with fewer than two answers say nothing about agreement and are skipped.

- Krippendorff's alpha (nominal), from category counts per item (``krippendorff``).
- Fleiss' kappa, over the items that got the most common number of answers (the
  statistic assumes the same number of raters per item).
- Percent agreement: the share of agreeing pairs among all pairs of answers per item.
- Pairwise Cohen's kappa between annotators on the items both answered.
- For entity spans: F1 between two annotators' sets of (start, end, label) spans,
  matched exactly by character offsets, so it depends neither on span order nor on
  how spans overlap; averaged over every pair of annotators on every item.
"""

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import combinations

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

Units = Mapping[Hashable, Sequence[Hashable]]


def _rated(units: Units) -> dict[Hashable, Sequence[Hashable]]:
    return {item: values for item, values in units.items() if len(values) >= 2}


def category_counts(units: Units) -> tuple[np.ndarray, list[Hashable]]:
    """Items x categories: how many answers each item got in each category."""
    rated = _rated(units)
    categories = sorted({value for values in rated.values() for value in values}, key=str)
    index = {category: i for i, category in enumerate(categories)}
    counts = np.zeros((len(rated), len(categories)), dtype=float)
    for row, values in enumerate(rated.values()):
        for value in values:
            counts[row, index[value]] += 1
    return counts, categories


def krippendorff_alpha(units: Units) -> float | None:
    counts, categories = category_counts(units)
    if counts.shape[0] == 0 or len(categories) < 2:
        return None
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


def fleiss_kappa(units: Units) -> float | None:
    """Fleiss (1971) over the items rated by the most common number of annotators."""
    counts, categories = category_counts(units)
    if counts.shape[0] == 0 or len(categories) < 2:
        return None
    per_item = counts.sum(axis=1)
    n = Counter(per_item.tolist()).most_common(1)[0][0]
    table = counts[per_item == n]
    items = table.shape[0]
    p_j = table.sum(axis=0) / (items * n)
    p_i = (np.square(table).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), np.square(p_j).sum()
    if p_e == 1:
        return None
    return float((p_bar - p_e) / (1 - p_e))


def percent_agreement(units: Units) -> float | None:
    counts, _ = category_counts(units)
    if counts.shape[0] == 0:
        return None
    n = counts.sum(axis=1)
    agreeing = (counts * (counts - 1)).sum(axis=1)
    return float(np.mean(agreeing / (n * (n - 1))))


def cohen_kappa_pairs(
    by_annotator: Mapping[Hashable, Mapping[Hashable, Hashable]], min_shared: int = 5
) -> dict[tuple[Hashable, Hashable], tuple[float | None, int]]:
    """For each pair of annotators with at least ``min_shared`` items in common:
    (Cohen's kappa, items shared). Kappa is None when it is undefined (both gave one
    and the same label throughout)."""
    pairs: dict[tuple[Hashable, Hashable], tuple[float | None, int]] = {}
    for a, b in combinations(sorted(by_annotator, key=str), 2):
        shared = sorted(set(by_annotator[a]) & set(by_annotator[b]), key=str)
        if len(shared) < min_shared:
            continue
        first = [str(by_annotator[a][item]) for item in shared]
        second = [str(by_annotator[b][item]) for item in shared]
        if len(set(first) | set(second)) < 2:
            pairs[(a, b)] = (None, len(shared))
            continue
        kappa = cohen_kappa_score(first, second)
        pairs[(a, b)] = (None if np.isnan(kappa) else float(kappa), len(shared))
    return pairs


def span_f1(first: AbstractSet[Hashable], second: AbstractSet[Hashable]) -> float:
    if not first and not second:
        return 1.0
    return 2 * len(first & second) / (len(first) + len(second))


def span_agreement(units: Mapping[Hashable, Sequence[AbstractSet[Hashable]]]) -> float | None:
    """Mean pairwise span F1 over items with at least two answers."""
    scores = [span_f1(a, b) for answers in units.values() if len(answers) >= 2 for a, b in combinations(answers, 2)]
    return float(np.mean(scores)) if scores else None
