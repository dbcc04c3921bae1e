"""Quorum's Celery app. Configuration comes from Django settings (``CELERY_*``).

Every worker sweeps background jobs (the task ``projects.jobs_sweep``: stale jobs resume or
fail, messages the broker lost are sent again) when it starts and then every
``QUORUM_JOB_SWEEP_SECONDS``, from a thread of its main process and without the broker, so
recovery needs neither Celery beat nor a broker that redelivers (the filesystem broker of
``make demo`` never does). Celery beat, where one runs, sends the same task on the same
schedule (``CELERY_BEAT_SCHEDULE``); sweeps running at once are harmless.
"""

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform.settings.dev")

app = Celery("quorum")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

SWEEP_TASK = "projects.jobs_sweep"
_sweeping = threading.Event()  # set: stop the sweeper thread


def jobs_sweep_now() -> None:
    """Run the sweep in this process (by the task's name: platform imports no app)."""
    try:
        app.tasks[SWEEP_TASK]()
    except Exception:  # noqa: BLE001  (a failed sweep is logged; the next one tries again)
        logger.exception("the job sweep failed")
    finally:
        connections.close_all()  # this thread's connections only; it holds none between sweeps


def _sweeper() -> None:
    while True:
        jobs_sweep_now()
        if _sweeping.wait(settings.QUORUM_JOB_SWEEP_SECONDS):
            return


@worker_ready.connect
def _sweeper_start(**_: Any) -> None:
    _sweeping.clear()
    threading.Thread(target=_sweeper, name="jobs-sweeper", daemon=True).start()


@worker_shutdown.connect
def _sweeper_stop(**_: Any) -> None:
    _sweeping.set()
