"""Annotation load benchmark: simulated annotators over HTTP against gunicorn on PostgreSQL.

1. Creates a fresh PostgreSQL database with a project of ``--items`` items (k=3, 5% gold)
   and 100 annotator accounts with API tokens.
2. Counts the SQL queries of one "next" and one "submit" request on that project and on
   a project of 1,000 items: they must not grow with the project.
3. Starts gunicorn and, for each N in ``--annotators``, runs N annotators at once for
   ``--seconds``. Each loops: ``POST tasks/next`` then ``POST annotations`` (a cycle is
   both requests). ``--combined`` measures the workspace's way instead: one
   ``POST annotations`` with ``next=true`` per cycle.
4. Prints cycles per second and cycle latency percentiles per N. By default the
   annotators together offer ``--rate`` cycles per second (each pauses between cycles,
   as people read); ``--rate 0`` runs them back to back to find the saturation point.
   (With no pause, 100 annotators and a p95 under 100 ms would need 1,000 cycles/s:
   concurrency = throughput x latency.)

    python bench/annotate_load.py                        # 100k items; N = 10, 50, 100
    python bench/annotate_load.py --items 20000 --seconds 10 --annotators 100
"""

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._setup import (  # noqa: E402
    database_recreate,
    django_setup,
    gunicorn_start,
    percentile,
    postgres_available,
    prod_env,
)

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/quorum_load")
PORT = 8077
LABELS = ["World", "Sports", "Business", "Science"]


def set_up(items: int, annotators: int) -> dict:
    """Migrate, create the projects, users and tokens; return what the load needs."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from apps.projects.models import Item, Role
    from apps.projects.services import membership_add, project_create

    call_command("migrate", verbosity=0)
    User = get_user_model()
    manager = User.objects.create(username="bench-manager")
    projects = {}
    for name, size in (("big", items), ("small", 1000)):
        project = project_create(
            user=manager, name=name, overlap=3, gold_ratio=0.05, labels=[{"name": label} for label in LABELS]
        )
        gold = size // 20
        Item.objects.bulk_create(
            (Item(project=project, text=f"Story {n}: " + "words of news " * 12, is_gold=n < gold) for n in range(size)),
            batch_size=5000,
        )
        projects[name] = project
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    tokens = []
    for n in range(annotators):
        user = User.objects.create(username=f"crowd{n}")
        for project in projects.values():
            membership_add(project=project, user_identifier=user.username, role=Role.ANNOTATOR)
        tokens.append(Token.objects.create(user=user).key)
    return {"project": projects["big"].pk, "small": projects["small"].pk, "tokens": tokens}


def reuse(annotators: int) -> dict:
    from rest_framework.authtoken.models import Token

    from apps.projects.models import Project

    tokens = list(
        Token.objects.filter(user__username__startswith="crowd").order_by("user_id").values_list("key", flat=True)
    )
    return {
        "project": Project.objects.get(name="big").pk,
        "small": Project.objects.get(name="small").pk,
        "tokens": tokens[:annotators],
    }


def query_counts(project_id: int, token: str) -> tuple[int, int]:
    """Queries in one next and one submit request (Django test client, same process)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    held = client.post(f"/api/projects/{project_id}/tasks/next/", {}, format="json").json()["task"]  # warm up
    # Holding the first task makes the measured request lease a new item.
    with CaptureQueriesContext(connection) as next_queries:
        task = client.post(
            f"/api/projects/{project_id}/tasks/next/", {"holding": [held["assignment_id"]]}, format="json"
        ).json()["task"]
    body = {"assignment_id": task["assignment_id"], "value": "World", "submission_id": str(uuid.uuid4())}
    with CaptureQueriesContext(connection) as submit_queries:
        client.post(f"/api/projects/{project_id}/annotations/", body, format="json")
    return len(next_queries), len(submit_queries)


