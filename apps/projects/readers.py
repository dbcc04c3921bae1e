"""Reading item files: CSV, JSON Lines, JSON arrays (Label Studio tasks too) and CoNLL.

Each reader streams the file and yields one :class:`SourceRow` per item, or a
:class:`RowProblem` for a row it cannot read, so memory stays flat however big the file.
A problem that makes the rest of the file unreadable (bad encoding, broken JSON) is
raised as :class:`FileProblem`. Readers only read; whether a row's values fit the
project is decided by the import service.
"""

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ijson

from .models import ImportFormat

# Header names people use for the text column when they don't name it themselves.
TEXT_FIELD_FALLBACKS = ("text", "content", "sentence", "body")


@dataclass(frozen=True)
class ImportOptions:
    text_field: str = "text"
    id_field: str = "id"
    gold_field: str = "gold"
    # CoNLL only: are the tags in the last column gold answers, or to be ignored?
    conll_tags_are_gold: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImportOptions":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data and data[name] not in ("", None)}
        return cls(**known)


@dataclass
class SourceRow:
    row: int  # line number (CSV, JSONL, CoNLL: where the row starts) or position (JSON arrays)
    text: Any
    external_id: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    gold: Any = None  # as written in the file; None when the row has no gold answer
    # CoNLL gives spans already resolved to offsets: (start, end, label name).
    gold_spans: list[tuple[int, int, str]] | None = None


@dataclass
class RowProblem:
    row: int
    message: str


class FileProblem(Exception):
    """The file as a whole cannot be read; the message says why."""


def format_for_filename(name: str) -> str | None:
    suffix = Path(name).suffix.lower()
    return {
        ".csv": ImportFormat.CSV,
        ".tsv": ImportFormat.CSV,
        ".jsonl": ImportFormat.JSONL,
        ".ndjson": ImportFormat.JSONL,
        ".json": ImportFormat.JSON,
        ".conll": ImportFormat.CONLL,
        ".bio": ImportFormat.CONLL,
        ".iob": ImportFormat.CONLL,
    }.get(suffix)


