"""Simulated active-learning campaigns: how many labels does each strategy need?

A campaign starts from ``start`` labelled items (random, or none: then the first batch
is chosen for diversity), and in rounds: fits a head, scores the unlabelled pool with
a strategy, sends the best ``batch`` items to simulated annotators (the data set's
labels, flipped with probability ``noise``), until ``budget`` labels are spent. After
every round the head is scored on the held-out test set.

It uses the same embeddings, features, heads and strategies as a project's workers,
so its figures are the product's figures. ``campaigns_report`` runs the whole comparison
and prints it: ``bench/active_learning.py`` and the ``simulate`` management command both
call it.
"""

import argparse
import csv
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import TextIOBase
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from sklearn.metrics import f1_score

from . import embeddings, strategies
from .features import base_sample, smooth
from .heads import DEFAULT_C, committee_fit, head_fit


@dataclass
class Data:
    pool: np.ndarray  # (n, d) embeddings
    pool_labels: np.ndarray  # class indices
    test: np.ndarray
    test_labels: np.ndarray
    smoothed_pool: np.ndarray | None = None
    smoothed_test: np.ndarray | None = None

    def features(self, smoothed: bool) -> tuple[np.ndarray, np.ndarray]:
        if not smoothed:
            return self.pool, self.test
        if self.smoothed_pool is None or self.smoothed_test is None:
            base = base_sample(self.pool)
            self.smoothed_pool, self.smoothed_test = smooth(self.pool, base), smooth(self.test, base)
        return self.smoothed_pool, self.smoothed_test


@dataclass
class Plan:
    name: str
    strategy: str
    smoothed: bool = True  # Quorum's head; False = raw embeddings (the simple baseline)
    search_c: bool = False  # choose the head's regularisation by cross-validation each round
    start: int = 50
    batch: int = 50
    budget: int = 1000
    weights: dict[str, float] | None = None


@dataclass
class Result:
    plan: Plan
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (labels, accuracy, macro-F1)
    seconds: float = 0.0


def full_pool_accuracy(data: Data, smoothed: bool) -> float:
    pool, test = data.features(smoothed)
    head = head_fit(pool, data.pool_labels, c=DEFAULT_C)
    return float((head.predict_proba(test).argmax(axis=1) == data.test_labels).mean())


def run(plan: Plan, data: Data, seed: int = 0, noise: float = 0.0) -> Result:
    rng = np.random.default_rng(seed)
    pool, test = data.features(plan.smoothed)
    n = len(pool)
    # Simulated annotators: the true label, or with probability ``noise`` another one.
    classes = int(max(data.pool_labels.max(), data.test_labels.max())) + 1
    flips = rng.random(n) < noise
    answers = np.where(flips, (data.pool_labels + rng.integers(1, classes, n)) % classes, data.pool_labels)
    labelled = np.zeros(n, dtype=bool)
    if plan.start:
        labelled[rng.choice(n, plan.start, replace=False)] = True
    result = Result(plan)
    started = time.perf_counter()
    while True:
        taken = np.flatnonzero(labelled)
        head = None
        if len(np.unique(answers[taken])) >= 2:
            head = head_fit(pool[taken], answers[taken], c=None if plan.search_c else DEFAULT_C)
            predicted = np.array(head.classes)[head.predict_proba(test).argmax(axis=1)]
            result.curve.append(
                (
                    len(taken),
                    float((predicted == data.test_labels).mean()),
                    float(f1_score(data.test_labels, predicted, average="macro")),
                )
            )
        if len(taken) >= plan.budget:
            break
        free = np.flatnonzero(~labelled)
        batch = min(plan.batch, plan.budget - len(taken), len(free))
        labelled[free[_choose(plan, head, pool, free, taken, answers, batch, rng)]] = True
    result.seconds = time.perf_counter() - started
    return result


def _choose(plan, head, pool, free, taken, answers, batch, rng) -> np.ndarray:  # noqa: ANN001
    """Indices into ``free`` of the next batch."""
    if plan.strategy == "random":
        return rng.choice(len(free), batch, replace=False)
    if head is None:  # nothing to learn from yet: cover the pool
        return strategies.select_batch(strategies.diversity(pool[free], batch=batch), pool[free], batch)
    inputs: dict = {"probs": head.predict_proba(pool[free]), "embeddings": pool[free]}
    if plan.strategy in strategies.NEEDS_COMMITTEE or (plan.weights and strategies.NEEDS_COMMITTEE & set(plan.weights)):
        members = committee_fit(pool[taken], answers[taken], c=head.c)
        inputs["committee"] = np.stack([m.predict_proba(pool[free]) for m in members])
    inputs.update(labelled=pool[taken], labels=answers[taken], batch=batch)
    scores = strategies.strategy_scores(plan.strategy, weights=plan.weights, **inputs)
    return strategies.select_batch(scores, pool[free], batch)


