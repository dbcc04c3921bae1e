"""Weak-supervision benchmark (issue 11): a useful model before the first human label?

    python bench/weak_supervision.py                         # ../shared/data/agnews, bench/agnews_lfs.json
    python bench/weak_supervision.py --data DIR [--lfs FILE.json] [--test FILE.csv] [--seeds 0,1,2]

``DIR`` holds ``pool.csv`` and ``dev.csv`` (header ``label,text``, any label set); ``--test``
replaces ``dev.csv``. The pool's labels are never training data: they play the person who
checks the functions and the annotators who answer active learning's questions. The script
1. embeds both sets with the default backbone (cached on disk under ``bench/out/cache``, as
   ``bench/active_learning.py`` does) and smooths them over the pool's neighbours;
2. applies the labelling functions (``--lfs``, the import format of ``docs/``) to the pool
   and prints each one's coverage, conflicts and accuracy against the pool's labels;
3. fits each label model (majority vote, Dawid-Skene with abstentions skipped, Dawid-Skene
   with the functions' silence modelled, Snorkel's LabelModel if installed) and prints its
   coverage and accuracy on the covered items and on all items (an uncovered item counts as
   wrong);
4. trains the end model with zero human labels: a logistic head on the smoothed features,
   fitted on the best label model's soft labels, then self-trained; prints its accuracy on
   the test set beside a head on plain majority-vote labels and one on all the pool's labels;
5. spends 50, 100, 200 human labels by active learning (margin, batches of 50) starting from
   the weak model (human labels replace weak ones on the same items and weigh more), against
   the same budget starting cold from 50 random seed labels, averaged over ``--seeds``.
A method that fails on a data set is reported as failed and the run goes on.
"""

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._setup import django_setup  # noqa: E402

django_setup()  # the default backbone is a site setting

from apps.learning import embeddings, heads, label_models, rules, strategies  # noqa: E402
from apps.learning.campaign import Data, Plan, embedded, full_pool_accuracy, read_labelled_csv, run  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "agnews"
OUT = ROOT / "bench" / "out"
# Weak labels are noisy: the head is regularised harder than on people's labels (measured on
# the AG News pool, C=0.25 is as good as or better than 1.0 for every label model).
WEAK_C = 0.25
# One person's checked answer outweighs a rule's vote (on the pool, weights 3 to 10 were
# within 0.3 points of each other after 200 labels, all above weight 1).
HUMAN_WEIGHT = 5.0
CHECKPOINTS = (50, 100, 200)
BATCH = 50


@dataclass
class Bench:
    names: list[str]  # class names; index = class id
    pool_texts: list[str]
    pool_y: np.ndarray
    test_y: np.ndarray
    data: Data  # embeddings, and smoothed features once asked

    @property
    def pool(self) -> np.ndarray:
        return self.data.features(smoothed=True)[0]

    @property
    def test(self) -> np.ndarray:
        return self.data.features(smoothed=True)[1]

    @property
    def classes(self) -> list[int]:
        return list(range(len(self.names)))


def say(text: str = "") -> None:
    print(text, flush=True)


def attempt(what: str, action: Callable[[], Any]) -> Any:
    """``action()``, or None after reporting ``what`` as failed (the run goes on)."""
    try:
        return action()
    except Exception as error:  # noqa: BLE001 - a benchmark reports any failure and carries on
        say(f"  {what}: FAILED ({type(error).__name__}: {error})")
        traceback.print_exc(limit=2, file=sys.stderr)
        return None


def test_accuracy(bench: Bench, head: heads.LinearHead) -> float:
    predicted = np.array(head.classes)[head.predict_proba(bench.test).argmax(axis=1)]
    return float((predicted == bench.test_y).mean())


# --- 1-2: data and labelling functions ---------------------------------------------------------------


