"""Import benchmark: generated items through Quorum's real import service.

For each database (SQLite always; PostgreSQL when it answers) and each file size, a
fresh process creates an empty database, migrates it, creates a project and runs the
same ``items_import_start`` that uploads use (check every row, then write in one
transaction). It prints rows per second for the whole import and for each pass, and
the process's peak memory above its baseline, which should stay flat as files grow.

    python bench/import_items.py                       # 20k, 50k and 100k rows
    python bench/import_items.py --rows 100000 --backends postgres --format jsonl
"""

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._setup import database_recreate, postgres_available  # noqa: E402

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/quorum_bench")
TOPICS = ["World", "Sports", "Business", "Science"]
WORDS = [
    "market",
    "league",
    "minister",
    "orbit",
    "shares",
    "coach",
    "treaty",
    "vaccine",
    "merger",
    "season",
    "election",
    "telescope",
    "profit",
    "striker",
    "summit",
    "genome",
    "budget",
    "final",
    "border",
    "climate",
    "startup",
    "record",
    "rally",
    "reactor",
]


def generate(path: Path, rows: int, fmt: str, seed: int = 7) -> None:
    """A file like a real one: ids, 5% gold, a metadata column, texts of 80-600 chars."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle) if fmt == "csv" else None
        if writer:
            writer.writerow(["id", "text", "gold", "source"])
        for n in range(rows):
            words = rng.choices(WORDS, k=rng.randint(12, 90))
            text = " ".join(words).capitalize() + "."
            gold = rng.choice(TOPICS) if rng.random() < 0.05 else ""
            source = rng.choice(["wire", "web", "print"])
            if writer:
                writer.writerow([f"item-{n}", text, gold, source])
            else:
                record = {"id": f"item-{n}", "text": text, "source": source}
                if gold:
                    record["gold"] = gold
                handle.write(json.dumps(record) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    """Runs in a fresh process with DATABASE_URL set: migrate, import once, print JSON."""
    sys.path.insert(0, str(HERE.parent))
    from bench._setup import django_setup

    django_setup()
    from django.core.files import File
    from django.core.management import call_command

    from apps.projects import imports
    from apps.projects.models import Item
    from apps.projects.services import project_create
    from tests.factories import UserFactory  # noqa: F401  (factory-boy is installed with the suite)

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="bench")
    project = project_create(user=user, name="bench", labels=[{"name": t} for t in TOPICS])
    baseline = peak_rss_mb()
    path = Path(args.file)
    phases: dict[str, float] = {}
    original_check, original_write = imports._rows_check, imports._rows_write

    def timed(name, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                phases[name] = time.perf_counter() - start

        return wrapper

    imports._rows_check = timed("check", original_check)
    imports._rows_write = timed("write", original_write)
    start = time.perf_counter()
    with path.open("rb") as handle:
        upload = File(handle, name=path.name)
        upload.size = path.stat().st_size
        job = imports.items_import_start(project=project, user=user, upload=upload, inline=True)
    elapsed = time.perf_counter() - start
    assert job.state == "succeeded", (job.message, job.errors[:3])
    assert Item.objects.filter(project=project).count() == args.rows
    print(json.dumps({
        "rows": args.rows, "seconds": elapsed, "check_s": phases["check"], "write_s": phases["write"],
        "baseline_mb": baseline, "peak_mb": peak_rss_mb(),
    }))  # fmt: skip


def fresh_database(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        db = workdir / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{db}"
    database_recreate(PG_URL)
    return PG_URL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="20000,50000,100000", help="Comma-separated file sizes in rows.")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.rows = int(args.rows)
        worker(args)
        return

    sizes = [int(size) for size in args.rows.split(",")]
    backends = [b for b in args.backends.split(",") if b != "postgres" or postgres_available()]
    print(f"Quorum import benchmark · {args.format.upper()} · {os.cpu_count()} CPU(s)")
    print(
        f"{'database':<10} {'rows':>8} {'file MB':>8} {'total s':>8} {'rows/s':>9} {'check r/s':>10} {'write r/s':>10} {'peak MB':>8} {'above base':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="quorum-bench-") as tmp:
        workdir = Path(tmp)
        for size in sizes:
            data = workdir / f"items-{size}.{args.format}"
            generate(data, size, args.format)
            for backend in backends:
                env = {
                    **os.environ,
                    "DATABASE_URL": fresh_database(backend, workdir),
                    "QUORUM_VAR_DIR": str(workdir / "var"),
                    "DJANGO_SETTINGS_MODULE": "platform.settings.dev",
                    "LOG_LEVEL": "WARNING",
                    "DEBUG": "0",  # as in production: no per-query log kept in memory
                }
                result = subprocess.run(
                    [sys.executable, __file__, "--worker", "--rows", str(size), "--file", str(data)],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                if result.returncode:
                    print(result.stderr[-2000:])
                    raise SystemExit(f"{backend} run failed")
                r = json.loads(result.stdout.strip().splitlines()[-1])
                print(
                    f"{backend:<10} {size:>8,} {data.stat().st_size / 1e6:>8.1f} {r['seconds']:>8.2f} "
                    f"{size / r['seconds']:>9,.0f} {size / r['check_s']:>10,.0f} {size / r['write_s']:>10,.0f} "
                    f"{r['peak_mb']:>8.0f} {r['peak_mb'] - r['baseline_mb']:>10.0f}"
                )


if __name__ == "__main__":
    main()
