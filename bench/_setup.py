"""What the benchmark scripts share: Django start-up for a script run as
``python bench/<name>.py`` from anywhere, a fresh PostgreSQL database, and the server
processes (gunicorn, a Celery worker) started the way production starts them."""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent


def django_setup(settings: str = "platform.settings.dev") -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # Quorum's settings package shadows the standard library's `platform` (see
    # platform/__init__.py); make sure the package is what `platform` names here.
    if "platform" in sys.modules and not hasattr(sys.modules["platform"], "__path__"):
        del sys.modules["platform"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)
    import django

    django.setup()


def postgres_available(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        socket.create_connection((host, port), 2).close()
        return True
    except OSError:
        return False


def database_recreate(url: str) -> None:
    """Drop (disconnecting its sessions) and create the database that ``url`` names."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def port_wait(port: int, seconds: float, process: subprocess.Popen | None = None) -> bool:
    """Wait until something accepts connections on 127.0.0.1:``port`` (False if ``process`` died first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def prod_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production web process on this machine (plain HTTP, local hosts)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "platform.settings.prod",
        "SECRET_KEY": secrets.token_urlsafe(50),  # production refuses a made-up one
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def gunicorn_start(
    *, port: int, workers: int, threads: int, env: dict[str, str], log: IO[bytes] | None = None, session: bool = False
) -> subprocess.Popen:
    """gunicorn (gthread) on 127.0.0.1:``port``, returned once it accepts connections. With
    ``session`` it leads its own process group, for ``group_kill``."""
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "platform.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
            "--backlog", "2048", "--log-level", "warning", "--reuse-port",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=session,
    )  # fmt: skip
    if port_wait(port, 30, server):
        return server
    server.kill()
    raise SystemExit("gunicorn did not start")


def celery_worker_start(
    *, concurrency: int, env: dict[str, str], name: str, log: IO[bytes] | None = None, session: bool = False
) -> subprocess.Popen:
    """A Celery worker of Quorum's app (not waited for; see ``celery_worker_wait``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "platform.celery:app", "worker", "--concurrency", str(concurrency),
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=session,
    )  # fmt: skip


def celery_worker_wait(process: subprocess.Popen, seconds: float = 60) -> None:
    """Return once a worker answers a ping over the broker of this process's settings."""
    from platform.celery import app

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if app.control.ping(timeout=1):
            return
    process.kill()
    raise RuntimeError(f"the Celery worker did not answer within {seconds:.0f} s")


def group_kill(process: subprocess.Popen, sig: int = signal.SIGKILL, wait: float = 30) -> None:
    """Send ``sig`` to the process group ``process`` leads (a worker's pool children die with
    it) and reap it; SIGKILL if it outlives ``wait`` seconds."""
    with contextlib.suppress(ProcessLookupError):  # also when the leader is gone but its children are not
        os.killpg(process.pid, sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def percentile(ordered: list[float], share: float) -> float:
    """The value below which ``share`` of the sorted values lie (nan when there are none)."""
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")
