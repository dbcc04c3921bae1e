"""Soak benchmark: annotators over HTTP for a long time while background work runs and
breaks under them, then a check that nothing acknowledged was lost.

    python bench/soak.py                                    # 30 minutes, 100 annotators
    python bench/soak.py --minutes 3 --annotators 30 --drain 240

1. Recreates its own PostgreSQL database (``BENCH_POSTGRES_URL``, default ``quorum_soak`` on
   127.0.0.1:5432) and starts its own redis-server (``--redis-port``; append-only file with
   fsync always, as a broker that must not lose messages is run), one Celery worker and
   gunicorn, each leading its own process group. They run production settings.
2. As a manager would, over the API: creates a project (k=3, 5% gold, consolidation and
   training every 50 answers) and a small project with a budget, adds the annotators, and
   imports ``--items`` rows of ``--data`` (a ``label,text`` CSV; its labels are the truth the
   simulated annotators answer from) through the import API.
3. Logs ``--annotators`` annotators in through the token API (all from one address) and runs
   them for ``--minutes``. Each asks for its next task, reads for a while, answers (right with
   its own accuracy) with a submission id, and retries a submit that failed or timed out with
   the same id, as the workspace does. On purpose, some submit twice at once, replay an
   acknowledged submit, or reuse a submission id on another item (which must be refused).
4. Meanwhile a manager, every ``--manage-every`` seconds, requests a consolidation and a
   training run, promotes the champion (which re-ranks the pool) and imports more rows; and
   at seeded random moments the bench kills the worker (SIGKILL to its process group, a new
   worker a few seconds later) or restarts Redis (SIGKILL or SIGTERM, down for a few seconds).
   A process that exits by itself is restarted, as a supervisor would, and reported.
5. Then faults stop, the annotators finish what they hold, and the worker has ``--drain``
   seconds (default: the longest stale-job timeout of any job kind, plus a margin) to end every
   queued or running job, with no new request to help it.
6. Checks the database (the goal is zero violations; the exit status is 1 otherwise): every
   acknowledged submission is stored exactly once, on its item, with its answer; no item has
   more answers than its overlap allows; no budget is overspent, and the spent counter agrees
   with the rows; no job of any kind is still queued or running.

Logs of the processes are in ``bench/out/soak/``. A run that breaks says why, and stops its
processes on exit or Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._setup import (  # noqa: E402
    celery_worker_start,
    database_recreate,
    django_setup,
    group_kill,
    gunicorn_start,
    percentile,
    port_wait,
    postgres_available,
    prod_env,
)

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/quorum_soak")
DATA = ROOT.parent / "shared" / "data" / "agnews" / "pool.csv"
OUT = ROOT / "bench" / "out" / "soak"
# The workspace's retry policy (static/js/annotate.js): six attempts, 0.4 s doubling.
SUBMIT_ATTEMPTS = 6
RETRY_BASE_SECONDS = 0.4
# Time after the soak for annotators' last submits and their retries.
FINISH_SECONDS = 60.0
# In the drain: time for a job found dead to run again (a training run embeds and trains).
RERUN_SECONDS = 180.0


# --- processes --------------------------------------------------------------------------------


class Services:
    """The processes the soak owns. Each leads its own process group: a kill takes the
    worker's pool children with it, and Ctrl-C in the terminal reaches only the bench, which
    then stops them all (``close``)."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.redis: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self.workers_started = 0
        self.logs = {name: (OUT / f"{name}.log").open("wb") for name in ("redis", "worker", "web")}

    def redis_start(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.args.redis_port), "--bind", "127.0.0.1", "--dir", str(OUT / "redis"),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=self.logs["redis"], stderr=self.logs["redis"], start_new_session=True,
        )  # fmt: skip
        if not port_wait(self.args.redis_port, 20, self.redis):
            raise RuntimeError(f"redis-server did not start on port {self.args.redis_port} (see {OUT}/redis.log)")

    def redis_stop(self, sig: int) -> None:
        if self.redis is not None:
            group_kill(self.redis, sig)

    def worker_start(self) -> None:
        self.workers_started += 1
        self.worker = celery_worker_start(
            concurrency=self.args.concurrency, env=self.env, name=f"soak{self.workers_started}",
            log=self.logs["worker"], session=True,
        )  # fmt: skip

    def worker_kill(self) -> None:
        if self.worker is not None:
            group_kill(self.worker, signal.SIGKILL)

    def web_start(self) -> None:
        self.web = gunicorn_start(
            port=self.args.port, workers=self.args.web_workers, threads=self.args.web_threads, env=self.env,
            log=self.logs["web"], session=True,
        )  # fmt: skip

    def exited(self) -> list[str]:
        """The processes that ended although nothing stopped them."""
        named = (("web", self.web), ("worker", self.worker), ("redis", self.redis))
        return [name for name, process in named if process is not None and process.poll() is not None]

    def restart(self, name: str) -> None:
        {"web": self.web_start, "worker": self.worker_start, "redis": self.redis_start}[name]()

    def close(self) -> None:
        # The worker first: it may still be writing; then the web, then the broker. Each
        # leader is asked to stop (it stops its children), then whatever is left is killed.
        for process in (self.worker, self.web, self.redis):
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.terminate()
                    process.wait(10)
                group_kill(process, signal.SIGKILL)
        for log in self.logs.values():
            log.close()


