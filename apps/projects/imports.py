"""Importing items: a file is checked whole, then written whole, or not at all.

1. ``items_import_start`` stores the upload as an :class:`ImportJob`, under a generated
   name (the user's file name is only shown, never part of a path). Small files are
   imported inside the request, so the answer carries the result, within a time budget
   past which the job goes back to the queue for a worker; larger ones go to a Celery
   worker once the job row is committed.
2. ``import_job_run`` reads the file once to check every row (text present and not too
   long, external ids unique in the file and the project, gold answers valid for the
   ontology) and collects every problem with its row number.
3. Only if no row has a problem does it read the file again and bulk-insert the items
   in one transaction, so a failure half-way leaves nothing behind. Reading twice keeps
   memory flat in the file size.
4. However the job ends, its stored upload is deleted (``ImportJob.on_end``).
"""

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import events
from .answers import Answer, InvalidValue, LabelIndex, LabelPart, spans_validate, value_parse
from .jobs import JobState, job_finish, job_held, job_request, job_send
from .models import GoldLabel, ImportFormat, ImportJob, Item, Project, TaskType
from .readers import FileProblem, ImportOptions, RowProblem, SourceRow, format_for_filename, rows_read
from .selectors import import_progress_key

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
PROGRESS_EVERY = 2000


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:,.1f} MB"


def items_import_start(
    *,
    project: Project,
    user: User,
    upload: UploadedFile,
    fmt: str = "",
    options: dict[str, Any] | None = None,
    inline: bool | None = None,
) -> ImportJob:
    """Accept an uploaded file for import and start it: inline (in this process) when
    small or asked for, otherwise in a worker once the job row is committed."""
    limit = settings.QUORUM_IMPORT_MAX_BYTES
    if upload.size is None or upload.size == 0:
        raise ValidationError({"file": "The file is empty."})
    if upload.size > limit:
        raise ValidationError(
            {"file": f"The file is {_megabytes(upload.size)}; the limit is {_megabytes(limit)}. Split it into parts."}
        )
    fmt = fmt or format_for_filename(upload.name or "") or ""
    if fmt not in ImportFormat.values:
        raise ValidationError(
            {"format": "Choose the file format (CSV, JSON Lines, JSON or CoNLL); it cannot be told from the file name."}
        )
    if fmt == ImportFormat.CONLL and project.task_type != TaskType.SPANS:
        raise ValidationError({"format": "CoNLL files hold entity spans; this project classifies whole texts."})
    try:
        parsed_options = ImportOptions.from_dict(options or {})
    except TypeError as error:
        raise ValidationError({"options": f"Unknown import option: {error}"}) from None
    job, _ = job_request(
        model=ImportJob,
        project=project,
        created_by=user,
        # A generated name: the user's (kept as original_name, for display) never reaches the filesystem.
        file=File(upload, name=f"{uuid.uuid4().hex}.{fmt}"),
        original_name=(upload.name or "upload")[:255],
        size_bytes=upload.size,
        format=fmt,
        options=parsed_options.__dict__,
    )
    if inline is None:
        inline = upload.size <= settings.QUORUM_IMPORT_INLINE_MAX_BYTES
    if inline:
        # A request does a bounded amount of work: past the deadline the job goes to a worker.
        deadline = time.monotonic() + settings.QUORUM_IMPORT_INLINE_MAX_SECONDS
        return import_job_run(job_id=job.pk, deadline=deadline) or job
    job_send(job)
    return job


class _InlineTimeUp(Exception):
    """An import run inside a request has used its time budget."""


def _time_check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _InlineTimeUp


def import_job_run(*, job_id: int, deadline: float | None = None) -> ImportJob | None:
    """Run an import job to its end. Safe to call twice (a redelivered task): a finished
    job is left alone, and the final write checks the job under a row lock, so two runs
    at once cannot both insert. With a ``deadline`` (``time.monotonic()``, for a run
    inside a request), a run still going at the deadline writes nothing and puts the
    job back in the queue for a worker."""
    with job_held(model=ImportJob, job_id=job_id) as job:
        if job is None:  # finished, or running in a live worker
            found = ImportJob.objects.filter(pk=job_id).first()
            if found is not None and found.is_finished:
                found.on_end()  # it ended elsewhere with its upload still stored
            return found
        return _import_held(job, deadline)


