"""Serve Quorum on one machine with no external service: the development web server
plus a Celery worker on the filesystem broker, stopped together with Ctrl-C."""

import signal
import subprocess  # nosec B404 # starts the demo's own worker, below
import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from .demo_load import ANNOTATORS, DEMO_PASSWORD, demo_allowed_or_refuse


class Command(BaseCommand):
    help = "Run the web server and a Celery worker together (for make demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000")
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, **options: Any) -> None:
        demo_allowed_or_refuse()  # it prints the demo's password and runs the development server
        worker = subprocess.Popen(  # nosec B603 # a fixed command line, no shell, no user input
            [
                sys.executable, "-m", "celery", "-A", "platform.celery:app", "worker",
                "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel=INFO",
            ]
        )  # fmt: skip
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(
            self.style.SUCCESS(f"\nQuorum is starting at {url}\n")
            + f"  manager:    manager / {DEMO_PASSWORD}\n"
            + f"  reviewer:   reviewer / {DEMO_PASSWORD}\n"
            + f"  annotators: {', '.join(ANNOTATORS)} / {DEMO_PASSWORD}\n"
            + f"  site admin: admin / {DEMO_PASSWORD}  ({url}admin/)\n"
            + "Press Ctrl-C to stop the server and the worker.\n"
        )
        try:
            call_command("runserver", f"{options['host']}:{options['port']}", use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
