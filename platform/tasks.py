"""Starting Celery tasks by name, once the transaction commits.

Services start background work by the task's name, never by importing its ``tasks``
module: a task module imports the services it calls, so importing it back would make a
cycle, and a lower app must not import an upper one at all. Web processes therefore never
import task modules (nor the heavy libraries behind them); workers import every app's.
"""

import logging
from functools import partial
from typing import Any

from django.db import transaction
from kombu.exceptions import OperationalError

from .celery import app

logger = logging.getLogger(__name__)


def task_send(name: str, *args: Any) -> bool:
    """Send the task ``name`` to the broker; False when the broker cannot be reached. With
    ``CELERY_TASK_ALWAYS_EAGER`` (the test suite) it runs here instead, as ``.delay()``
    would; an unknown name fails loudly.

    A broker that is down must not fail the request that sends (an annotation's submit
    has committed by then): the error is logged and the caller learns it from the result.
    Work kept as a job row is sent again by the sweep (``apps/projects/jobs.py``)."""
    if not app.conf.task_always_eager:
        try:
            app.send_task(name, args=args)
        except (OperationalError, OSError) as error:
            logger.error("could not send task %s %s: the broker is unreachable (%s)", name, args, error)
            return False
        return True
    if name not in app.tasks:
        app.loader.import_default_modules()  # imports every app's tasks module, as a worker does
    if name not in app.tasks:
        raise LookupError(f"No Celery task is called {name!r}.")
    app.tasks[name].delay(*args)
    return True


def task_send_on_commit(name: str, *args: Any) -> None:
    """Send the task after the current transaction commits (at once outside one), so a
    worker never looks for rows it cannot see yet, and a rolled-back request sends nothing."""
    transaction.on_commit(partial(task_send, name, *args))