def mean_curve(results: Sequence[Result]) -> list[tuple[int, float, float]]:
    """The curves of several seeds, averaged at the label counts they share."""
    shared = set.intersection(*[{n for n, _, _ in r.curve} for r in results])
    return [
        (
            n,
            float(np.mean([acc for r in results for m, acc, _ in r.curve if m == n])),
            float(np.mean([f1 for r in results for m, _, f1 in r.curve if m == n])),
        )
        for n in sorted(shared)
    ]


# --- the report: every strategy on one pool and test set -------------------------------------------

CHECKPOINTS = (100, 200, 500, 1000)
DEFAULT_STRATEGIES = (
    "random,least_confidence,margin,entropy,committee,bald,expected_model_change,diversity,boundary,mix"
)


def campaign_arguments(parser: argparse.ArgumentParser, *, pool: Path | None, test: Path | None, out: Path) -> None:
    """The options of a campaign report, for ``bench/active_learning.py`` and ``manage.py
    simulate`` alike (``pool``/``test`` None: required; ``out``: where caches and curves go)."""
    csv_help = "CSV with a header label,text"
    parser.add_argument("--pool", type=Path, default=pool, required=pool is None, help=csv_help)
    parser.add_argument("--test", type=Path, default=test, required=test is None, help=csv_help)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--noise", type=float, default=0.0, help="share of wrong answers from the simulated annotators")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES)
    parser.add_argument("--cache", type=Path, default=out / "cache")
    parser.add_argument("--plot", type=Path, default=out / "active_learning.png")
    parser.add_argument("--cores", type=int, default=None)
    parser.add_argument(
        "--round-items", dest="round_items", type=int, default=100_000, help="pool size for the round timing"
    )