def bench_load(data_dir: Path, test_csv: Path | None, cache: Path) -> Bench:
    pool_texts, pool_names = read_labelled_csv(data_dir / "pool.csv")
    test_texts, test_names = read_labelled_csv(test_csv or data_dir / "dev.csv")
    names = sorted(set(pool_names) | set(test_names))
    pool_y = np.array([names.index(n) for n in pool_names])
    test_y = np.array([names.index(n) for n in test_names])
    started = time.perf_counter()
    pool, _ = embedded(pool_texts, cache, quantize=False)
    test, _ = embedded(test_texts, cache, quantize=False)
    say(
        f"Pool {len(pool_texts):,} texts, test {len(test_texts):,} ({test_csv or data_dir / 'dev.csv'}), "
        f"classes: {', '.join(names)}; embeddings {time.perf_counter() - started:.1f} s (cached by content)"
    )
    return Bench(names, pool_texts, pool_y, test_y, Data(pool, pool_y, test, test_y))


def context_for(bench: Bench, definitions: list[rules.RuleDefinition]) -> rules.Context:
    """Vectors for similarity functions (the backbone loads only if the file has one)."""
    if not any(d.kind == "similarity" for d in definitions):
        return rules.Context()

    def text_vectors(texts: list[str]) -> np.ndarray:
        return embeddings.embed(embeddings.backbone_load(), texts)

    return rules.Context(
        vectors=bench.data.pool,
        label_vectors=dict(zip(bench.names, text_vectors(bench.names), strict=True)),
        text_vectors=text_vectors,
    )


def votes_apply(bench: Bench, lfs: Path) -> tuple[list[rules.RuleDefinition], np.ndarray]:
    """The (pool items, functions) votes of the enabled functions; one that fails is left out."""
    definitions = [
        d
        for d in rules.definitions_load(lfs.read_bytes(), label_names=bench.names, task_type=rules.SINGLE_LABEL)
        if d.enabled
    ]
    context = context_for(bench, definitions)
    applied, columns = [], []
    started = time.perf_counter()
    for definition in definitions:
        application = attempt(
            f"function {definition.name}", lambda d=definition: rules.rule_apply(d, bench.pool_texts, context)
        )
        if application is None:
            continue
        column = np.full(len(bench.pool_texts), label_models.ABSTAIN)
        for fired in application.fired:
            column[fired.index] = bench.names.index(fired.label)
        if application.timeouts:
            say(f"  function {definition.name}: {application.timeouts} texts timed out (abstained)")
        applied.append(definition)
        columns.append(column)
    say(f"{len(applied)} labelling functions applied to the pool in {time.perf_counter() - started:.1f} s")
    return applied, np.stack(columns, axis=1)


def functions_report(bench: Bench, definitions: list[rules.RuleDefinition], votes: np.ndarray) -> None:
    say(f"\n{'function':<24} {'label':<10} {'coverage':>8} {'conflicts':>9} {'accuracy':>8}  (against pool labels)")
    for definition, row in zip(
        definitions, label_models.lf_analysis(votes, len(bench.names), bench.pool_y), strict=True
    ):
        say(
            f"{definition.name:<24} {str(definition.label):<10} {100 * row['coverage']:>7.1f}% "
            f"{100 * row['conflicts']:>8.1f}% {100 * row['accuracy']:>7.1f}%"
        )
    covered = (votes != label_models.ABSTAIN).any(axis=1)
    say(f"Items with at least one vote: {100 * covered.mean():.1f}%; votes per covered item: "
        f"{(votes[covered] != label_models.ABSTAIN).sum(axis=1).mean():.2f}")  # fmt: skip


# --- 3: label models ---------------------------------------------------------------------------------