# --- what happened ----------------------------------------------------------------------------


@dataclass
class Ack:
    """A submission the server acknowledged (2xx)."""

    annotator: str
    project_id: int
    item_id: int
    label: str
    submission_id: str
    annotation_id: int


@dataclass
class Record:
    started: float = field(default_factory=time.monotonic)
    latency: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": []})
    attempts: Counter[str] = field(default_factory=Counter)
    acks: list[Ack] = field(default_factory=list)
    created: int = 0
    repeated: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    retried_then_acked: int = 0
    no_task: Counter[str] = field(default_factory=Counter)
    probes: Counter[str] = field(default_factory=Counter)
    logins_throttled: int = 0
    manager: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)
    stopping: bool = False

    def at(self) -> float:
        return time.monotonic() - self.started


def reason(status: int, payload: Any) -> str:
    """A short name for a refusal: the status and the start of the server's message, its
    numbers (item ids) as N."""
    if isinstance(payload, dict):
        detail = payload.get("detail", payload)
        if isinstance(detail, list):
            detail = detail[0] if detail else ""
        text = detail if isinstance(detail, str) else json.dumps(detail)
    else:
        text = str(payload or "")
    return f"{status} {re.sub(r'[0-9]+', 'N', text)[:90]}"  # one line per kind, not per item


async def http(
    session: Any, method: str, url: str, *, token: str, record: Record, kind: str, **kwargs: Any
) -> tuple[int, Any]:
    """One request; (status, decoded JSON or text). Transport errors propagate."""
    started = time.perf_counter()
    record.attempts[kind] += 1
    async with session.request(method, url, headers={"Authorization": f"Token {token}"}, **kwargs) as response:
        body = await response.read()
        status = response.status
    if kind in record.latency:
        record.latency[kind].append(time.perf_counter() - started)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")[:200]


# --- annotators -------------------------------------------------------------------------------


@dataclass
class Annotator:
    name: str
    token: str
    rng: random.Random
    accuracy: float


async def next_task(session: Any, base: str, project_id: int, who: Annotator, record: Record) -> tuple[Any, str]:
    import aiohttp

    try:
        status, payload = await http(
            session, "POST", f"{base}/api/projects/{project_id}/tasks/next/", token=who.token, record=record,
            kind="next", json={},
        )  # fmt: skip
    except (TimeoutError, aiohttp.ClientError) as error:
        record.errors[f"next {type(error).__name__}"] += 1
        return None, "error"
    if status >= 500:
        record.errors[f"next HTTP {status}"] += 1
        return None, "error"
    if status != 200:
        record.refused[f"next {reason(status, payload)}"] += 1
        return None, "refused"
    return payload["task"], payload.get("reason", "")


