"""Create a project from a CSV or JSON Lines file in one line, e.g.

    python manage.py project_from_file ../shared/data/agnews/pool.csv \
        --name "AG News pool" --labels-from label --manager manager

The file goes through the same import service as an upload (checked whole, then
written whole). Columns other than text, id and gold are kept as item metadata, so a
column such as ``label`` stays available to benchmarks as the hidden truth.
"""

import csv
import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.imports import items_import_start
from apps.projects.jobs import JobState
from apps.projects.models import TaskType
from apps.projects.readers import format_for_filename
from apps.projects.services import project_create


def column_values(path: Path, fmt: str, column: str) -> list[str]:
    """Distinct values of a column, in first-seen order, read as a stream."""
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows: Any = csv.DictReader(handle) if fmt == "csv" else (json.loads(line) for line in handle if line.strip())
        for row in rows:
            value = row.get(column)
            for part in value if isinstance(value, list) else [value]:
                if part not in (None, ""):
                    seen.setdefault(str(part), None)
    return list(seen)


class Command(BaseCommand):
    help = "Create a project and import a CSV or JSON Lines file into it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--name", help="Project name (default: the file name).")
        parser.add_argument("--task", choices=TaskType.values, default=TaskType.SINGLE_LABEL)
        parser.add_argument("--labels", help="Comma-separated label names.")
        parser.add_argument("--labels-from", metavar="COLUMN", help="Create labels from a column's distinct values.")
        parser.add_argument("--text-field", default="text")
        parser.add_argument("--id-field", default="id")
        parser.add_argument("--gold-field", default="gold", help="Column holding gold answers (if any).")
        parser.add_argument("--manager", required=True, help="Username of the project's manager.")
        parser.add_argument("--overlap", type=int, default=3)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        fmt = format_for_filename(path.name)
        if fmt not in ("csv", "jsonl"):
            raise CommandError("Give a .csv or .jsonl file.")
        user = get_user_model().objects.filter(username=options["manager"]).first()
        if user is None:
            raise CommandError(f"No user named {options['manager']!r}.")
        if options["labels"]:
            names = [name.strip() for name in options["labels"].split(",") if name.strip()]
        elif options["labels_from"]:
            names = column_values(path, fmt, options["labels_from"])
        else:
            names = []
        project = project_create(
            user=user,
            name=options["name"] or path.stem,
            task_type=options["task"],
            overlap=options["overlap"],
            labels=[{"name": name} for name in names],
        )
        with path.open("rb") as handle:
            upload = File(handle, name=path.name)
            upload.size = path.stat().st_size
            job = items_import_start(
                project=project,
                user=user,
                upload=upload,  # type: ignore[arg-type]
                fmt=fmt,
                options={
                    "text_field": options["text_field"],
                    "id_field": options["id_field"],
                    "gold_field": options["gold_field"],
                },
                inline=True,
            )
        if job.state != JobState.SUCCEEDED:
            project.delete()  # created by this command for this file: leave nothing behind
            problems = "\n".join(f"  row {e['row']}: {e['message']}" for e in job.errors[:20])
            raise CommandError(f"Import failed: {job.message}\n{problems}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Project {project.pk} “{project.name}”: {job.rows_imported:,} items, {len(names)} labels."
            )
        )
