"""Agreement metrics against values worked out by hand or published for small tables."""

import pytest

from apps.annotation import agreement


def test_fleiss_kappa_matches_fleiss_1971_worked_example():
    # The 10-subject, 14-rater, 5-category table used in Fleiss (1971) and on Wikipedia: kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    units = {i: [c for c, n in enumerate(row) for _ in range(n)] for i, row in enumerate(table)}

    assert agreement.fleiss_kappa(units) == pytest.approx(0.2099, abs=1e-4)


def test_krippendorff_alpha_matches_krippendorffs_nominal_example():
    # Krippendorff (2011), three coders, 12 units with missing values: nominal alpha = 0.691.
    coders = [
        [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
        [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
        [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
    ]
    units = {u: [coder[u] for coder in coders if coder[u] is not None] for u in range(15)}

    assert agreement.krippendorff_alpha(units) == pytest.approx(0.691, abs=1e-3)


def test_percent_agreement_by_hand():
    # Item 1: 3 of 3 agree -> 6/6 pairs; item 2: two "a", one "b" -> 2/6; item 3 has one answer (skipped).
    units = {1: ["a", "a", "a"], 2: ["a", "a", "b"], 3: ["b"]}

    assert agreement.percent_agreement(units) == pytest.approx((1 + 1 / 3) / 2)


def test_perfect_agreement_gives_alpha_and_kappa_one():
    units = {1: ["a", "a"], 2: ["b", "b"], 3: ["a", "a"]}

    assert agreement.krippendorff_alpha(units) == pytest.approx(1.0)
    assert agreement.fleiss_kappa(units) == pytest.approx(1.0)


def test_cohen_kappa_pairs_by_hand():
    # 10 shared items; they agree on 8; each says "yes" 5 times: po = 0.8, pe = 0.5, kappa = 0.6.
    first = dict(enumerate("yyyyynnnnn"))
    second = dict(enumerate("yyyynynnnn"))
    loner = {100: "y"}

    pairs = agreement.cohen_kappa_pairs({"ann": first, "bob": second, "cat": loner})

    assert pairs == {("ann", "bob"): (pytest.approx(0.6), 10)}


def test_span_f1_ignores_order_and_handles_overlaps():
    a = {(0, 5, 1), (10, 20, 2), (12, 15, 3)}  # overlapping spans
    b = {(12, 15, 3), (0, 5, 1)}

    assert agreement.span_f1(a, b) == pytest.approx(2 * 2 / 5)
    assert agreement.span_f1(b, a) == agreement.span_f1(a, b)
    assert agreement.span_f1(set(), set()) == 1.0
    assert agreement.span_agreement({1: [a, b], 2: [b]}) == pytest.approx(0.8)
