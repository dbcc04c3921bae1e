"""Exporting a project's items with their answers, as a stream of text chunks.

Items are read in chunks of ``CHUNK`` with their gold answers and annotations
prefetched per chunk, so a 100k-item export holds one chunk in memory at a time and
runs a constant number of queries per chunk.

Formats:
- ``jsonl``: one object per item: id, external_id, text, metadata, gold, every annotation
  with its annotator.
- ``csv``: the same, one row per item; metadata and annotations as JSON cells. A text cell
  that a spreadsheet would run as a formula is escaped (``formula_escape``, on by default).
- ``conll``: entity-span projects; one token per line with its BIO tag, a blank line
  between items; items with no answer yet are left out.
- ``hf``: JSON Lines with one fixed schema per task type, which
  ``datasets.load_dataset("json", data_files=...)`` reads as is: ``text`` and ``label``
  (single-label), ``labels`` (multi-label) or ``tokens`` and ``ner_tags`` (spans).
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.text import slugify

from apps.projects.answers import WHITESPACE_SEPARATED, Answer, LabelIndex, bio_tags, tokens_of, value_render
from apps.projects.models import Item, Project, TaskType

from .models import Annotation, ItemConsensus
from .payments import PayRow

CHUNK = 2000


@dataclass(frozen=True)
class ExportFormat:
    name: str
    title: str
    description: str
    content_type: str
    extension: str


EXPORT_FORMATS = {
    fmt.name: fmt
    for fmt in (
        ExportFormat(
            "jsonl",
            "JSON Lines",
            "Every item with its metadata, gold answer and each annotation with its annotator.",
            "application/x-ndjson",
            "jsonl",
        ),
        ExportFormat("csv", "CSV", "One row per item; metadata and annotations as JSON cells.", "text/csv", "csv"),
        ExportFormat(
            "hf",
            "Hugging Face datasets",
            "Text with its training label in one fixed schema, ready for datasets.load_dataset.",
            "application/x-ndjson",
            "hf.jsonl",
        ),
        ExportFormat(
            "conll",
            "CoNLL",
            "Tokens with BIO tags, a blank line between items (items with an answer).",
            "text/plain",
            "conll",
        ),
    )
}


class ExportError(Exception):
    pass


def export_formats_for(project: Project) -> dict[str, ExportFormat]:
    return {name: fmt for name, fmt in EXPORT_FORMATS.items() if name != "conll" or project.is_spans}


def export_filename(project: Project, fmt: str) -> str:
    slug = slugify(project.name)[:50] or "project"
    return f"{slug}-{project.pk}-{date.today().isoformat()}.{EXPORT_FORMATS[fmt].extension}"


def _items(project: Project) -> Iterator[Item]:
    items: QuerySet[Item] = (
        Item.objects.filter(project=project)
        .order_by("id")
        .select_related("consensus")
        .prefetch_related(
            "gold_labels",
            Prefetch(
                "annotations",
                queryset=Annotation.objects.select_related("annotator").prefetch_related("labels").order_by("id"),
            ),
        )
    )
    return items.iterator(chunk_size=CHUNK)


def _record(project: Project, labels: LabelIndex, item: Item) -> dict[str, Any]:
    gold = value_render(project=project, labels=labels, parts=Answer.of_rows(item.gold_labels.all()), text=item.text)
    return {
        "id": item.pk,
        "external_id": item.external_id or None,
        "text": item.text,
        "metadata": item.metadata,
        "is_gold": item.is_gold,
        "gold": gold if item.is_gold else None,
        "state": item.state,
        "consensus": _consensus_record(project, labels, item),
        "annotations": [
            {
                "annotator": annotation.annotator.get_username(),
                "value": value_render(
                    project=project, labels=labels, parts=Answer.of_rows(annotation.labels.all()), text=item.text
                ),
                "created_at": annotation.created_at.isoformat(),
                "duration_ms": annotation.duration_ms,
            }
            for annotation in item.annotations.all()
        ],
    }


def _consensus_record(project: Project, labels: LabelIndex, item: Item) -> dict[str, Any] | None:
    consensus = _consensus(item)
    if consensus is None:
        return None
    return {
        "value": value_render(project=project, labels=labels, parts=consensus.parts, text=item.text),
        "confidence": consensus.confidence,
        "method": consensus.method,
        "reviewed": consensus.is_reviewed,
        "provisional": consensus.is_provisional,
    }


def _consensus(item: Item) -> ItemConsensus | None:
    try:
        return item.consensus
    except ItemConsensus.DoesNotExist:
        return None


def _training_answer(item: Item) -> Answer | None:
    """The answer training data carries: the gold answer, else the consolidated label."""
    if item.is_gold:
        return Answer.of_rows(item.gold_labels.all())
    consensus = _consensus(item)
    return consensus.parts if consensus is not None else None


def export_response(*, project: Project, fmt: str, formula_escape: bool = True) -> StreamingHttpResponse:
    """The export as a streamed download; ExportError names the formats on offer.
    ``formula_escape`` applies to CSV only (see ``csv_formula_escape``)."""
    formats = export_formats_for(project)
    if fmt not in formats:
        raise ExportError(f"Choose one of: {', '.join(formats)}.")
    response = StreamingHttpResponse(
        export_stream(project=project, fmt=fmt, formula_escape=formula_escape),
        content_type=f"{formats[fmt].content_type}; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{export_filename(project, fmt)}"'
    return response


def export_stream(*, project: Project, fmt: str, formula_escape: bool = True) -> Iterator[str]:
    if fmt not in export_formats_for(project):
        raise ExportError(f"Unknown export format {fmt!r} for this project.")
    labels = LabelIndex.for_project(project)
    if fmt == "csv":
        return _csv(project, labels, formula_escape=formula_escape)
    writers = {"jsonl": _jsonl, "hf": _hf, "conll": _conll}
    return writers[fmt](project, labels)


def _jsonl(project: Project, labels: LabelIndex) -> Iterator[str]:
    for item in _items(project):
        yield json.dumps(_record(project, labels, item), ensure_ascii=False) + "\n"


CSV_COLUMNS = [
    "id", "external_id", "text", "metadata", "is_gold", "gold", "state", "consensus", "consensus_confidence",
    "annotation_count", "annotations",
]  # fmt: skip


# OWASP's CSV injection list: a cell starting with one of these is a formula to Excel,
# LibreOffice or Google Sheets (tab and carriage return because some strip them first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain number ("-3", "+1.5", "-2e-3") is read as that number, never run: left as it is.
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def csv_formula_escape(cell: Any) -> Any:
    """The cell as OWASP recommends: text that a spreadsheet would run gets a leading
    single quote, so it shows as text; numbers and plain-number text stay as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _csv(project: Project, labels: LabelIndex, *, formula_escape: bool) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    escape = csv_formula_escape if formula_escape else (lambda cell: cell)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for item in _items(project):
        record = _record(project, labels, item)
        gold = record["gold"]
        row = [
            record["id"],
            record["external_id"] or "",
            record["text"],
            json.dumps(record["metadata"], ensure_ascii=False) if record["metadata"] else "",
            "yes" if record["is_gold"] else "no",
            _cell(gold),
            record["state"],
            _cell(record["consensus"]["value"]) if record["consensus"] else "",
            record["consensus"]["confidence"] if record["consensus"] else "",
            len(record["annotations"]),
            json.dumps(record["annotations"], ensure_ascii=False) if record["annotations"] else "",
        ]
        writer.writerow([escape(cell) for cell in row])
        yield flush()


