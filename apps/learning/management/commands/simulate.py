"""``manage.py simulate``: the active-learning benchmark's campaigns (bench/active_learning.py)
from the project's command line, with the same options, e.g.

    python manage.py simulate --pool pool.csv --test test.csv --budget 600 --strategies margin,mix
"""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

OPTIONS = (
    "pool",
    "test",
    "budget",
    "batch",
    "start",
    "seeds",
    "noise",
    "strategies",
    "cache",
    "plot",
    "cores",
    "round_items",
)


class Command(BaseCommand):
    help = "Simulate active-learning campaigns on a labelled CSV pool and test set (see bench/active_learning.py)."

    def add_arguments(self, parser: CommandParser) -> None:
        for option in OPTIONS:
            parser.add_argument(f"--{option.replace('_', '-')}", dest=option)

    def handle(self, *args: Any, **options: Any) -> None:
        from bench.active_learning import main

        argv = ["simulate"]
        for option in OPTIONS:
            if options.get(option) is not None:
                argv += [f"--{option.replace('_', '-')}", str(options[option])]
        sys.argv = argv
        main()