async def annotator(
    session, base: str, token: str, stop_at: float, combined: bool, interval: float, cycles: list, errors: list
) -> None:
    """One simulated annotator. With ``interval`` > 0 it starts a cycle every ``interval``
    seconds (the rest is reading time; a late cycle starts at once), else back to back."""
    import aiohttp

    headers = {"Authorization": f"Token {token}"}
    rng = random.Random(token)
    task = None
    next_start = time.perf_counter() + rng.random() * interval
    while time.perf_counter() < stop_at:
        if interval:
            await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
            next_start = max(next_start + interval, time.perf_counter())
        started = time.perf_counter()
        try:
            if task is None or not combined:
                async with session.post(f"{base}/tasks/next/", json={}, headers=headers) as response:
                    task = (await response.json())["task"]
            if task is None:
                await asyncio.sleep(0.05)
                continue
            body = {
                "assignment_id": task["assignment_id"],
                "value": rng.choice(LABELS),
                "submission_id": str(uuid.uuid4()),
                "duration_ms": 1500,
                "next": combined,
            }
            async with session.post(f"{base}/annotations/", json=body, headers=headers) as response:
                reply = await response.json()
                if response.status not in (200, 201):
                    errors.append(response.status)
                    task = None
                    continue
            task = reply["next"]["task"] if combined else None
            cycles.append((started, time.perf_counter() - started))
        except (TimeoutError, aiohttp.ClientError) as error:
            errors.append(type(error).__name__)
            task = None


async def run_level(project_id: int, tokens: list[str], seconds: float, combined: bool, rate: float) -> dict:
    import aiohttp

    base = f"http://127.0.0.1:{PORT}/api/projects/{project_id}"
    cycles: list = []
    errors: list = []
    warmup = 2.0
    connector = aiohttp.TCPConnector(limit=len(tokens) + 10)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        begin = time.perf_counter()
        stop_at = begin + warmup + seconds
        interval = len(tokens) / rate if rate else 0.0
        await asyncio.gather(
            *(annotator(session, base, t, stop_at, combined, interval, cycles, errors) for t in tokens)
        )
    measured = [latency for started, latency in cycles if started >= begin + warmup]
    measured.sort()

    return {
        "rate": len(measured) / seconds,
        "p50": percentile(measured, 0.50) * 1000,
        "p95": percentile(measured, 0.95) * 1000,
        "p99": percentile(measured, 0.99) * 1000,
        "mean": statistics.fmean(measured) * 1000 if measured else float("nan"),
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--annotators", default="10,50,100")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--combined", action="store_true", help="one submit-with-next request per cycle")
    parser.add_argument("--reuse", action="store_true", help="keep the database of the last run (skips set-up)")
    parser.add_argument(
        "--rate", type=float, default=200,
        help="cycles/s offered by all annotators together (each reads between cycles); 0 = back to back",
    )  # fmt: skip
    args = parser.parse_args()
    levels = [int(n) for n in args.annotators.split(",")]
    if not postgres_available():
        raise SystemExit("This benchmark needs PostgreSQL on 127.0.0.1:5432.")

    if not args.reuse:
        database_recreate(PG_URL)
    os.environ.update(DATABASE_URL=PG_URL, DEBUG="0", LOG_LEVEL="WARNING")

    django_setup()
    started = time.perf_counter()
    world = reuse(max(levels)) if args.reuse else set_up(args.items, max(levels))
    print(f"Set up {args.items:,} items and {max(levels)} annotators in {time.perf_counter() - started:.0f} s")
    big = query_counts(world["project"], world["tokens"][-1])
    small = query_counts(world["small"], world["tokens"][-1])
    print(f"SQL queries per request: next {big[0]} / submit {big[1]} at {args.items:,} items; "
          f"next {small[0]} / submit {small[1]} at 1,000 items")  # fmt: skip

    from django.db import connections

    connections.close_all()
    server = gunicorn_start(port=PORT, workers=args.workers, threads=args.threads, env=prod_env(PG_URL))
    mode = "1 request (submit + next)" if args.combined else "2 requests (next, then submit)"
    print(f"gunicorn: {args.workers} workers x {args.threads} threads; a cycle is {mode}; {os.cpu_count()} CPUs")
    offered = f"{args.rate:.0f} cycles/s offered in all" if args.rate else "back to back (saturation)"
    print(f"Load: {offered}")
    print(f"{'annotators':>10} {'cycles/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>7}")
    try:
        for n in levels:
            r = asyncio.run(run_level(world["project"], world["tokens"][:n], args.seconds, args.combined, args.rate))
            print(
                f"{n:>10} {r['rate']:>9.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} {r['mean']:>8.1f} {r['errors']:>7}"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