def _import_held(job: ImportJob, deadline: float | None) -> ImportJob:
    """The import itself, while this caller holds the job (and its heartbeat beats)."""
    job_id = job.pk
    options = ImportOptions.from_dict(job.options)
    try:
        check = _rows_check(job, options, deadline)
        if check.problems_total:
            return job_finish(
                job,
                state=JobState.FAILED,
                error=_failure_summary(check),
                rows_total=check.rows,
                errors=check.problems,
                error_count=check.problems_total,
            )
        if check.rows == 0:
            return job_finish(job, state=JobState.FAILED, error="The file has no items to import.")
        job = _rows_write(job, options, check.rows, deadline)
        _statistics_refresh(check.rows)
        if job.state == JobState.SUCCEEDED:
            events.items_imported.send(sender=None, project=job.project, job=job)
        return job
    except FileProblem as problem:
        return job_finish(job, state=JobState.FAILED, error=str(problem))
    except _InlineTimeUp:
        # Nothing was written (the write is one transaction): a worker starts the job over,
        # with all its attempts (the request's try was no worker dying).
        ImportJob.objects.filter(pk=job.pk, state=JobState.RUNNING, attempts=job.attempts).update(
            state=JobState.QUEUED, stage="Continuing in the background", attempts=0
        )
        job_send(job)
        job.refresh_from_db()
        return job
    except Exception:
        logger.exception("import job %s crashed", job_id)
        job_finish(
            job,
            state=JobState.FAILED,
            error="The import stopped on an internal error; nothing was imported. The error is in the server log.",
        )
        raise
    finally:
        cache.delete(import_progress_key(job_id))
        if job.is_finished:
            job.on_end()  # job_finish ran it; a job another delivery finished is cleaned here too


def items_add(*, project: Project, rows: Sequence[Mapping[str, Any]]) -> list[Item]:
    """Add a few items sent as objects (``{"text", "id", "metadata"}``, the stream API's
    shape) under the import's row rules: all of them, or, when any is wrong or repeats an
    external id, none, with a ValidationError naming each wrong one."""
    labels = LabelIndex.for_project(project)
    problems, valid, seen = [], [], set()
    taken = set(
        Item.objects.filter(project=project, external_id__in=[str(row.get("id") or "").strip() for row in rows])
        .exclude(external_id="")
        .values_list("external_id", flat=True)
    )
    for position, raw in enumerate(rows, start=1):
        source = SourceRow(
            row=position, text=raw.get("text"), external_id=raw.get("id"), metadata=raw.get("metadata") or {}
        )
        try:
            row = _row_validate(source, project, labels)
        except InvalidValue as problem:
            problems.append(f"item {position}: {problem}")
            continue
        if row.external_id and (row.external_id in taken or row.external_id in seen):
            problems.append(f"item {position}: an item with the id {row.external_id!r} exists already")
        seen.add(row.external_id)
        valid.append(row)
    if problems:
        raise ValidationError({"items": problems})
    try:
        with transaction.atomic():
            return Item.objects.bulk_create(
                Item(project=project, text=row.text, external_id=row.external_id, metadata=row.metadata)
                for row in valid
            )
    except IntegrityError:  # the same id arrived from another request meanwhile
        raise ValidationError({"items": "An item with one of these ids exists already."}) from None


@dataclass
class _Check:
    rows: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    problems_total: int = 0

    def add(self, row: int, message: str) -> None:
        self.problems_total += 1
        if len(self.problems) < settings.QUORUM_IMPORT_MAX_REPORTED_ERRORS:
            self.problems.append({"row": row, "message": message})


def _failure_summary(check: _Check) -> str:
    rows = "row" if check.problems_total == 1 else "rows"
    return (
        f"Nothing was imported: {check.problems_total:,} {rows} of {check.rows:,} need fixing. "
        "Correct the file and upload it again."
    )


@dataclass
class _ValidRow:
    text: str
    external_id: str
    metadata: dict[str, Any]
    metadata_json: str
    gold: Answer | None


