"""Items list and payments benchmark: a project of 100k items, three answers each, through
the real pages.

A fresh database (SQLite always; PostgreSQL when it answers) gets a project with N items,
three annotators' answers to each (the third disagrees on one item in four), a consensus
for each item, a suggestion for every other item and 5% gold items. Then the reviewer's
items page is fetched with each filter on answers, the API list with all of them, and the
manager's payments page; it prints the median time of three requests and the queries.

    python bench/items_list.py                 # 100k items
    python bench/items_list.py --items 20000 --backends sqlite
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._setup import database_recreate, postgres_available  # noqa: E402

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/quorum_bench")
BATCH = 5000


def populate(n: int) -> dict:
    """The project, in bulk. Returns what the requests need."""
    from django.contrib.auth import get_user_model

    from apps.annotation.models import Annotation, AnnotationLabel, ItemConsensus, Suggestion
    from apps.projects.models import GoldLabel, Item, ItemState, Membership, Project, Role
    from apps.projects.services import project_create

    users = get_user_model()
    manager = users.objects.create_user("manager", password="pw")
    reviewer = users.objects.create_user("reviewer", password="pw")
    annotators = [users.objects.create_user(f"annotator{k}", password="pw") for k in range(3)]
    project = project_create(user=manager, name="bench", labels=[{"name": t} for t in ("World", "Sports", "Business", "Science")])  # fmt: skip
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    Membership.objects.bulk_create(Membership(project=project, user=user, role=Role.ANNOTATOR) for user in annotators)
    labels = list(project.labels.all())
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        items = Item.objects.bulk_create(
            Item(
                project=project, text=f"Story {start + i}: the derby ended level after extra time.",
                is_gold=(start + i) % 20 == 0, state=ItemState.COMPLETE, annotation_count=3,
            )
            for i in range(count)
        )  # fmt: skip
        GoldLabel.objects.bulk_create(GoldLabel(item=item, label=labels[item.pk % 4]) for item in items if item.is_gold)
        annotations = Annotation.objects.bulk_create(
            Annotation(project=project, item=item, annotator=user, submission_id=uuid.uuid4(), is_gold=item.is_gold)
            for item in items
            for user in annotators
        )
        AnnotationLabel.objects.bulk_create(
            AnnotationLabel(
                annotation=a, label=labels[(a.item_id + (1 if a.annotator_id == annotators[2].pk and a.item_id % 4 == 0 else 0)) % 4]
            )
            for a in annotations
        )  # fmt: skip
        ItemConsensus.objects.bulk_create(
            ItemConsensus(
                project=project, item=item, parts=[{"label_id": labels[item.pk % 4].pk}],
                confidence=0.6 if item.pk % 4 == 0 else 0.97, method="dawid_skene", is_provisional=False,
            )
            for item in items
        )  # fmt: skip
        Suggestion.objects.bulk_create(
            Suggestion(item=item, parts=[{"label_id": labels[item.pk % 4].pk}], confidence=0.7, source="model v1")
            for item in items
            if item.pk % 2
        )
    paid = Annotation.objects.filter(project=project, is_gold=False).count()
    Project.objects.filter(pk=project.pk).update(budget_spent=paid, price_per_annotation="0.05")
    return {"project": project.pk, "label": labels[0].pk}  # the label of the items in disagreement


def timed(client, url: str, params: dict | None = None) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries, status = [], 0, 0
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = client.get(url, params or {})
            times.append(time.perf_counter() - start)
        queries, status = len(captured.captured_queries), response.status_code
    return statistics.median(times) * 1000, queries, status


def worker(args: argparse.Namespace) -> None:
    from bench._setup import django_setup

    django_setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.test import APIClient

    User = get_user_model()  # noqa: N806
    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    made = populate(args.items)
    built = time.perf_counter() - start
    project, label = made["project"], made["label"]
    reviewer, manager = Client(), Client()
    reviewer.force_login(User.objects.get(username="reviewer"))
    manager.force_login(User.objects.get(username="manager"))
    api = APIClient()
    api.force_authenticate(User.objects.get(username="reviewer"))
    items = f"/projects/{project}/items/"
    every = {
        "label": label,
        "confidence_below": "0.9",
        "disagreement": "yes",
        "suggestion": "no",
        "annotator": "annotator2",
    }
    cases = [
        ("items page", reviewer, items, {}),
        ("  by consensus label", reviewer, items, {"label": label}),
        ("  confidence below 90%", reviewer, items, {"confidence_below": "0.9"}),
        ("  answers differ", reviewer, items, {"disagreement": "yes"}),
        ("  with a suggestion", reviewer, items, {"suggestion": "yes"}),
        ("  without a suggestion", reviewer, items, {"suggestion": "no"}),
        ("  answered by annotator2", reviewer, items, {"annotator": "annotator2"}),
        ("  every filter", reviewer, items, every),
        ("  every filter, page 20", reviewer, items, {**every, "page": "20"}),
        ("API list, every filter", api, f"/api/projects/{project}/items/", {**every, "disagreement": "true"}),
        ("payments page, all time", manager, f"/projects/{project}/payments/", {}),
    ]
    results = []
    for name, client, url, params in cases:
        ms, queries, status = timed(client, url, params)
        results.append({"name": name, "ms": ms, "queries": queries, "status": status})
    print(json.dumps({"items": args.items, "build_s": built, "results": results}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    backends = [b for b in args.backends.split(",") if b != "postgres" or postgres_available()]
    print(f"Quorum items list benchmark · {args.items:,} items, 3 answers each · {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="quorum-bench-") as tmp:
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            else:
                database_recreate(PG_URL)
                url = PG_URL
            env = {
                **os.environ, "DATABASE_URL": url, "QUORUM_VAR_DIR": str(Path(tmp) / "var"),
                "DJANGO_SETTINGS_MODULE": "platform.settings.dev", "LOG_LEVEL": "WARNING", "DEBUG": "0",
            }  # fmt: skip
            result = subprocess.run(
                [sys.executable, __file__, "--worker", "--items", str(args.items)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode:
                print(result.stderr[-3000:])
                raise SystemExit(f"{backend} run failed")
            report = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"\n{backend} (data built in {report['build_s']:.0f} s)")
            print(f"{'request':<28} {'ms':>8} {'queries':>8} {'status':>7}")
            for row in report["results"]:
                print(f"{row['name']:<28} {row['ms']:>8.0f} {row['queries']:>8} {row['status']:>7}")


if __name__ == "__main__":
    main()