def label_models_report(bench: Bench, votes: np.ndarray) -> dict[str, label_models.LabelModelResult]:
    """Each label model's coverage and accuracy; the failed ones are reported and left out."""
    k = len(bench.names)
    silence = np.ones(votes.shape[1], bool)
    candidates: dict[str, Callable[[], label_models.LabelModelResult]] = {
        "majority_vote": lambda: label_models.fit(votes, k, "majority_vote"),
        "dawid_skene (abstentions skipped)": lambda: label_models.fit(votes, k, "dawid_skene"),
        "dawid_skene (silence modelled)": lambda: label_models.fit(votes, k, "dawid_skene", abstain_signal=silence),
        "snorkel": lambda: label_models.fit(votes, k, "snorkel"),
    }
    say(f"\n{'label model':<36} {'coverage':>8} {'acc (covered)':>13} {'acc (all)':>9} {'seconds':>7}")
    say("(acc (all): uncovered items count as wrong)")
    results = {}
    for name, fitting in candidates.items():
        result = attempt(name, fitting)
        if result is None:
            continue
        covered = result.covered
        right = result.labels() == bench.pool_y
        say(
            f"{name:<36} {100 * covered.mean():>7.1f}% {100 * right[covered].mean():>12.2f}% "
            f"{100 * right.mean():>8.2f}% {result.seconds:>7.2f}"
        )
        results[name] = result
    return results


def best_label_model(bench: Bench, results: dict[str, label_models.LabelModelResult]) -> str:
    """The most accurate on its covered items, judged by the pool's labels (the checker)."""
    return max(results, key=lambda name: float((results[name].labels() == bench.pool_y)[results[name].covered].mean()))


# --- 4: the end model with zero human labels ---------------------------------------------------------


def weak_head(bench: Bench, result: label_models.LabelModelResult) -> heads.LinearHead:
    covered = np.flatnonzero(result.covered)
    return heads.soft_head_fit(bench.pool[covered], result.probs[covered], bench.classes, c=WEAK_C)


def end_model_report(
    bench: Bench, results: dict[str, label_models.LabelModelResult], best: str
) -> heads.LinearHead | None:
    say(f"\nEnd model, zero human labels (logistic head on neighbour-smoothed features, C={WEAK_C}; test set):")
    if "majority_vote" in results:
        majority = results["majority_vote"]
        hard = attempt(
            "head on majority-vote labels",
            lambda: heads.head_fit(bench.pool[majority.covered], majority.labels()[majority.covered], c=WEAK_C),
        )
        if hard is not None:
            say(f"  head on hard majority-vote labels (the issue's baseline):  {100 * test_accuracy(bench, hard):.2f}%")
    for name in results:
        head = attempt(f"head on {name}", lambda n=name: weak_head(bench, results[n]))
        if head is not None:
            say(f"  head on soft labels of {name + ':':<38} {100 * test_accuracy(bench, head):.2f}%")
    result = results[best]
    head = weak_head(bench, result)
    covered = np.flatnonzero(result.covered)
    started = time.perf_counter()
    trained = attempt(
        "self-training",
        lambda: heads.self_train(head, bench.pool, covered, result.probs[covered], bench.classes),
    )
    if trained is None:
        return head
    say(
        f"  END MODEL: {best} soft labels + self-training ({heads.SELF_TRAIN_ROUNDS} rounds, top "
        f"{heads.SELF_TRAIN_SHARE:.0%} per class): {100 * test_accuracy(bench, trained):.2f}% "
        f"(self-training {time.perf_counter() - started:.1f} s)"
    )
    say(f"  reference: head on all {len(bench.pool_y):,} pool labels (C={heads.DEFAULT_C}): "
        f"{100 * full_pool_accuracy(bench.data, smoothed=True):.2f}%")  # fmt: skip
    return trained


# --- 5: human labels on top: warm start against cold start --------------------------------------------


def warm_curve(bench: Bench, result: label_models.LabelModelResult, budget: int) -> list[tuple[int, float]]:
    """Margin sampling from the weak model: each batch of human labels replaces the weak labels
    of its items (weight HUMAN_WEIGHT), then the head is refitted on weak + human labels."""
    k = len(bench.names)
    human = np.zeros(len(bench.pool_y), bool)
    head = weak_head(bench, result)
    curve = [(0, test_accuracy(bench, head))]
    while human.sum() < budget:
        free = np.flatnonzero(~human)
        scores = strategies.margin(head.predict_proba(bench.pool[free]))
        human[free[strategies.select_batch(scores, bench.pool[free], min(BATCH, budget - int(human.sum())))]] = True
        targets = result.probs.copy()
        targets[human] = np.eye(k)[bench.pool_y[human]]
        training = np.flatnonzero(result.covered | human)
        weights = np.where(human, HUMAN_WEIGHT, 1.0)[training]
        head = heads.soft_head_fit(bench.pool[training], targets[training], bench.classes, weights, c=WEAK_C)
        curve.append((int(human.sum()), test_accuracy(bench, head)))
    return curve


