"""Consolidation benchmark: every method and ``auto`` on real crowdsourced data, and
Dawid-Skene at scale.

    python bench/consolidation.py                          # ../shared/data/crowd
    python bench/consolidation.py --data DIR --scale 1000000

Each folder under ``--data`` is read in either of two shapes: ``answer.csv``
(``id,worker,answer``) with ``truth.csv`` (``q,truth``), or whitespace ``*_crowd.txt``
(item worker label) with ``*_truth.txt`` (item label). Accuracy is measured on the gold
items that have answers. ``auto`` is scored honestly: its choice for each item is made
from the *other* half of the gold (two-fold cross-selection), never from the item's own
answer. Published figures are printed beside ours where they exist.
"""

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.annotation.aggregation import METHODS, accuracy, aggregate, choose_method  # noqa: E402

# Published accuracy (%) from Zheng et al. 2017 (Table 6), the crowd-kit paper (JOSS 2024)
# and the spectral-EM literature (Zhang et al. 2016) as quoted in ../shared/data/README.md.
PUBLISHED = {
    "d_possent": {
        "majority_vote": "93.31 / 93.2",
        "wawa": "95.1",
        "dawid_skene": "96.00 / 96.0",
        "glad": "95.20 / 94.8",
        "mace": "95.0",
        "mmsr": "93.7",
    },
    "rte": {"majority_vote": "~88", "dawid_skene": "~92-93"},
    "bluebirds": {"majority_vote": "~76", "dawid_skene": "~89"},
}


def read_folder(folder: Path) -> tuple[pd.DataFrame, dict] | None:
    if (folder / "answer.csv").is_file() and (folder / "truth.csv").is_file():
        answers = pd.read_csv(folder / "answer.csv")
        answers.columns = ["task", "worker", "label"]
        truth_frame = pd.read_csv(folder / "truth.csv")
        truth = dict(zip(truth_frame.iloc[:, 0], truth_frame.iloc[:, 1], strict=True))
        return answers, truth
    crowd = sorted(folder.glob("*_crowd.txt"))
    gold = sorted(folder.glob("*_truth.txt"))
    if crowd and gold:
        answers = pd.read_csv(crowd[0], sep=r"\s+", header=None, names=["task", "worker", "label"])
        truth_frame = pd.read_csv(gold[0], sep=r"\s+", header=None, names=["task", "label"])
        return answers, dict(zip(truth_frame["task"], truth_frame["label"], strict=True))
    return None


def auto_cross_selected(answers: pd.DataFrame, truth: dict, results: dict, seed: int = 0) -> tuple[float, list[str]]:
    """Two-fold cross-selection: pick the method on one half of the gold, score it on the other."""
    tasks = [task for task in truth if task in set(answers["task"])]
    random.Random(seed).shuffle(tasks)
    halves = [tasks[: len(tasks) // 2], tasks[len(tasks) // 2 :]]
    correct, chosen = [], []
    for pick, score in (halves, halves[::-1]):
        scores = {name: accuracy(result.labels, {t: truth[t] for t in pick}) for name, result in results.items()}
        best = max(scores, key=lambda name: (scores[name], -list(METHODS).index(name)))
        chosen.append(best)
        correct += [results[best].labels[t] == truth[t] for t in score]
    return float(np.mean(correct)), chosen


def run_dataset(name: str, answers: pd.DataFrame, truth: dict) -> None:
    gold = {t: v for t, v in truth.items() if t in set(answers["task"])}
    print(f"\n{name}: {answers['task'].nunique():,} items, {answers['worker'].nunique():,} workers, "
          f"{len(answers):,} answers, {len(gold):,} gold items with answers")  # fmt: skip
    print(f"  {'method':<22} {'accuracy %':>10} {'published %':>14} {'seconds':>8}")
    results = {}
    for method, (title, _) in METHODS.items():
        result = aggregate(answers, method)
        results[method] = result
        published = PUBLISHED.get(name, {}).get(method, "-")
        print(f"  {title:<22} {100 * accuracy(result.labels, gold):>10.2f} {published:>14} {result.seconds:>8.2f}")
    best = max(accuracy(r.labels, gold) for r in results.values())
    auto, chosen = auto_cross_selected(answers, gold, results)
    in_app = choose_method(answers, gold)
    print(f"  {'auto (cross-selected)':<22} {100 * auto:>10.2f} {'-':>14}   chose {', '.join(chosen)}")
    print(f"  {'auto (all gold)':<22} {100 * accuracy(results[in_app.method].labels, gold):>10.2f} {'-':>14}   "
          f"chose {in_app.method}; best single method {100 * best:.2f}")  # fmt: skip


def scale_test(answers_count: int, items: int, workers: int, classes: int = 4, seed: int = 1) -> None:
    """Dawid-Skene over generated answers from workers of varied skill."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, items)
    skill = rng.uniform(0.55, 0.95, workers)
    # Draw a few more (task, worker) pairs than needed, keep the first distinct ones.
    drawn = pd.DataFrame(
        {
            "task": rng.integers(0, items, int(answers_count * 1.05)),
            "worker": rng.integers(0, workers, int(answers_count * 1.05)),
        }
    )
    drawn = drawn.drop_duplicates().head(answers_count)
    task, worker = drawn["task"].to_numpy(), drawn["worker"].to_numpy()
    answers_count = len(drawn)
    right = rng.random(answers_count) < skill[worker]
    wrong = (truth[task] + rng.integers(1, classes, answers_count)) % classes
    label = np.where(right, truth[task], wrong)
    data = pd.DataFrame({"task": task, "worker": worker, "label": label})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = aggregate(data, "dawid_skene")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    acc = float(np.mean(result.labels.reindex(range(items)).to_numpy() == truth))
    print(f"\nScale: Dawid-Skene over {len(data):,} answers ({items:,} items, {workers} workers): "
          f"{seconds:.1f} s, accuracy {100 * acc:.2f}%, peak memory {peak:,.0f} MB ({peak - before:,.0f} MB for the run)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "crowd")
    parser.add_argument("--scale", type=int, default=1_000_000, help="answers for the scale test (0 skips it)")
    args = parser.parse_args()
    folders = sorted(p for p in args.data.iterdir() if p.is_dir()) if args.data.is_dir() else []
    read = [(folder.name, read_folder(folder)) for folder in folders]
    if not any(data for _, data in read):
        raise SystemExit(f"No crowd data sets found under {args.data}")
    for name, data in read:
        if data is not None:
            run_dataset(name, *data)
    if args.scale:
        scale_test(args.scale, items=args.scale // 10, workers=300)


if __name__ == "__main__":
    main()
