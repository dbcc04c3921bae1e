"""Active-learning benchmark: does labelling what the model needs pay?

    python bench/active_learning.py                      # ../shared/data/agnews pool.csv and dev.csv
    python bench/active_learning.py --pool P.csv --test T.csv --budget 1000 --batch 50 --start 50

Both CSVs have a header ``label,text``. The script
1. embeds both sets with the default backbone (and measures texts/s, fp32 and int8);
2. runs a campaign per strategy with simulated annotators (see apps/learning/campaign.py),
   averaged over ``--seeds``, printing accuracy and macro-F1 after every batch;
3. prints, per strategy, the labels needed to reach 98% of the accuracy of a model trained
   on the whole pool and the saving against random sampling; the reference row is the
   afternoon baseline (raw mean-pooled embeddings, logistic regression, margin, batches of 50
   from 50 random labels); the target is 98% of that baseline's whole-pool accuracy;
4. times one active-learning round on 100,000 cached items (retrain the head, re-score,
   pick a batch); and saves the curves as a PNG (``--plot``).
"""

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.learning import campaign, strategies  # noqa: E402
from apps.learning.embeddings import backbone_load, embed, threads_set  # noqa: E402
from apps.learning.features import base_sample, smooth  # noqa: E402
from apps.learning.heads import head_fit  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "agnews"
CHECKPOINTS = (100, 200, 500, 1000)


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def embedded(texts: list[str], cache: Path, quantize: bool) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` (cached on disk by content), and texts per second when computed."""
    digest = hashlib.sha256(("\n".join(texts) + str(quantize)).encode()).hexdigest()[:16]
    path = cache / f"{digest}.npy"
    if path.exists():
        return np.load(path), float("nan")
    backbone = backbone_load(quantize=quantize)
    embed(backbone, texts[:32])  # warm up
    started = time.perf_counter()
    vectors = embed(backbone, texts)
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
    head = head_fit(features[taken], answers[taken], c=1.0)
    probs = head.predict_proba(features)
    scores = strategies.margin(probs)
    top = np.argpartition(-scores, min(500, size - 1))[:500]
    strategies.select_batch(scores[top], features[top], 50)
    return {"round": time.perf_counter() - started, "smoothing_once": smoothing}


def plans(args: argparse.Namespace) -> list[campaign.Plan]:
    common = {"start": args.start, "batch": args.batch, "budget": args.budget}
    chosen = [
        campaign.Plan("baseline: raw embeddings + LR, margin", "margin", smoothed=False, **common),
        campaign.Plan("random (raw embeddings)", "random", smoothed=False, **common),
    ]
    for name in args.strategies.split(","):
        weights = {"margin": 0.7, "diversity": 0.2, "random": 0.1} if name == "mix" else None
        chosen.append(campaign.Plan(f"Quorum: {name}", name, smoothed=True, weights=weights, **common))
    return chosen


def plot(path: Path, rows: list[tuple[str, list]], target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, default=DATA / "pool.csv")
    parser.add_argument("--test", type=Path, default=DATA / "dev.csv")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--noise", type=float, default=0.0, help="share of wrong answers from the simulated annotators")
    parser.add_argument(
        "--strategies",
        default="random,least_confidence,margin,entropy,committee,bald,expected_model_change,diversity,boundary,mix",
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "out" / "cache")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "out" / "active_learning.png")
    parser.add_argument("--cores", type=int, default=None)
    parser.add_argument("--round-items", type=int, default=100_000, help="pool size for the round timing")
    args = parser.parse_args()
    threads_set(args.cores)

    pool_texts, pool_names = read(args.pool)
    test_texts, test_names = read(args.test)
    names = sorted(set(pool_names) | set(test_names))
    pool_y = np.array([names.index(n) for n in pool_names])
    test_y = np.array([names.index(n) for n in test_names])
    print(f"Pool {len(pool_texts):,} texts, test {len(test_texts):,}, classes: {', '.join(names)}")

    pool, rate = embedded(pool_texts, args.cache, quantize=False)
    test, _ = embedded(test_texts, args.cache, quantize=False)
    print(f"Embedding (fp32, length-sorted batches): {rate:,.0f} texts/s" if rate == rate else "Embedding: cached")
    sample = pool_texts[:1000]
    quantized, int8_rate = embedded(sample, args.cache / "int8", quantize=True)
    plain = pool[:1000]
    cosine = float((quantized * plain).sum(axis=1).mean())
    if int8_rate == int8_rate:
        print(f"Embedding (int8 dynamic quantisation): {int8_rate:,.0f} texts/s, mean cosine to fp32 {cosine:.3f}")

    data = campaign.Data(pool, pool_y, test, test_y)
    reference = campaign.full_pool_accuracy(data, smoothed=False)
    ours_full = campaign.full_pool_accuracy(data, smoothed=True)
    target = 0.98 * reference
    print(f"Whole pool: raw-embedding LR {100 * reference:.2f}%, Quorum's head {100 * ours_full:.2f}%; "
          f"target = 98% of the former = {100 * target:.2f}%\n")  # fmt: skip

    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for plan in plans(args):
        results = [campaign.run(plan, data, seed=seed, noise=args.noise) for seed in seeds]
        rows.append((plan.name, campaign.mean_curve(results), sum(r.seconds for r in results) / len(results)))
        print(
            f"{plan.name:<42} " + "  ".join(f"{n}:{100 * a:.1f}/{100 * f:.1f}" for n, a, f in rows[-1][1]), flush=True
        )

    print("\n(each cell above: labels:accuracy/macro-F1 %, mean of seeds)\n")
    own_target = {"raw": 0.98 * reference, "quorum": 0.98 * ours_full}
    randoms = {
        "raw": next(curve for name, curve, _ in rows if name.startswith("random (raw")),
        "quorum": next((curve for name, curve, _ in rows if name == "Quorum: random"), None),
    }

    def reach(curve: list, goal: float) -> int | None:
        return next((n for n, a, _ in curve if a >= goal), None)

    print(f"Targets: shared {100 * target:.2f}% (98% of the raw-embedding LR on the whole pool); own = 98% of the same "
          f"head on the whole pool: raw {100 * own_target['raw']:.2f}%, Quorum {100 * own_target['quorum']:.2f}%")  # fmt: skip
    print(
        f"{'strategy':<42} {'shared':>7} {'own':>6} {'saving':>7}"
        + "".join(f" {'@' + str(c):>7}" for c in CHECKPOINTS)
        + f" {'s/run':>6}"
    )
    for name, curve, seconds in rows:
        head = "raw" if ("raw" in name or "baseline" in name) else "quorum"
        shared, own = reach(curve, target), reach(curve, own_target[head])
        random_own = reach(randoms[head], own_target[head]) if randoms[head] else None
        saving = f"{100 * (1 - own / random_own):.0f}%" if own and random_own else "-"
        at = "".join(f" {100 * next((a for n, a, _ in curve if n >= c), float('nan')):>7.1f}" for c in CHECKPOINTS)
        over = ">" + str(args.budget)
        print(f"{name:<42} {shared or over:>7} {own or over:>6} {saving:>7}{at} {seconds:>6.1f}")
    print(
        "(shared / own: labels to reach the target; saving: fewer labels than random sampling with the same head, own target)"
    )

    timing = round_time(pool, pool_y, size=args.round_items, labelled=min(1000, args.round_items // 2))
    print(f"\nOne round on {args.round_items:,} cached items (fit head on 1,000 labels, score all, pick 50): {timing['round']:.2f} s "
          f"(neighbour smoothing of them all, once per new embeddings: {timing['smoothing_once']:.1f} s)")  # fmt: skip
    plot(args.plot, [(name, curve) for name, curve, _ in rows], target)
    print(f"Curves saved to {args.plot}")


if __name__ == "__main__":
    main()