def rows_read(raw: IO[bytes], fmt: str, options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    """Rows of a file opened in binary mode; ``raw.tell()`` tells how far reading got."""
    readers = {
        ImportFormat.CSV: _csv_rows,
        ImportFormat.JSONL: _jsonl_rows,
        ImportFormat.JSON: _json_rows,
        ImportFormat.CONLL: _conll_rows,
    }
    try:
        yield from readers[ImportFormat(fmt)](raw, options)
    except UnicodeDecodeError:
        raise FileProblem(
            f"The file is not UTF-8 text (an undecodable byte lies before byte {raw.tell():,}). "
            "Save it as UTF-8 and upload it again."
        ) from None


def _text(raw: IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark that spreadsheet programs put first.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


def _split_fields(record: dict[str, Any], options: ImportOptions, row: int, text_field: str) -> SourceRow:
    metadata = {
        key: value
        for key, value in record.items()
        if key not in (text_field, options.id_field, options.gold_field) and key is not None
    }
    # A nested "metadata"/"meta" object is merged rather than stored one level down.
    for nested in ("metadata", "meta"):
        if isinstance(metadata.get(nested), dict):
            metadata.update(metadata.pop(nested))
    gold = record.get(options.gold_field)
    return SourceRow(
        row=row,
        text=record.get(text_field),
        external_id=record.get(options.id_field),
        metadata=metadata,
        gold=None if gold in ("", None) else gold,
    )


def _pick_text_field(fields: list[str], options: ImportOptions) -> str | None:
    if options.text_field in fields:
        return options.text_field
    if options.text_field != ImportOptions.text_field:
        return None  # the user named a column; don't guess another
    return next((name for name in TEXT_FIELD_FALLBACKS if name in fields), None)


def _csv_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    text = _text(raw)
    header = text.readline()
    text.seek(0)
    # Only the delimiter is guessed (from the header); quoting stays standard CSV, which
    # is what spreadsheets write. Sniffing more from one line guesses wrong.
    delimiter = max([",", ";", "\t"], key=lambda candidate: (header.count(candidate), candidate == ","))
    reader = csv.DictReader(text, delimiter=delimiter)
    try:
        fields = reader.fieldnames or []
    except csv.Error as error:
        raise FileProblem(f"The CSV header cannot be read: {error}.") from None
    if not fields:
        raise FileProblem("The file is empty: a CSV file needs a header row and at least one data row.")
    fields = [name.strip() for name in fields]
    reader.fieldnames = fields
    duplicates = sorted({name for name in fields if fields.count(name) > 1})
    if duplicates:
        raise FileProblem(f"The header repeats the column(s) {', '.join(duplicates)}; column names must be unique.")
    text_field = _pick_text_field(fields, options)
    if text_field is None:
        raise FileProblem(
            f"There is no {options.text_field!r} column. The header has: {', '.join(fields)}. "
            "Name the text column in the import options."
        )
    line = 1
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise FileProblem(f"Line {reader.line_num}: the CSV cannot be read ({error}).") from None
        line = reader.line_num
        if None in record:
            yield RowProblem(start, f"the row has more cells than the header's {len(fields)} columns")
            continue
        if all(value in ("", None) for value in record.values()):
            continue  # blank lines at the end of spreadsheets
        yield _split_fields(record, options, start, text_field)


def _record_row(record: Any, row: int, options: ImportOptions) -> SourceRow | RowProblem:
    if not isinstance(record, dict):
        return RowProblem(row, f"expected a JSON object, found {type(record).__name__}")
    # Label Studio tasks keep their fields under "data".
    if isinstance(record.get("data"), dict):
        data = dict(record["data"])
        if options.id_field not in data and "id" in record and options.id_field == "id":
            data["id"] = record["id"]
        record = data
    text_field = _pick_text_field(list(record), options)
    if text_field is None:
        return RowProblem(row, f"there is no {options.text_field!r} field")
    return _split_fields(record, options, row, text_field)


def _jsonl_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    for number, line_bytes in enumerate(raw, start=1):
        line = decoder.decode(line_bytes)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield RowProblem(number, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        yield _record_row(record, number, options)


def _json_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    head = raw.read(4096)
    first = head.decode("utf-8-sig", errors="replace").lstrip()[:1]
    raw.seek(0)
    if first != "[":
        raise FileProblem(
            "A JSON import must be an array of objects, like "
            '[{"text": "..."}] or Label Studio tasks [{"data": {"text": "..."}}]. '
            "For one object per line, use the JSON Lines format (.jsonl)."
        )
    if head.startswith(codecs.BOM_UTF8):
        raw.read(len(codecs.BOM_UTF8))
    position = 0
    try:
        for position, record in enumerate(ijson.items(raw, "item", use_float=True), start=1):
            yield _record_row(record, position, options)
    except ijson.JSONError as error:
        raise FileProblem(f"The JSON breaks after item {position}: {error}.") from None


def _conll_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    """One item per sentence: tokens joined by single spaces, BIO tags turned into spans.

    Tags may be BIO (IOB2) or IOB1; an I- tag that does not continue a span of the same
    type starts a new one. A file whose lines have a single column carries no tags.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    tokens: list[str] = []
    tags: list[str | None] = []
    start_line = 0
    for number, line_bytes in enumerate(raw, start=1):
        line = decoder.decode(line_bytes).strip()
        if line.startswith("-DOCSTART-"):
            continue
        if not line:
            if tokens:
                yield _conll_sentence(tokens, tags, start_line, options)
                tokens, tags = [], []
            continue
        if not tokens:
            start_line = number
        columns = line.split()
        tokens.append(columns[0])
        tags.append(columns[-1] if len(columns) > 1 else None)
    if tokens:
        yield _conll_sentence(tokens, tags, start_line, options)


def _conll_sentence(
    tokens: list[str], tags: list[str | None], row: int, options: ImportOptions
) -> SourceRow | RowProblem:
    text = " ".join(tokens)
    if not options.conll_tags_are_gold or all(tag is None for tag in tags):
        return SourceRow(row=row, text=text)
    spans: list[tuple[int, int, str]] = []
    offset = 0
    current: list[Any] | None = None  # [start, end, type]
    for index, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
        start, end = offset, offset + len(token)
        offset = end + 1
        if tag is None or tag == "O":
            current = None
            continue
        prefix, _, entity = tag.partition("-")
        if prefix not in ("B", "I") or not entity:
            return RowProblem(row + index, f"tag {tag!r} is not O, B-<type> or I-<type>")
        if prefix == "I" and current is not None and current[2] == entity:
            current[1] = end
            continue
        current = [start, end, entity]
        spans.append(current)  # type: ignore[arg-type]
    return SourceRow(row=row, text=text, gold_spans=[(s, e, t) for s, e, t in spans])