def cold_curve(bench: Bench, budget: int, seed: int) -> list[tuple[int, float]]:
    """The active-learning campaign of bench/active_learning.py: 50 random seed labels, then margin."""
    plan = Plan("cold start, margin", "margin", smoothed=True, start=BATCH, batch=BATCH, budget=budget)
    return [(n, accuracy) for n, accuracy, _ in run(plan, bench.data, seed=seed).curve]


def active_learning_report(bench: Bench, result: label_models.LabelModelResult, seeds: list[int]) -> None:
    budget = max(CHECKPOINTS)
    say(f"\nHuman labels by active learning (margin, batches of {BATCH}; test accuracy):")
    started = time.perf_counter()
    # Margin from a fixed weak model and answers from the pool's labels: the warm run has no
    # randomness, so one run stands for every seed.
    warm = attempt("warm start", lambda: dict(warm_curve(bench, result, budget)))
    warm_seconds = time.perf_counter() - started
    colds = [attempt(f"cold start, seed {seed}", lambda s=seed: dict(cold_curve(bench, budget, s))) for seed in seeds]
    colds = [c for c in colds if c is not None]
    say(f"  {'labels':<40}" + "".join(f"{n:>8}" for n in (0, *CHECKPOINTS)))
    if warm is not None:
        say(f"  {'warm: from the weak model':<40}" + "".join(f"{100 * warm[n]:>7.2f}%" for n in (0, *CHECKPOINTS)))
    if colds:
        cold = {n: float(np.mean([c[n] for c in colds])) for n in CHECKPOINTS}
        spread = {n: float(np.std([c[n] for c in colds])) for n in CHECKPOINTS}
        say(f"  {f'cold: 50 random, then margin ({len(colds)} seeds)':<40}{'-':>8}"
            + "".join(f"{100 * cold[n]:>7.2f}%" for n in CHECKPOINTS))  # fmt: skip
        say(f"  {'  (std over seeds)':<40}{'':>8}" + "".join(f"{100 * spread[n]:>7.2f} " for n in CHECKPOINTS))
        if warm is not None:
            say(f"  {'warm - cold':<40}{'':>8}" + "".join(f"{100 * (warm[n] - cold[n]):>+7.2f} " for n in CHECKPOINTS))
    say(f"  (warm run {warm_seconds:.1f} s; cold runs {time.perf_counter() - started - warm_seconds:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with pool.csv and dev.csv (label,text)")
    parser.add_argument(
        "--lfs", type=Path, default=ROOT / "bench" / "agnews_lfs.json", help="functions (import format)"
    )
    parser.add_argument("--test", type=Path, default=None, help="labelled CSV to test on instead of dev.csv")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the cold-start runs")
    parser.add_argument("--cache", type=Path, default=OUT / "cache")
    parser.add_argument("--cores", type=int, default=None)
    options = parser.parse_args(argv)
    started = time.perf_counter()
    embeddings.threads_set(options.cores)

    bench = bench_load(options.data, options.test, options.cache)
    bench.data.features(smoothed=True)
    try:
        definitions, votes = votes_apply(bench, options.lfs)
    except rules.RuleError as error:
        raise SystemExit(f"{options.lfs}: {error.message}") from error
    functions_report(bench, definitions, votes)
    results = label_models_report(bench, votes)
    if not results:
        raise SystemExit("No label model could be fitted.")
    best = best_label_model(bench, results)
    say(f"Best label model on the pool's labels: {best}")
    end_model_report(bench, results, best)
    active_learning_report(bench, results[best], [int(s) for s in options.seeds.split(",")])
    say(f"\nTotal run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
