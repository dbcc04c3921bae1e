"""Pool-ranking benchmark: does ranking a large pool get faster with more Celery workers?

    python bench/pool_ranking.py                         # 100,000 items; 1 and 2 workers
    python bench/pool_ranking.py --items 50000 --workers 1,2,4 --pool P.csv

1. Creates a fresh PostgreSQL database with a single-label project of ``--items`` items whose
   texts come from ``--pool`` (a ``label,text`` CSV, by default ../shared/data/agnews/pool.csv,
   repeated as needed), 1,000 of them with consensus labels.
2. Fills the project's embedding cache with the default backbone's embeddings of those texts
   (each repeated text gets a little noise, so no two items are identical) and trains a head
   (the promotion's own ranking is held back).
3. Times one round of active learning as the product runs it (retrain the head after 50 more
   labels, then rank the whole pool in one process with ``pool_rank``), then, for each worker
   count, starts a Celery worker on Redis with that concurrency and times ``pool_rank_start``
   from dispatch until the last chunk is counted (twice; the second run has warm workers).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._setup import celery_worker_start, celery_worker_wait, database_recreate, django_setup  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "agnews"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/quorum_rank")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
VAR_DIR = ROOT / "bench" / "out" / "rank_var"


def set_up(items: int, pool_csv: Path, cache_dir: Path):  # noqa: ANN201
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.annotation.models import ItemConsensus
    from apps.learning import store
    from apps.learning.campaign import embedded, read_labelled_csv
    from apps.projects.models import Item
    from apps.projects.services import project_create

    call_command("migrate", verbosity=0)
    texts, names = read_labelled_csv(pool_csv)
    vectors, _ = embedded(texts, cache_dir, quantize=False)
    classes = sorted(set(names))
    manager = get_user_model().objects.create(username="bench-manager")
    project = project_create(
        user=manager, name="ranking", overlap=1, gold_ratio=0.0, sampling_strategy="margin",
        labels=[{"name": name} for name in classes],
    )  # fmt: skip
    source = [n % len(texts) for n in range(items)]
    created = Item.objects.bulk_create(
        (Item(project=project, text=texts[i], random_key=n) for n, i in enumerate(source)), batch_size=5000
    )
    ids = [item.pk for item in created]
    rng = np.random.default_rng(0)
    noisy = vectors[source] + rng.normal(0, 0.01, (items, vectors.shape[1])).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    cache = store.embedding_cache(project)
    for start in range(0, items, 10_000):
        cache.add(ids[start : start + 10_000], noisy[start : start + 10_000])
    label_ids = {label.name: label.pk for label in project.labels.all()}
    ItemConsensus.objects.bulk_create(
        ItemConsensus(
            project=project, item_id=ids[n], confidence=1.0, method="majority_vote", is_provisional=False,
            parts=[{"start": None, "end": None, "label_id": label_ids[names[source[n]]]}],
        )
        for n in range(1000)
    )  # fmt: skip
    started = time.perf_counter()
    trained(project)
    print(f"First training (neighbour smoothing of all items, once, + head on 1,000 labels): "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    # One more batch of 50 answers, as a round of active learning brings.
    ItemConsensus.objects.bulk_create(
        ItemConsensus(
            project=project, item_id=ids[n], confidence=1.0, method="majority_vote", is_provisional=False,
            parts=[{"start": None, "end": None, "label_id": label_ids[names[source[n]]]}],
        )
        for n in range(1000, 1050)
    )  # fmt: skip
    return project


def trained(project) -> float:  # noqa: ANN001
    """Train a head (the promotion's own ranking held back, to be timed on its own)."""
    from apps.learning import ranking, services, training

    held_back, ranking.pool_rank_start = ranking.pool_rank_start, lambda **_: {}
    started = time.perf_counter()
    try:
        run = training.training_run_execute(run_id=services.training_request(project=project).pk)
    finally:
        ranking.pool_rank_start = held_back
    assert run is not None and run.state == "succeeded", run and run.error
    return time.perf_counter() - started


def ranked_by_workers(project) -> float:  # noqa: ANN001
    from apps.learning.models import PoolRanking
    from apps.learning.ranking import pool_rank_start

    started = time.perf_counter()
    pool_rank_start(project=project)
    ranking = PoolRanking.objects.first()
    assert ranking is not None
    while ranking.state == "running":
        time.sleep(0.05)
        ranking.refresh_from_db()
    if ranking.state != "succeeded":
        raise RuntimeError(f"ranking failed: {ranking.error}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--pool", type=Path, default=DATA / "pool.csv")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "out" / "cache")
    args = parser.parse_args()

    env = {**os.environ, "DATABASE_URL": PG_URL, "CELERY_BROKER_URL": BROKER, "QUORUM_VAR_DIR": str(VAR_DIR),
           "DJANGO_SETTINGS_MODULE": "platform.settings.dev", "QUORUM_EMBED_ON_IMPORT": "0"}  # fmt: skip
    os.environ.update(env)
    database_recreate(PG_URL)

    django_setup()
    from platform.celery import app

    app.control.purge()  # tasks a killed earlier run left in the queue
    from apps.learning import ranking

    print(f"Setting up {args.items:,} items (PostgreSQL, broker {BROKER}) ...", flush=True)
    project = set_up(args.items, args.pool, args.cache)
    training = trained(project)
    started = time.perf_counter()
    result = ranking.pool_rank(project=project)
    ranked = time.perf_counter() - started
    print(f"One round: retrain the head on 1,050 labels {training:.2f} s + re-rank the whole pool in one process "
          f"{ranked:.2f} s ({result['ranked']:,} items, {result['suggested']:,} pre-labels) = {training + ranked:.2f} s")  # fmt: skip
    chunks = -(-result["ranked"] // ranking.CHUNK)
    for count in [int(w) for w in args.workers.split(",")]:
        worker = celery_worker_start(concurrency=count, env=env, name=f"bench{count}")
        celery_worker_wait(worker)
        try:
            cold, warm = ranked_by_workers(project), ranked_by_workers(project)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        print(
            f"{count} worker process(es), {chunks} chunks of {ranking.CHUNK:,}: first {cold:.2f} s, warm {warm:.2f} s"
        )


if __name__ == "__main__":
    main()
