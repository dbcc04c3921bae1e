"""Starting Celery tasks by name, once the transaction commits.

Services start background work by the task's name, never by importing its ``tasks``
module: a task module imports the services it calls, so importing it back would make a
cycle, and a lower app must not import an upper one at all. Web processes therefore never
import task modules (nor the heavy libraries behind them); workers import every app's.
"""

from functools import partial
from typing import Any

from django.db import transaction

from .celery import app


def task_send(name: str, *args: Any) -> None:
    """Send the task ``name`` to the broker. With ``CELERY_TASK_ALWAYS_EAGER`` (the test
    suite) it runs here instead, as ``.delay()`` would; an unknown name fails loudly."""
    if not app.conf.task_always_eager:
        app.send_task(name, args=args)
        return
    if name not in app.tasks:
        app.loader.import_default_modules()  # imports every app's tasks module, as a worker does
    if name not in app.tasks:
        raise LookupError(f"No Celery task is called {name!r}.")
    app.tasks[name].delay(*args)


def task_send_on_commit(name: str, *args: Any) -> None:
    """Send the task after the current transaction commits (at once outside one), so a
    worker never looks for rows it cannot see yet, and a rolled-back request sends nothing."""
    transaction.on_commit(partial(task_send, name, *args))
