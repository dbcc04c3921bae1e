"""PostgreSQL restarted under load: gunicorn keeps running against a PostgreSQL of the
test's own (initdb in a temporary folder, on a free port; the shared server on 5432 is never
touched), which is stopped and started again while annotators submit. While it is down,
every request gets a clean 503 with a message (no traceback page, no hung request); once it
is back, requests succeed again without restarting gunicorn; every acknowledged answer is
in the database exactly once.

The web process runs the test settings (DEBUG off, as in production) with the production
connection settings: persistent connections (CONN_MAX_AGE 60) checked before reuse
(CONN_HEALTH_CHECKS), which is what lets it recover by itself."""

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
CLIENTS = 3

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not PG_BIN, reason="needs PostgreSQL's server programs (/usr/lib/postgresql/*/bin)"),
]

SETUP = """
import json
from django.test import Client
from rest_framework.authtoken.models import Token
from apps.projects.models import Item, Project
from tests.helpers import make_cast
cast = make_cast()
Project.objects.filter(pk=cast.project.pk).update(
    gold_ratio=0.0, overlap=1, consolidate_every=100000, train_every=100000
)
Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n} about the cup final.") for n in range(500))
browser = Client()
browser.force_login(cast.annotator)
print(json.dumps({
    "project": cast.project.pk,
    "tokens": [Token.objects.create(user=user).key for user in (cast.annotator, cast.other_annotator, cast.manager)],
    "session": browser.cookies["sessionid"].value,
}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres() -> dict:
    """initdb refuses to run as root: run the server programs as the postgres user then."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class OwnPostgres:
    def __init__(self, folder: Path) -> None:
        self.bin = Path(PG_BIN[-1])
        self.data = folder / "data"
        self.port = _free_port()
        self.log = folder / "postgres.log"
        self.socket_dir = folder

    def run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]], check=True, capture_output=True, timeout=120, **_as_postgres()
        )

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/quorum"


def _request(url: str, *, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    """(status, content type, text) of one request; status 0 when no HTTP answer came."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={**(headers or {})})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, "", repr(error)


@pytest.fixture
def world():
    folder = Path(tempfile.mkdtemp(prefix="quorum-pg-restart-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    postgres = OwnPostgres(folder)
    server = None
    try:
        postgres.init()
        postgres.start()
        postgres.run("createdb", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "quorum")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "platform.settings.test",
            "DATABASE_URL": postgres.url,
            "DATABASE_CONN_MAX_AGE": "60",
        }
        for key in ("CELERY_BROKER_URL", "REDIS_URL"):
            env.pop(key, None)
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
        )
        made = subprocess.run(
            [*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120
        )
        facts = json.loads(made.stdout.strip().splitlines()[-1])
        port = _free_port()
        log = (folder / "gunicorn.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "platform.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--worker-class", "gthread", "--timeout", "60"],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while _request(f"http://127.0.0.1:{port}/healthz")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, (folder / "gunicorn.log").read_text()
            time.sleep(0.2)
        yield {**facts, "base": f"http://127.0.0.1:{port}", "postgres": postgres, "env": env, "server": server}
    finally:
        if server is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_requests_fail_cleanly_while_postgres_restarts_and_recover_without_restarting_django(world):
    base, project = world["base"], world["project"]
    acknowledged: list[int] = []
    statuses: Counter = Counter()
    unclean: list[tuple[int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def annotate(token: str) -> None:
        """Lease, answer, repeat; a 503 is retried with the same submission id."""
        auth = {"Authorization": f"Token {token}", "Accept": "application/json"}
        pending: dict | None = None
        while not stop.is_set():
            if pending is None:
                status, kind, text = _request(
                    f"{base}/api/projects/{project}/tasks/next/", method="POST", body={}, headers=auth
                )
                task = json.loads(text).get("task") if status == 200 else None
                if task:
                    pending = {
                        "assignment_id": task["assignment_id"],
                        "value": "World",
                        "submission_id": str(uuid.uuid4()),
                    }
            else:
                status, kind, text = _request(
                    f"{base}/api/projects/{project}/annotations/", method="POST", body=pending, headers=auth
                )
                if status in (200, 201):
                    with lock:
                        acknowledged.append(json.loads(text)["annotation"]["id"])
                    pending = None
            with lock:
                statuses[status] += 1
                clean = status in (200, 201) or (
                    status == 503 and "application/json" in kind and "not answering" in text
                )
                if not clean:
                    unclean.append((status, text[:300]))
            if status == 503:
                time.sleep(0.1)

    threads = [threading.Thread(target=annotate, args=(token,)) for token in world["tokens"]]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: len(acknowledged) >= 10, "answers before the restart")
        world["postgres"].stop()
        down_at = len(acknowledged)
        # While it is down: the API and the pages answer 503 with a message (a request that
        # hung would time out and count as no answer).
        api = _request(f"{base}/api/projects/{project}/", headers={"Authorization": f"Token {world['tokens'][0]}"})
        page = _request(f"{base}/projects/{project}/annotate/", headers={"Cookie": f"sessionid={world['session']}"})
        assert api[0] == 503 and "not answering" in json.loads(api[2])["detail"]
        assert page[0] == 503 and "text/html" in page[1] and "Try again" in page[2]
        assert "Traceback" not in page[2] and "psycopg" not in page[2] and "OperationalError" not in page[2]
        _wait_for(lambda: statuses[503] >= 3 * CLIENTS, "the annotators to meet the outage")
        world["postgres"].start()
        # Back: the same gunicorn process answers again, and work goes on.
        _wait_for(lambda: len(acknowledged) >= down_at + 10, "answers after the restart")
        page = _request(f"{base}/projects/{project}/annotate/", headers={"Cookie": f"sessionid={world['session']}"})
        assert page[0] == 200 and "form" in page[2]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    print(f"answers acknowledged: {len(acknowledged)}; responses by status: {dict(statuses)}")
    assert world["server"].poll() is None  # never restarted
    assert not unclean, unclean[:5]
    assert statuses[503] >= 3 * CLIENTS
    _assert_every_answer_once(world, acknowledged)


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _assert_every_answer_once(world, acknowledged: list[int]) -> None:
    check = (
        "import json\n"
        "from apps.annotation.models import Annotation\n"
        "from apps.projects.models import Item\n"
        "ids = list(Annotation.objects.values_list('id', flat=True))\n"
        "counts = list(Item.objects.filter(annotation_count__gt=1).values_list('id', flat=True))\n"
        "print(json.dumps({'ids': ids, 'over': counts}))\n"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", check],
        cwd=ROOT, env=world["env"], check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    stored = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(acknowledged) == len(set(acknowledged))
    assert set(acknowledged) <= set(stored["ids"])
    assert not stored["over"]  # overlap 1: no item answered twice