def _cell(value: Any) -> str:
    """A CSV cell: a label name as it is, lists and spans as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _hf(project: Project, labels: LabelIndex) -> Iterator[str]:
    for item in _items(project):
        answer = _training_answer(item)
        row: dict[str, Any] = {"id": item.pk, "external_id": item.external_id or None, "text": item.text}
        if project.task_type == TaskType.SPANS:
            tokens, tags = conll_tokens(item.text, answer or Answer(), labels)
            row.update(tokens=tokens, ner_tags=tags, has_answer=answer is not None)
        elif project.task_type == TaskType.MULTI_LABEL:
            row["labels"] = value_render(project=project, labels=labels, parts=answer or [], text=item.text)
            row["has_answer"] = answer is not None
        else:
            row["label"] = (
                value_render(project=project, labels=labels, parts=answer, text=item.text) if answer else None
            )
        row["is_gold"] = item.is_gold
        consensus = _consensus(item)
        row["confidence"] = 1.0 if item.is_gold else (consensus.confidence if consensus else None)
        # Metadata keys differ between items, so it travels as one JSON string column.
        row["metadata"] = json.dumps(item.metadata, ensure_ascii=False)
        yield json.dumps(row, ensure_ascii=False) + "\n"


def conll_tokens(text: str, answer: Answer, labels: LabelIndex) -> tuple[list[str], list[str]]:
    """Whitespace-separated tokens of ``text`` with BIO tags named by label."""
    tokens = tokens_of(text, WHITESPACE_SEPARATED)
    tags = [tag if tag == "O" else f"{tag[:2]}{labels.by_id[int(tag[2:])].name}" for tag in bio_tags(tokens, answer)]
    return [text[start:end] for start, end in tokens], tags


def _conll(project: Project, labels: LabelIndex) -> Iterator[str]:
    for item in _items(project):
        answer = _training_answer(item)
        if answer is None:
            continue
        tokens, tags = conll_tokens(item.text, answer, labels)
        yield "".join(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags, strict=True)) + "\n"


# --- payments ----------------------------------------------------------------------------------

PAY_COLUMNS = [
    "annotator", "worker_id", "answers", "accepted", "pending", "gold_answered", "gold_accuracy", "base", "bonus",
    "amount", "currency",
]  # fmt: skip


def payments_csv(*, rows: list[PayRow], formula_escape: bool = True) -> str:
    """The payments page's rows as CSV, one per person. Usernames and external worker ids
    come from outside, so their cells are escaped as the items export escapes text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    escape = csv_formula_escape if formula_escape else (lambda cell: cell)
    writer.writerow(PAY_COLUMNS)
    for row in rows:
        cells = [
            row.annotator.get_username(), row.worker_id, row.answers, row.accepted, row.pending, row.gold_answered,
            "" if row.gold_accuracy is None else f"{row.gold_accuracy:.4f}", row.base, row.bonus, row.amount,
            row.currency,
        ]  # fmt: skip
        writer.writerow([escape(cell) for cell in cells])
    return buffer.getvalue()


def payments_response(
    *, project: Project, rows: list[PayRow], start: date | None, end: date | None, formula_escape: bool = True
) -> HttpResponse:
    """The payments CSV as a download named for the project and the period."""
    response = HttpResponse(
        payments_csv(rows=rows, formula_escape=formula_escape), content_type="text/csv; charset=utf-8"
    )
    slug = slugify(project.name)[:50] or "project"
    period = f"{start.isoformat() if start else 'start'}-to-{(end or date.today()).isoformat()}"
    response["Content-Disposition"] = f'attachment; filename="{slug}-{project.pk}-payments-{period}.csv"'
    return response