async def submit(session: Any, url: str, body: dict[str, Any], who: Annotator, record: Record) -> tuple[int, Any]:
    """Submit as the workspace does: a transport error, a timeout or a 5xx is retried with
    the same body (so the same submission id), up to six attempts. (0, None) if none got
    through."""
    import aiohttp

    for attempt in range(SUBMIT_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
        try:
            status, payload = await http(session, "POST", url, token=who.token, record=record, kind="submit", json=body)
        except (TimeoutError, aiohttp.ClientError) as error:
            record.errors[f"submit {type(error).__name__}"] += 1
            continue
        if status >= 500:
            record.errors[f"submit HTTP {status}"] += 1
            continue
        if attempt and 200 <= status < 300:
            record.retried_then_acked += 1
        return status, payload
    record.gave_up += 1
    return 0, None


def acknowledge(
    record: Record,
    who: Annotator,
    project_id: int,
    task: dict[str, Any],
    body: dict[str, Any],
    status: int,
    payload: Any,
) -> bool:
    """Record a 2xx answer to a submit (the server's promise that the answer is stored)."""
    if not 200 <= status < 300:
        if status:
            record.refused[f"submit {reason(status, payload)}"] += 1
        return False
    record.created += status == 201
    record.repeated += status != 201
    record.acks.append(
        Ack(
            annotator=who.name, project_id=project_id, item_id=task["item_id"], label=body["value"],
            submission_id=body["submission_id"], annotation_id=payload["annotation"]["id"],
        )
    )  # fmt: skip
    return True


async def annotate(
    session: Any, base: str, who: Annotator, projects: dict[str, int], truth: dict[str, str], labels: list[str],
    args: argparse.Namespace, record: Record, deadline: float,
) -> None:  # fmt: skip
    """One simulated annotator: next, read, answer; now and then the deliberate misuses."""
    rng = who.rng
    budget_rest_until = 0.0
    reuse_next: str | None = None  # an acknowledged submission id to try on the next item
    await asyncio.sleep(rng.random() * args.think)  # not all at once
    while time.monotonic() < deadline and not record.stopping:
        on_budget = rng.random() < 0.25 and time.monotonic() >= budget_rest_until
        project_id = projects["budget" if on_budget else "main"]
        task, why = await next_task(session, base, project_id, who, record)
        if task is None:
            record.no_task[why or "none"] += 1
            if on_budget:
                budget_rest_until = time.monotonic() + 30
            await asyncio.sleep(rng.uniform(1, 3))
            continue
        await asyncio.sleep(rng.uniform(0.5, 1.5) * args.think)  # reading
        right = truth.get(task["text"])
        label = right if right and rng.random() < who.accuracy else rng.choice(labels)
        url = f"{base}/api/projects/{project_id}/annotations/"
        if reuse_next is not None:
            # Issue 10, finding 8: an id already used on another item must be refused (409).
            probe = {"assignment_id": task["assignment_id"], "value": label, "submission_id": reuse_next}
            status, payload = await submit(session, url, probe, who, record)
            record.probes[f"reused id on another item (409 expected): {status or 'no answer'}"] += 1
            acknowledge(record, who, project_id, task, probe, status, payload)
            reuse_next = None
        body = {
            "assignment_id": task["assignment_id"],
            "value": label,
            "submission_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "duration_ms": int(1000 * args.think),
        }
        draw = rng.random()
        if draw < args.misuse:
            # A double click: the same submit twice at once.
            answers = await asyncio.gather(*(submit(session, url, body, who, record) for _ in range(2)))
            acked = [acknowledge(record, who, project_id, task, body, *answer) for answer in answers]
            ids = {answer[1]["annotation"]["id"] for answer, ok in zip(answers, acked, strict=True) if ok}
            record.probes[f"double submit: {sum(acked)} acked, {len(ids)} annotation id(s)"] += 1
            continue
        status, payload = await submit(session, url, body, who, record)
        if not acknowledge(record, who, project_id, task, body, status, payload):
            continue
        if draw < 2 * args.misuse:
            # A replay after the answer was acknowledged (a retry whose first reply was lost).
            first = payload["annotation"]["id"]
            status, payload = await submit(session, url, body, who, record)
            same = bool(payload) and 200 <= status < 300 and payload["annotation"]["id"] == first
            record.probes[f"replay: {status or 'no answer'}, {'same' if same else 'other'} annotation"] += 1
            acknowledge(record, who, project_id, task, body, status, payload)
        elif draw < 2.5 * args.misuse:
            reuse_next = body["submission_id"]


async def log_in(session: Any, base: str, username: str, password: str, record: Record) -> str:
    """A token from the token API, waiting out throttling (429) and slowness as a patient
    client would (a login hashes the password: slow on a busy machine)."""
    import aiohttp

    for _ in range(30):
        try:
            async with session.post(
                f"{base}/api/auth/token/", data={"username": username, "password": password},
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:  # fmt: skip
                payload = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as error:
            record.errors[f"login {type(error).__name__}"] += 1
            continue
        if response.status == 200:
            return payload["token"]
        if response.status not in (403, 429):
            raise RuntimeError(f"login of {username} answered {response.status}: {payload}")
        record.logins_throttled += 1
        await asyncio.sleep(float(response.headers.get("Retry-After", 5)))
    raise RuntimeError(f"login of {username} failed 30 times (throttled, locked out or unanswered)")


# --- the manager and the faults ---------------------------------------------------------------


def import_file(rows: list[tuple[str, str]], start: int, count: int, tag: str, rng: random.Random) -> bytes:
    """``count`` rows of the data from ``start`` (wrapping around), ids ``tag-n``, 5% gold."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "gold"])
    for n in range(count):
        text, label = rows[(start + n) % len(rows)]
        writer.writerow([f"{tag}-{n}", text, label if rng.random() < 0.05 else ""])
    return out.getvalue().encode()


async def manage(
    session: Any, base: str, token: str, projects: dict[str, int], rows: list[tuple[str, str]],
    args: argparse.Namespace, record: Record, deadline: float,
) -> None:  # fmt: skip
    """What a manager does now and then: consolidate, train, re-rank (promote the champion),
    import more items. Every request is recorded by kind and status."""
    import aiohttp

    rng = random.Random(f"{args.seed}-manager")
    project = f"{base}/api/projects/{projects['main']}"
    next_row, round_number = args.items, 0
    while True:
        wait = args.manage_every * rng.uniform(0.7, 1.3)
        if time.monotonic() + wait >= deadline:
            return
        await asyncio.sleep(wait)
        round_number += 1
        upload = aiohttp_form(import_file(rows, next_row, args.import_rows, f"r{round_number}", rng), "round.csv")
        next_row += args.import_rows
        steps: list[tuple[str, str, str, dict[str, Any]]] = [
            ("consolidation", "POST", f"{project}/consolidations/", {"json": {}}),
            ("training", "POST", f"{project}/training-runs/", {}),
            ("import", "POST", f"{project}/imports/", {"data": upload}),
        ]
        try:
            status, versions = await http(session, "GET", f"{project}/versions/", token=token, record=record, kind="m")
            champions = [v["number"] for v in versions.get("results", []) if v["status"] == "champion"]
            if champions:
                steps.append(
                    ("ranking", "POST", f"{project}/versions/{champions[0]}/", {"json": {"action": "promote"}})
                )
        except (TimeoutError, aiohttp.ClientError, AttributeError) as error:
            record.manager[f"versions {type(error).__name__}"] += 1
        for kind, method, url, kwargs in steps:
            try:
                status, _ = await http(session, method, url, token=token, record=record, kind="manager", **kwargs)
                record.manager[f"{kind} {status}"] += 1
            except (TimeoutError, aiohttp.ClientError) as error:
                record.manager[f"{kind} {type(error).__name__}"] += 1


async def inject_faults(services: Services, args: argparse.Namespace, record: Record, deadline: float) -> None:
    """Kill the worker or restart Redis at seeded random moments (exponential gaps of mean
    ``--fault-every`` seconds), and restart any process that ended by itself."""
    rng = random.Random(f"{args.seed}-faults")
    next_fault = time.monotonic() + rng.expovariate(1 / args.fault_every)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        for name in services.exited():
            record.faults.append((record.at(), f"{name} exited by itself; restarted"))
            await asyncio.to_thread(services.restart, name)
        if time.monotonic() < next_fault:
            continue
        if rng.random() < 0.5:
            down = rng.uniform(1, 6)
            await asyncio.to_thread(services.worker_kill)
            record.faults.append((record.at(), f"worker SIGKILL; new worker after {down:.1f} s"))
            await asyncio.sleep(down)
            await asyncio.to_thread(services.worker_start)
        else:
            sig, down = rng.choice([signal.SIGKILL, signal.SIGTERM]), rng.uniform(1, 8)
            await asyncio.to_thread(services.redis_stop, sig)
            record.faults.append((record.at(), f"Redis {signal.Signals(sig).name}; back after {down:.1f} s"))
            await asyncio.sleep(down)
            await asyncio.to_thread(services.redis_start)
        next_fault = time.monotonic() + rng.expovariate(1 / args.fault_every)


# --- set-up -----------------------------------------------------------------------------------


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs of a ``label,text`` CSV (../shared/data/README.md)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["label"]) for row in csv.DictReader(handle) if row.get("text")]


def accounts_create(annotators: int, password: str) -> list[str]:
    """A site admin, the manager (allowed to create projects) and the annotators; one password
    hash for all, since hashing 100 passwords would only slow the set-up."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Permission

    User = get_user_model()
    hashed = make_password(password)
    User.objects.create(username="soak-admin", password=hashed, is_staff=True, is_superuser=True)
    manager = User.objects.create(username="soak-manager", password=hashed)
    manager.user_permissions.add(Permission.objects.get(codename="add_project", content_type__app_label="projects"))
    names = [f"soak{n:03d}" for n in range(annotators)]
    User.objects.bulk_create(User(username=name, password=hashed) for name in names)
    return names


async def projects_create(
    session: Any, base: str, token: str, admin: str, names: list[str], rows: list[tuple[str, str]],
    args: argparse.Namespace, record: Record,
) -> dict[str, int]:  # fmt: skip
    """The manager's two projects and first items, and their members, whom the site admin adds
    (a manager may add only people who share a project already), through the API; waits for
    the imports."""
    labels = sorted({label for _, label in rows})
    rng = random.Random(f"{args.seed}-setup")
    settings: dict[str, dict[str, Any]] = {
        "main": {"overlap": 3, "gold_ratio": 0.05, "consolidate_every": 50, "train_every": 50},
        "budget": {"overlap": 2, "gold_ratio": 0.1, "budget_max_annotations": args.budget},
    }
    sizes = {"main": args.items, "budget": args.budget}
    projects: dict[str, int] = {}
    for key, fields in settings.items():
        body = {"name": f"soak {key}", "labels": [{"name": label} for label in labels], **fields}
        status, payload = await http(
            session, "POST", f"{base}/api/projects/", token=token, record=record, kind="m", json=body
        )
        if status != 201:
            raise RuntimeError(f"creating the {key} project answered {status}: {payload}")
        projects[key] = payload["id"]
        url = f"{base}/api/projects/{payload['id']}"
        for name in names:
            status, payload = await http(
                session, "POST", f"{url}/members/", token=admin, record=record, kind="m",
                json={"user": name, "role": "annotator"},
            )  # fmt: skip
            if status != 201:
                raise RuntimeError(f"adding {name} answered {status}: {payload}")
        upload = aiohttp_form(import_file(rows, 0, sizes[key], f"{key}0", rng), f"{key}.csv")
        status, job = await http(session, "POST", f"{url}/imports/", token=token, record=record, kind="m", data=upload)
        if status not in (201, 202):
            raise RuntimeError(f"importing into {key} answered {status}: {job}")
        deadline = time.monotonic() + 600
        while job["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the first import of {key} did not finish in 10 minutes: {job}")
            await asyncio.sleep(1)
            _, job = await http(session, "GET", f"{url}/imports/{job['id']}/", token=token, record=record, kind="m")
        if job["state"] != "succeeded":
            raise RuntimeError(f"the first import of {key} ended {job['state']}: {job}")
    return projects


def aiohttp_form(content: bytes, filename: str) -> Any:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("file", content, filename=filename, content_type="text/csv")
    return form


# --- the run ----------------------------------------------------------------------------------


async def soak(services: Services, args: argparse.Namespace, password: str, names: list[str], record: Record) -> dict:
    import aiohttp

    rows = read_rows(args.data)
    truth = {text: label for text, label in rows}
    labels = sorted(set(truth.values()))
    base = f"http://127.0.0.1:{args.port}"
    connector = aiohttp.TCPConnector(limit=args.annotators + 20)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        manager_token = await log_in(session, base, "soak-manager", password, record)
        admin_token = await log_in(session, base, "soak-admin", password, record)
        projects = await projects_create(session, base, manager_token, admin_token, names, rows, args, record)
        print(f"Set up: projects {projects}, {args.items:,} + {args.budget:,} items imported", flush=True)
        gate = asyncio.Semaphore(4)  # logins hash a password each: a few at a time

        async def one_login(name: str) -> str:
            async with gate:
                return await log_in(session, base, name, password, record)

        tokens = await asyncio.gather(*(one_login(name) for name in names))
        print(f"{len(tokens)} annotators logged in ({record.logins_throttled} throttled attempts)", flush=True)
        annotators = []
        for name, token in zip(names, tokens, strict=True):
            rng = random.Random(f"{args.seed}-{name}")
            annotators.append(Annotator(name, token, rng, accuracy=rng.uniform(0.8, 0.97)))
        record.started = time.monotonic()
        deadline = record.started + 60 * args.minutes
        work = [asyncio.create_task(annotate(session, base, a, projects, truth, labels, args, record, deadline))
                for a in annotators]  # fmt: skip
        background = [
            asyncio.create_task(manage(session, base, manager_token, projects, rows, args, record, deadline)),
            asyncio.create_task(inject_faults(services, args, record, deadline)),
        ]
        await asyncio.gather(*background)
        # The annotators finish the submit they hold (with its retries), then stop.
        done, pending = await asyncio.wait(work, timeout=FINISH_SECONDS)
        record.stopping = True
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # a bug in the bench itself must not pass unnoticed
    return projects


def drain(services: Services, seconds: float) -> tuple[float, dict[str, int]]:
    """Wait (with every process up, no new requests) until no job is queued or running."""
    started = time.monotonic()
    while True:
        for name in services.exited():
            services.restart(name)
        active = {kind.__name__: kind.objects.active().count() for kind in job_kinds()}
        if not any(active.values()) or time.monotonic() - started > seconds:
            return time.monotonic() - started, active
        time.sleep(2)


def job_kinds() -> list[Any]:
    """Every concrete job model (all kinds, including those added later)."""
    from django.apps import apps

    from apps.projects.jobs import Job

    return [model for model in apps.get_models() if issubclass(model, Job)]


def default_drain_seconds() -> float:
    """Time enough for the recovery of a job killed at the last moment: its heartbeat goes
    stale, or its lost message is due to be sent again; a sweep finds it; it runs again."""
    from django.conf import settings

    stale = getattr(settings, "QUORUM_JOB_STALE_SECONDS", None)
    if stale is None:  # the heartbeat timeout per kind, as jobs.py declared it before
        stale = max(kind.stale_after.total_seconds() for kind in job_kinds())
    resend = getattr(settings, "QUORUM_JOB_RESEND_SECONDS", 0)
    sweep = getattr(settings, "QUORUM_JOB_SWEEP_SECONDS", 0)
    return max(stale, resend) + 2 * sweep + RERUN_SECONDS


# --- the checks -------------------------------------------------------------------------------


def violations(record: Record) -> dict[str, list[str]]:
    """Each invariant's name -> its violations (empty when it holds)."""
    from django.db.models import Count, F, Q
    from django.utils import timezone

    from apps.annotation.models import Annotation, AnnotationLabel
    from apps.projects.models import Item, Project

    found: dict[str, list[str]] = defaultdict(list)
    rows: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for pk, username, submission, item_id in Annotation.objects.values_list(
        "pk", "annotator__username", "submission_id", "item_id"
    ):
        rows[(username, str(submission))].append((pk, item_id))
    answers: dict[int, list[str]] = defaultdict(list)
    for annotation_id, name in AnnotationLabel.objects.values_list("annotation_id", "label__name"):
        answers[annotation_id].append(name)
    name = "every acknowledged submission stored exactly once, on its item, with its answer"
    found[name] = []
    for ack in {(a.annotator, a.submission_id, a.item_id): a for a in record.acks}.values():
        stored = rows.get((ack.annotator, ack.submission_id), [])
        what = f"{ack.annotator} submission {ack.submission_id} (item {ack.item_id}, annotation {ack.annotation_id})"
        if len(stored) != 1:
            found[name].append(f"{what}: {len(stored)} rows")
        elif stored[0][1] != ack.item_id:
            found[name].append(f"{what}: stored on item {stored[0][1]}")
        elif stored[0][0] != ack.annotation_id:
            found[name].append(f"{what}: stored as annotation {stored[0][0]}")
        elif answers[stored[0][0]] != [ack.label]:
            found[name].append(f"{what}: answer {answers[stored[0][0]]} instead of {ack.label!r}")
    counted = Item.objects.annotate(rows=Count("annotations"))
    name = "no item has more answers than its overlap allows"
    found[name] = [
        f"item {item.pk}: {item.rows} answers, k={item.project.overlap} + {item.extra_annotations} extra"
        for item in counted.filter(is_gold=False, rows__gt=F("project__overlap") + F("extra_annotations"))
        .select_related("project")
        .order_by("pk")
    ]
    found["item answer counters agree with the rows"] = [
        f"item {item.pk}: annotation_count {item.annotation_count}, {item.rows} rows"
        for item in counted.exclude(annotation_count=F("rows")).order_by("pk")
    ]
    name = "no budget overspent; the spent counter agrees with the paid answers"
    found[name] = []
    for project in Project.objects.annotate(paid=Count("annotations", filter=Q(annotations__is_gold=False))):
        limit = project.budget_max_annotations
        if limit is not None and max(project.paid, project.budget_spent) > limit:
            found[name].append(f"project {project.pk}: {project.paid} paid answers, budget {limit}")
        if project.paid != project.budget_spent:
            found[name].append(f"project {project.pk}: budget_spent {project.budget_spent}, {project.paid} paid rows")
    name = "no job left queued or running"
    now = timezone.now()
    found[name] = [
        f"{kind.__name__} {job.pk}: {job.state}, created {job.created_at:%H:%M:%S}, "
        f"started {f'{job.started_at:%H:%M:%S}' if job.started_at else '-'} (attempt {getattr(job, 'attempts', '?')}), "
        f"stage {job.stage!r}, "
        + (
            f"last heartbeat {(now - job.heartbeat_at).total_seconds():.0f} s ago"
            if job.heartbeat_at
            else "no heartbeat"
        )
        for kind in job_kinds()
        for job in kind.objects.active().order_by("pk")
    ]
    return found


# --- the report -------------------------------------------------------------------------------


def error_line(error: str) -> str:
    """The line of a job's error that names the problem (a traceback's last, else the first)."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return (lines[-1] if lines and lines[0].startswith("Traceback") else lines[0] if lines else "")[:110]


def logged_exceptions(path: Path) -> Counter[str]:
    """The exceptions a process logged, by count: the last line of each traceback chain."""
    found: Counter[str] = Counter()
    pending, in_traceback = None, False
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip() or line[0].isspace():
            continue
        if line.startswith(("During handling", "The above exception")):
            pending = None  # the chain goes on; its last exception counts
        elif line.startswith("Traceback"):
            if pending:
                found[pending] += 1
            pending, in_traceback = None, True
        elif in_traceback:
            pending, in_traceback = line.strip(), False
        elif pending and line[:4].isdigit():  # the next log record (a DETAIL line is not one)
            found[pending] += 1
            pending = None
    if pending:
        found[pending] += 1
    return found


def report(record: Record, args: argparse.Namespace, drained: float, drain_bound: float, found: dict) -> None:
    from django.db.models import Count

    def ms(kind: str, share: float) -> str:
        return f"{1000 * percentile(sorted(record.latency[kind]), share):.0f}"

    attempts = record.attempts["next"] + record.attempts["submit"]
    errors = sum(record.errors.values())
    print(f"\nSoak: {args.minutes:g} min, {args.annotators} annotators, seed {args.seed}, {os.cpu_count()} CPUs; "
          f"gunicorn {args.web_workers}x{args.web_threads}, worker concurrency {args.concurrency}, "
          f"Redis on :{args.redis_port}")  # fmt: skip
    acked = len({(a.annotator, a.submission_id) for a in record.acks})
    print(f"Submissions acknowledged: {acked:,} distinct, {acked / (60 * args.minutes):.1f}/s ({record.created:,} created, {record.repeated:,} "
          f"repeated answers); {record.retried_then_acked:,} acknowledged after a retry; "
          f"{record.gave_up:,} given up after {SUBMIT_ATTEMPTS} attempts")  # fmt: skip
    print(f"Requests: {record.attempts['next']:,} next, {record.attempts['submit']:,} submit; "
          f"errors {errors:,} ({100 * errors / max(attempts, 1):.2f}% of requests)")  # fmt: skip
    for key, count in record.errors.most_common():
        print(f"  error   {count:>6,}  {key}")
    for key, count in record.refused.most_common(12):
        print(f"  refused {count:>6,}  {key}")
    for key, count in record.no_task.most_common():
        print(f"  no task {count:>6,}  {key}")
    print(f"Latency ms (every answered request): next p50 {ms('next', 0.5)} p95 {ms('next', 0.95)} "
          f"p99 {ms('next', 0.99)}; submit p50 {ms('submit', 0.5)} p95 {ms('submit', 0.95)} p99 {ms('submit', 0.99)}")  # fmt: skip
    print("Deliberate misuse: " + ("; ".join(f"{k} x{n}" for k, n in sorted(record.probes.items())) or "none"))
    print(f"Logins throttled: {record.logins_throttled}")
    print("Manager requests: " + ", ".join(f"{k} x{n}" for k, n in sorted(record.manager.items())))
    kills = sum("worker SIGKILL" in f for _, f in record.faults)
    restarts = sum(f.startswith("Redis") for _, f in record.faults)
    print(f"Faults: {kills} worker kills, {restarts} Redis restarts, "
          f"{len(record.faults) - kills - restarts} unplanned exits")  # fmt: skip
    for at, fault in record.faults:
        print(f"  +{at:7.1f} s  {fault}")
    print("Jobs (by final state):")
    for kind in job_kinds():
        states = dict(kind.objects.values_list("state").annotate(n=Count("pk")).order_by())
        started = kind.objects.filter(started_at__isnull=False).count()
        print(f"  {kind.__name__:<18} {sum(states.values()):>4} created, {started:>4} started; "
              + ", ".join(f"{state} {n}" for state, n in sorted(states.items())))  # fmt: skip
        for error, n in kind.objects.exclude(error="").values_list("error").annotate(n=Count("pk")).order_by("-n")[:3]:
            print(f"  {'':<18} {n:>4} x {error_line(error)!r}")
    print(f"Drain: {drained:.0f} s (bound {drain_bound:.0f} s)")
    for name in ("web", "worker"):
        for line, n in logged_exceptions(OUT / f"{name}.log").most_common(8):
            print(f"  {name} log {n:>5} x {line[:150]}")
    total = sum(len(v) for v in found.values())
    print(f"Invariant violations: {total}")
    for name, problems in found.items():
        print(f"  {'OK ' if not problems else 'VIOLATED':<8} {len(problems):>5}  {name}")
        for problem in problems[:5]:
            print(f"             {problem}")


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--annotators", type=int, default=100)
    parser.add_argument("--data", type=Path, default=DATA, help="a label,text CSV (../shared/data/README.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", type=int, default=3000, help="items imported before the soak")
    parser.add_argument("--import-rows", type=int, default=500, help="items the manager imports each round")
    parser.add_argument("--budget", type=int, default=400, help="paid answers of the budgeted project")
    parser.add_argument("--think", type=float, default=4.0, help="mean reading seconds per item")
    parser.add_argument("--misuse", type=float, default=0.02, help="share of answers sent twice at once, and replayed")
    parser.add_argument("--manage-every", type=float, default=60.0, help="mean seconds between manager rounds")
    parser.add_argument("--fault-every", type=float, default=60.0, help="mean seconds between faults")
    parser.add_argument("--drain", type=float, default=None, help="seconds for jobs to end after the soak")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout of one request, seconds")
    parser.add_argument("--port", type=int, default=8079)
    parser.add_argument("--redis-port", type=int, default=6391)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    args = parser.parse_args()
    if not postgres_available():
        raise SystemExit("The soak needs PostgreSQL on 127.0.0.1:5432.")
    if not args.data.is_file():
        raise SystemExit(f"No data file at {args.data} (a label,text CSV)")

    # A fresh start: an old append-only file would replay old tasks, old files would
    # pass for the new projects' (their ids start again at 1).
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "redis").mkdir(parents=True)
    (OUT / "var" / "staticfiles").mkdir(parents=True)  # WhiteNoise warns without it; the API needs no static
    redis_url = f"redis://127.0.0.1:{args.redis_port}"
    env = prod_env(
        PG_URL,
        CELERY_BROKER_URL=f"{redis_url}/0",
        REDIS_URL=f"{redis_url}/1",
        QUORUM_VAR_DIR=str(OUT / "var"),
        # Imports go to the worker (as large files do), so they too meet the faults.
        QUORUM_IMPORT_INLINE_MAX_BYTES="1024",
        # All annotators sign in from this one address: above the per-address rate of the
        # token endpoint (30/minute), which is there for attackers, not for this.
        QUORUM_THROTTLE_LOGIN="1000/minute",
        # A queued job whose message the broker lost is sent again after this long
        # (production: 15 minutes), so that the drain stays a few minutes long.
        QUORUM_JOB_RESEND_SECONDS="120",
    )
    os.environ.update(env)
    database_recreate(PG_URL)
    django_setup("platform.settings.prod")
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    password = uuid.uuid4().hex
    names = accounts_create(args.annotators, password)
    connections.close_all()

    record = Record()
    services = Services(args, env)
    # SIGTERM ends the bench as Ctrl-C does, through the clean-up below.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        services.redis_start()
        services.worker_start()
        services.web_start()
        print(f"Processes up (logs in {OUT}); setting up through the API ...", flush=True)
        asyncio.run(soak(services, args, password, names, record))
        bound = args.drain if args.drain is not None else default_drain_seconds()
        print(f"Soak over; draining background work (at most {bound:.0f} s) ...", flush=True)
        drained, _ = drain(services, bound)
        found = violations(record)
        report(record, args, drained, bound, found)
        return 1 if any(found.values()) else 0
    except KeyboardInterrupt:
        print("\nInterrupted; stopping the processes.", file=sys.stderr)
        return 130
    except Exception as error:
        print(f"\nThe soak broke: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        for name in ("web", "worker", "redis"):
            lines = (OUT / f"{name}.log").read_text(errors="replace").splitlines()[-8:]
            print(f"--- last lines of {name}.log ---", *lines, sep="\n", file=sys.stderr)
        return 2
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
