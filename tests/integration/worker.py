"""A real Celery worker for the fault tests, in a process of its own (``python -m
tests.integration.worker``, from the repository root).

It runs the test settings pointed at what the test process uses, given as JSON in
``QUORUM_WORKER_SETTINGS`` (the test database's name, the broker, the folders, short job
timings). ``QUORUM_WORKER_CONCURRENCY`` pool processes run tasks side by side. With
``QUORUM_WORKER_PAUSE=module:function,...`` and ``QUORUM_WORKER_MARKERS=folder``, a call of
one of those functions writes a marker (``function-pid``) in the folder and then waits for
ever, so the test knows the job is half-way (its heartbeat thread still beating) when it
kills the worker.
"""

import importlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform.settings.test")

import django  # noqa: E402  (the settings module must be named first)
from django.conf import settings  # noqa: E402

from platform.celery import app  # noqa: E402  (it reads the settings when it first sends or works)

PATHS = {"MEDIA_ROOT", "VAR_DIR"}


def configure() -> None:
    for name, value in json.loads(os.environ["QUORUM_WORKER_SETTINGS"]).items():
        if name == "DATABASE_NAME":
            settings.DATABASES["default"]["NAME"] = value
        else:
            setattr(settings, name, Path(value) if name in PATHS else value)
    settings.CELERY_TASK_ALWAYS_EAGER = False


def pause_install() -> None:
    markers = Path(os.environ.get("QUORUM_WORKER_MARKERS", "."))
    for target in filter(None, os.environ.get("QUORUM_WORKER_PAUSE", "").split(",")):
        module_name, function_name = target.split(":")
        setattr(importlib.import_module(module_name), function_name, _paused(markers / function_name))


def _paused(marker: Path) -> Any:
    def paused(*args: Any, **kwargs: Any) -> Any:
        Path(f"{marker}-{os.getpid()}").touch()
        threading.Event().wait()  # until the test kills this process

    return paused


def main() -> None:
    configure()
    django.setup()
    pause_install()
    app.worker_main(
        [
            "worker", "--pool=prefork", f"--concurrency={os.environ.get('QUORUM_WORKER_CONCURRENCY', '1')}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel=WARNING", f"--hostname={os.environ.get('QUORUM_WORKER_NAME', 'fault')}@%h",
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