def _external_id(source: SourceRow) -> str:
    """The row's external id as stored ("" when it has none); InvalidValue if unusable."""
    external_id = source.external_id
    if external_id is None:
        return ""
    if isinstance(external_id, bool) or not isinstance(external_id, str | int):
        raise InvalidValue(f"the id must be a string or a number, not {type(external_id).__name__}")
    external_id = str(external_id).strip()
    if len(external_id) > 255:
        raise InvalidValue("the id is longer than 255 characters")
    return external_id


def _row_validate(source: SourceRow, project: Project, labels: LabelIndex) -> _ValidRow:
    """Check one row against the project; raise InvalidValue with a message for people."""
    text = source.text
    if text is None:
        raise InvalidValue("the text is missing")
    if not isinstance(text, str):
        raise InvalidValue(f"the text must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InvalidValue("the text is empty")
    if len(text) > settings.QUORUM_TEXT_MAX_CHARS:
        raise InvalidValue(f"the text has {len(text):,} characters; the limit is {settings.QUORUM_TEXT_MAX_CHARS:,}")
    if "\x00" in text:
        raise InvalidValue("the text contains a NUL character")
    external_id = _external_id(source)
    max_keys, max_bytes = settings.QUORUM_IMPORT_METADATA_MAX_KEYS, settings.QUORUM_IMPORT_METADATA_MAX_BYTES
    if len(source.metadata) > max_keys:
        raise InvalidValue(f"the metadata has {len(source.metadata):,} fields; the limit is {max_keys:,}")
    try:
        metadata_json = json.dumps(source.metadata, ensure_ascii=False)
    except (TypeError, ValueError):
        raise InvalidValue("the metadata cannot be stored as JSON") from None
    metadata_bytes = len(metadata_json.encode())
    if metadata_bytes > max_bytes:
        raise InvalidValue(f"the metadata takes {metadata_bytes:,} bytes as JSON; the limit is {max_bytes:,}")
    if "\\u0000" in metadata_json:
        raise InvalidValue("the metadata contains a NUL character")
    gold: Answer | None = None
    if source.gold_spans is not None:
        parts = [LabelPart(start, end, labels.named(name).pk) for start, end, name in source.gold_spans]
        gold = spans_validate(project=project, parts=parts, text=text)
    elif source.gold is not None:
        raw = source.gold
        if project.task_type == TaskType.SPANS and isinstance(raw, str):
            try:
                raw = json.loads(raw)  # a CSV cell holding the spans as JSON
            except json.JSONDecodeError:
                raise InvalidValue("gold spans must be a JSON list of {start, end, label}") from None
        gold = value_parse(project=project, labels=labels, raw=raw, text=text)
    return _ValidRow(
        text=text, external_id=external_id, metadata=source.metadata, metadata_json=metadata_json, gold=gold
    )


def _valid_rows(
    job: ImportJob, options: ImportOptions, raw: IO[bytes], labels: LabelIndex
) -> Iterator[tuple[int, str, _ValidRow | str]]:
    """Every row of the file: its row number, its external id (when readable, so that
    duplicates are found even on rows with other problems), and the valid row or a
    problem message."""
    for source in rows_read(raw, job.format, options):
        if isinstance(source, RowProblem):
            yield source.row, "", source.message
            continue
        try:
            external_id = _external_id(source)
        except InvalidValue:
            external_id = ""
        try:
            yield source.row, external_id, _row_validate(source, job.project, labels)
        except InvalidValue as problem:
            yield source.row, external_id, str(problem)


def _progress(job: ImportJob, phase: str, fraction: float, rows: int) -> None:
    cache.set(import_progress_key(job.pk), {"phase": phase, "fraction": fraction, "rows": rows}, timeout=6 * 3600)


def _rows_check(job: ImportJob, options: ImportOptions, deadline: float | None) -> _Check:
    check = _Check()
    labels = LabelIndex.for_project(job.project)
    taken = set(Item.objects.filter(project=job.project).exclude(external_id="").values_list("external_id", flat=True))
    first_seen: dict[str, int] = {}
    size = max(job.size_bytes, 1)
    with job.file.open("rb") as raw:
        for row, external_id, outcome in _valid_rows(job, options, raw, labels):
            _time_check(deadline)
            check.rows += 1
            if isinstance(outcome, str):
                check.add(row, outcome)
            if not external_id:
                pass
            elif external_id in first_seen:
                check.add(row, f"the id {external_id!r} is used already on row {first_seen[external_id]}")
            elif external_id in taken:
                check.add(row, f"the project already has an item with the id {external_id!r}")
            else:
                first_seen[external_id] = row
            if check.rows % PROGRESS_EVERY == 0:
                _progress(job, "reading", min(raw.tell() / size, 1.0), check.rows)
    return check


def _rows_write(job: ImportJob, options: ImportOptions, rows_total: int, deadline: float | None) -> ImportJob:
    labels = LabelIndex.for_project(job.project)
    with transaction.atomic(), job.file.open("rb") as raw:
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_finished or locked.attempts != job.attempts:
            return locked  # finished, or taken over, meanwhile: the holder writes, once
        written = 0
        batch: list[_ValidRow] = []
        for _, _, outcome in _valid_rows(job, options, raw, labels):
            if isinstance(outcome, str):  # the file changed under us; never write half
                raise FileProblem("The file changed while it was being imported; upload it again.")
            _time_check(deadline)
            batch.append(outcome)
            if len(batch) >= BATCH_SIZE:
                written += _batch_insert(job, batch)
                batch = []
                _progress(job, "writing", written / rows_total, written)
        written += _batch_insert(job, batch)
        return job_finish(
            job,
            state=JobState.SUCCEEDED,
            stage=f"Imported {written:,} item{'s' if written != 1 else ''}.",
            rows_total=rows_total,
            rows_imported=written,
        )


def _batch_insert(job: ImportJob, rows: list[_ValidRow]) -> int:
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        ids = _copy_items(job, rows)
    else:
        items = Item.objects.bulk_create(
            Item(
                project_id=job.project_id,
                external_id=row.external_id,
                text=row.text,
                metadata=row.metadata,
                is_gold=row.gold is not None,
                import_job_id=job.pk,
            )
            for row in rows
        )
        ids = [item.pk for item in items]
    gold = [
        GoldLabel(item_id=item_id, label_id=part.label_id, start=part.start, end=part.end)
        for item_id, row in zip(ids, rows, strict=True)
        for part in row.gold or ()
    ]
    GoldLabel.objects.bulk_create(gold, batch_size=BATCH_SIZE)
    return len(rows)


def _copy_items(job: ImportJob, rows: list[_ValidRow]) -> list[int]:
    """Write items with PostgreSQL's COPY, several times faster than INSERT, and return
    their ids, taken from the table's sequence first so gold rows can point at them.
    Columns the file does not set get their model defaults, so COPY follows the model."""
    table = Item._meta.db_table
    now = timezone.now()
    fields = Item._meta.concrete_fields
    given = {
        "id",
        "project_id",
        "external_id",
        "text",
        "metadata",
        "is_gold",
        "random_key",
        "import_job_id",
        "created_at",
    }
    defaults = {field.attname: field.get_default() for field in fields if field.attname not in given}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        columns = ", ".join(str(field.column) for field in fields)
        with cursor.connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for pk, row in zip(ids, rows, strict=True):
                values = {
                    **defaults,
                    "id": pk,
                    "project_id": job.project_id,
                    "external_id": row.external_id,
                    "text": row.text,
                    "metadata": row.metadata_json,
                    "is_gold": row.gold is not None,
                    "random_key": random.random(),  # nosec B311 # an order to hand items out in, not a secret
                    "import_job_id": job.pk,
                    "created_at": now,
                }
                copy.write_row([values[field.attname] for field in fields])
    return ids


def _statistics_refresh(rows: int) -> None:
    """After a bulk load PostgreSQL's planner still believes the table is small until
    autovacuum catches up, and picks slow plans for the items page; refresh it now."""
    if connection.vendor == "postgresql" and rows >= 1000:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Item._meta.db_table}")