@dataclass
class CampaignOptions:
    pool: Path  # CSV with a header ``label,text``
    test: Path  # the same shape
    cache: Path  # where embeddings are kept, by content
    plot: Path  # the curves, as a PNG
    budget: int = 1000
    batch: int = 50
    start: int = 50
    seeds: str = "0,1,2"
    noise: float = 0.0  # share of wrong answers from the simulated annotators
    strategies: str = DEFAULT_STRATEGIES
    cores: int | None = None
    round_items: int = 100_000  # pool size for the round timing


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def embedded(texts: list[str], cache: Path, quantize: bool) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` (cached on disk by content), and texts per second when computed."""
    digest = hashlib.sha256(("\n".join(texts) + str(quantize)).encode()).hexdigest()[:16]
    path = cache / f"{digest}.npy"
    if path.exists():
        return np.load(path), float("nan")
    backbone = embeddings.backbone_load(quantize=quantize)
    embeddings.embed(backbone, texts[:32])  # warm up
    started = time.perf_counter()
    vectors = embeddings.embed(backbone, texts)
    rate = len(texts) / (time.perf_counter() - started)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, rate


def round_time(pool: np.ndarray, labels: np.ndarray, size: int = 100_000, labelled: int = 1000) -> dict[str, float]:
    """One round on ``size`` cached items: fit the head on ``labelled`` labels, score all, pick 50."""
    rng = np.random.default_rng(0)
    big = pool[rng.integers(0, len(pool), size)] + rng.normal(0, 0.01, (size, pool.shape[1])).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    answers = labels[rng.integers(0, len(labels), size)]
    started = time.perf_counter()
    features = smooth(big, base_sample(big))
    smoothing = time.perf_counter() - started
    started = time.perf_counter()
    taken = rng.choice(size, labelled, replace=False)
    head = head_fit(features[taken], answers[taken], c=DEFAULT_C)
    probs = head.predict_proba(features)
    scores = strategies.margin(probs)
    top = np.argpartition(-scores, min(500, size - 1))[:500]
    strategies.select_batch(scores[top], features[top], 50)
    return {"round": time.perf_counter() - started, "smoothing_once": smoothing}


def plans(options: "CampaignOptions") -> list[Plan]:
    common: dict[str, Any] = {"start": options.start, "batch": options.batch, "budget": options.budget}
    chosen = [
        Plan("baseline: raw embeddings + LR, margin", "margin", smoothed=False, **common),
        Plan("random (raw embeddings)", "random", smoothed=False, **common),
    ]
    for name in options.strategies.split(","):
        weights = {"margin": 0.7, "diversity": 0.2, "random": 0.1} if name == "mix" else None
        chosen.append(Plan(f"Quorum: {name}", name, smoothed=True, weights=weights, **common))
    return chosen


def plot(path: Path, rows: list[tuple[str, list]], target: float) -> None:
    # deferred: matplotlib loads only when a campaign report draws its curves
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred, as matplotlib

    figure, axis = plt.subplots(figsize=(9, 5.5), dpi=120)
    for name, curve in rows:
        style = "--" if "baseline" in name or "raw" in name else "-"
        axis.plot([n for n, _, _ in curve], [100 * a for _, a, _ in curve], style, label=name, linewidth=1.6)
    axis.axhline(100 * target, color="grey", linewidth=0.8, linestyle=":", label=f"target {100 * target:.1f}%")
    axis.set_xlabel("labels")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Active learning on AG News (mean of seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)


def campaigns_report(options: CampaignOptions, out: TextIO | TextIOBase = sys.stdout) -> None:
    """1. Embed both sets with the default backbone (and measure texts/s, fp32 and int8);
    2. run a campaign per strategy with simulated annotators, averaged over the seeds,
       printing accuracy and macro-F1 after every batch;
    3. print, per strategy, the labels needed to reach 98% of the accuracy of a model
       trained on the whole pool and the saving against random sampling; the reference
       row is the afternoon baseline (raw mean-pooled embeddings, logistic regression,
       margin); the target is 98% of that baseline's whole-pool accuracy;
    4. time one active-learning round on ``round_items`` cached items, and draw the curves."""

    def say(text: str = "") -> None:
        out.write(f"{text}\n")
        out.flush()

    embeddings.threads_set(options.cores)

    pool_texts, pool_names = read_labelled_csv(options.pool)
    test_texts, test_names = read_labelled_csv(options.test)
    names = sorted(set(pool_names) | set(test_names))
    pool_y = np.array([names.index(n) for n in pool_names])
    test_y = np.array([names.index(n) for n in test_names])
    say(f"Pool {len(pool_texts):,} texts, test {len(test_texts):,}, classes: {', '.join(names)}")

    pool, rate = embedded(pool_texts, options.cache, quantize=False)
    test, _ = embedded(test_texts, options.cache, quantize=False)
    say(f"Embedding (fp32, length-sorted batches): {rate:,.0f} texts/s" if rate == rate else "Embedding: cached")
    sample = pool_texts[:1000]
    quantized, int8_rate = embedded(sample, options.cache / "int8", quantize=True)
    plain = pool[:1000]
    cosine = float((quantized * plain).sum(axis=1).mean())
    if int8_rate == int8_rate:
        say(f"Embedding (int8 dynamic quantisation): {int8_rate:,.0f} texts/s, mean cosine to fp32 {cosine:.3f}")

    data = Data(pool, pool_y, test, test_y)
    reference = full_pool_accuracy(data, smoothed=False)
    ours_full = full_pool_accuracy(data, smoothed=True)
    target = 0.98 * reference
    say(
        f"Whole pool: raw-embedding LR {100 * reference:.2f}%, Quorum's head {100 * ours_full:.2f}%; "
        f"target = 98% of the former = {100 * target:.2f}%\n"
    )

    seeds = [int(s) for s in options.seeds.split(",")]
    rows = []
    for plan in plans(options):
        results = [run(plan, data, seed=seed, noise=options.noise) for seed in seeds]
        rows.append((plan.name, mean_curve(results), sum(r.seconds for r in results) / len(results)))
        say(f"{plan.name:<42} " + "  ".join(f"{n}:{100 * a:.1f}/{100 * f:.1f}" for n, a, f in rows[-1][1]))

    say("\n(each cell above: labels:accuracy/macro-F1 %, mean of seeds)\n")
    own_target = {"raw": 0.98 * reference, "quorum": 0.98 * ours_full}
    randoms = {
        "raw": next(curve for name, curve, _ in rows if name.startswith("random (raw")),
        "quorum": next((curve for name, curve, _ in rows if name == "Quorum: random"), None),
    }

    def reach(curve: list, goal: float) -> int | None:
        return next((n for n, a, _ in curve if a >= goal), None)

    say(
        f"Targets: shared {100 * target:.2f}% (98% of the raw-embedding LR on the whole pool); own = 98% of the "
        f"same head on the whole pool: raw {100 * own_target['raw']:.2f}%, Quorum {100 * own_target['quorum']:.2f}%"
    )
    say(
        f"{'strategy':<42} {'shared':>7} {'own':>6} {'saving':>7}"
        + "".join(f" {'@' + str(c):>7}" for c in CHECKPOINTS)
        + f" {'s/run':>6}"
    )
    for name, curve, seconds in rows:
        head = "raw" if ("raw" in name or "baseline" in name) else "quorum"
        shared, own = reach(curve, target), reach(curve, own_target[head])
        random_curve = randoms[head]
        random_own = reach(random_curve, own_target[head]) if random_curve else None
        saving = f"{100 * (1 - own / random_own):.0f}%" if own and random_own else "-"
        at = "".join(f" {100 * next((a for n, a, _ in curve if n >= c), float('nan')):>7.1f}" for c in CHECKPOINTS)
        over = ">" + str(options.budget)
        say(f"{name:<42} {shared or over:>7} {own or over:>6} {saving:>7}{at} {seconds:>6.1f}")
    say(
        "(shared / own: labels to reach the target; "
        "saving: fewer labels than random sampling with the same head, own target)"
    )

    timing = round_time(pool, pool_y, size=options.round_items, labelled=min(1000, options.round_items // 2))
    say(
        f"\nOne round on {options.round_items:,} cached items (fit head on 1,000 labels, score all, pick 50): "
        f"{timing['round']:.2f} s (neighbour smoothing of them all, once per new embeddings: "
        f"{timing['smoothing_once']:.1f} s)"
    )
    plot(options.plot, [(name, curve) for name, curve, _ in rows], target)
    say(f"Curves saved to {options.plot}")
