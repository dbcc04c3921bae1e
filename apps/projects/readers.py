"""Reading item files: CSV, JSON Lines, JSON arrays (Label Studio tasks too) and CoNLL.

Each reader streams the file and yields one :class:`SourceRow` per item, or a
:class:`RowProblem` for a row it cannot read, so memory stays flat however big the file.
A problem that makes the rest of the file unreadable (bad encoding, broken JSON) is
raised as :class:`FileProblem`. Readers only read; whether a row's values fit the
project is decided by the import service.

Hostile files stay bounded while they are read, before any parser builds a value: one
item (a JSON value, a JSON line, a CSV record, a CoNLL sentence) may take at most
``QUORUM_IMPORT_ITEM_MAX_BYTES`` and nest at most ``QUORUM_IMPORT_MAX_DEPTH`` levels.
JSON values are built from ijson's flat events with a stack of our own (ijson's own
builder keeps a path per event, which costs memory in the square of the depth, and
``json.loads`` recurses), so neither the depth nor the size of a value reaches a
parser's recursion or memory.
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
from django.conf import settings

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


class _ItemTooLarge(Exception):
    """The item being read has taken more than ``QUORUM_IMPORT_ITEM_MAX_BYTES``."""


def _size(limit: int) -> str:
    return f"{limit / 1_048_576:g} MB" if limit >= 1_048_576 else f"{limit:,} bytes"


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


class _CsvLines:
    """The lines of a CSV file for the csv module, each read with a bound, refusing a
    record (which quoted line breaks may spread over many lines) past the item limit."""

    def __init__(self, text: io.TextIOWrapper, limit: int):
        self.text, self.limit = text, limit
        self.lines_read = 0
        self.record_start = 1  # the line where the record being read starts
        self.record_chars = 0

    def record_begins(self) -> None:
        self.record_start, self.record_chars = self.lines_read + 1, 0

    def __iter__(self) -> Iterator[str]:
        while line := self.text.readline(self.limit + 1):
            self.lines_read += 1
            self.record_chars += len(line)
            if self.record_chars > self.limit:
                raise _ItemTooLarge
            yield line


def _csv_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    limit = settings.QUORUM_IMPORT_ITEM_MAX_BYTES
    # One cell can be no longer than one record. The limit is process-wide in the csv
    # module: every import sets the same value, so it is set here, where it is needed.
    csv.field_size_limit(limit + 1)
    text = _text(raw)
    header = text.readline(limit + 1)
    text.seek(0)
    # Only the delimiter is guessed (from the header); quoting stays standard CSV, which
    # is what spreadsheets write. Sniffing more from one line guesses wrong.
    delimiter = max([",", ";", "\t"], key=lambda candidate: (header.count(candidate), candidate == ","))
    lines = _CsvLines(text, limit)
    try:
        yield from _csv_records(lines, delimiter, options)
    except _ItemTooLarge:
        raise FileProblem(
            f"The row that starts on line {lines.record_start:,} is longer than {_size(limit)}, the limit for one "
            "item (a quote left open makes the rest of the file one cell). Nothing was imported."
        ) from None


def _csv_records(lines: _CsvLines, delimiter: str, options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    # csv.reader, not DictReader: DictReader reads on past blank lines inside one call,
    # which would count them into the next record's budget.
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        fields = [name.strip() for name in next(reader, [])]
    except csv.Error as error:
        raise FileProblem(f"The CSV header cannot be read: {error}.") from None
    if not fields:
        raise FileProblem("The file is empty: a CSV file needs a header row and at least one data row.")
    duplicates = sorted({name for name in fields if fields.count(name) > 1})
    if duplicates:
        raise FileProblem(f"The header repeats the column(s) {', '.join(duplicates)}; column names must be unique.")
    text_field = _pick_text_field(fields, options)
    if text_field is None:
        raise FileProblem(
            f"There is no {options.text_field!r} column. The header has: {', '.join(fields)}. "
            "Name the text column in the import options."
        )
    line = reader.line_num
    while True:
        start = line + 1
        lines.record_begins()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise FileProblem(f"Line {reader.line_num}: the CSV cannot be read ({error}).") from None
        line = reader.line_num
        if len(cells) > len(fields):
            yield RowProblem(start, f"the row has more cells than the header's {len(fields)} columns")
            continue
        if all(cell == "" for cell in cells):
            continue  # blank lines, and rows of nothing but separators at the end of spreadsheets
        # A short row's missing cells are None, as csv.DictReader gives them.
        record: dict[str, Any] = dict.fromkeys(fields)
        record.update(zip(fields, cells, strict=False))
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


_OPENS: dict[str, type] = {"start_map": dict, "start_array": list}
_CLOSES = ("end_map", "end_array")
_TOO_DEEP = object()  # what _value_build returns for a value past the depth limit


def _too_deep(max_depth: int) -> str:
    return f"the value nests deeper than {max_depth} levels, the limit for one item"


def _value_build(first: tuple[str, Any], events: Iterator[tuple[str, Any]], max_depth: int) -> Any:
    """The JSON value that starts with the event ``first``, from ijson's flat events.

    1. Containers are built on a stack of our own, never by recursion.
    2. A container that would sit deeper than ``max_depth`` levels (the value itself is
       level 1) is not built: the rest of the value is skipped by counting its opening
       and closing events, and ``_TOO_DEEP`` stands for it. So memory grows with what is
       built (bounded by the item's byte budget), never with the depth.
    """
    event, value = first
    if event not in _OPENS:
        return value
    container: Any = _OPENS[event]()
    parents: list[tuple[Any, Any]] = []  # the enclosing containers, each with its pending key
    key: Any = None
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event == "end_map" or event == "end_array":
            if not parents:
                return container
            container, key = parents.pop()
            continue
        opens = event == "start_map" or event == "start_array"
        if opens:
            if len(parents) + 1 >= max_depth:  # the child would sit at level len(parents) + 2
                _value_skip(events, depth=len(parents) + 2)
                return _TOO_DEEP
            value = {} if event == "start_map" else []
        if type(container) is dict:
            container[key] = value
        else:
            container.append(value)
        if opens:
            parents.append((container, key))
            container, key = value, None
    raise ijson.IncompleteJSONError("the file ends inside a value")


def _value_skip(events: Iterator[tuple[str, Any]], *, depth: int) -> None:
    """Consume events until the ``depth`` containers now open are closed, holding nothing."""
    for event, _ in events:
        if event in _OPENS:
            depth += 1
        elif event in _CLOSES:
            depth -= 1
            if depth == 0:
                return


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
_LINE_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_line_value(line: str, max_depth: int) -> Any:
    """One line's value. A line with no more brackets than the depth limit cannot nest
    deeper, and goes to the fast C parser (which would recurse on a deep one); any other
    line is built from events, which bounds its depth."""
    if line.count("[") + line.count("{") <= max_depth:
        return _LINE_DECODER.decode(line)
    events = ijson.basic_parse(io.BytesIO(line.encode()), use_float=True)
    value = _value_build(next(events), events, max_depth)
    for _ in events:  # after the value only whitespace may follow (ijson raises otherwise)
        pass
    return value


def _jsonl_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    limit, max_depth = settings.QUORUM_IMPORT_ITEM_MAX_BYTES, settings.QUORUM_IMPORT_MAX_DEPTH
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    number = 0
    # Each line is read with a bound: a longer one is skipped in chunks, never held whole.
    while line_bytes := raw.readline(limit + 1):
        number += 1
        if len(line_bytes) > limit:
            while not line_bytes.endswith(b"\n") and line_bytes:
                line_bytes = raw.readline(65536)
            yield RowProblem(number, f"the line is longer than {_size(limit)}, the limit for one item")
            continue
        line = decoder.decode(line_bytes)
        if not line.strip():
            continue
        try:
            record = _json_line_value(line, max_depth)
        except json.JSONDecodeError as error:
            yield RowProblem(number, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        except ijson.JSONError as error:
            yield RowProblem(number, f"not valid JSON ({str(error).splitlines()[0]})")
            continue
        except ValueError as error:  # a number too long for Python, NaN
            yield RowProblem(number, f"not valid JSON ({error})")
            continue
        if record is _TOO_DEEP:
            yield RowProblem(number, _too_deep(max_depth))
            continue
        yield _record_row(record, number, options)


class _ItemBudget:
    """The file as ijson reads it, refusing to read on once the item being built has
    taken more than ``limit`` bytes. ijson parses all it has read, and hands over every
    event, before it reads more; so while an item is open, every byte read since it
    started belongs to it, and no token of it (a long string) grows past the limit by
    more than one read."""

    def __init__(self, raw: IO[bytes], limit: int):
        self.raw, self.limit = raw, limit
        self.read_bytes = 0
        self.item_from: int | None = None

    def read(self, size: int = -1) -> bytes:
        if self.item_from is not None and self.read_bytes - self.item_from > self.limit:
            raise _ItemTooLarge
        chunk = self.raw.read(size)
        self.read_bytes += len(chunk)
        return chunk


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
    limit, max_depth = settings.QUORUM_IMPORT_ITEM_MAX_BYTES, settings.QUORUM_IMPORT_MAX_DEPTH
    budget = _ItemBudget(raw, limit)
    # Reads no larger than the limit, so that an item is caught within a read or two past it.
    events = ijson.basic_parse(budget, buf_size=max(1024, min(64 * 1024, limit)), use_float=True)
    position = 0
    try:
        next(events)  # the array opens (checked above)
        for first in events:
            if first[0] == "end_array":
                break
            budget.item_from = budget.read_bytes
            record = _value_build(first, events, max_depth)
            budget.item_from = None
            position += 1
            yield (
                RowProblem(position, _too_deep(max_depth))
                if record is _TOO_DEEP
                else _record_row(record, position, options)
            )
        for _ in events:  # after the array only whitespace may follow (ijson raises otherwise)
            pass
    except ijson.JSONError as error:
        raise FileProblem(f"The JSON breaks after item {position}: {error}.") from None
    except _ItemTooLarge:
        raise FileProblem(
            f"Item {position + 1:,} of the array is larger than {_size(limit)}, the limit for one item. "
            "Nothing was imported."
        ) from None


def _conll_rows(raw: IO[bytes], options: ImportOptions) -> Iterator[SourceRow | RowProblem]:
    """One item per sentence: tokens joined by single spaces, BIO tags turned into spans.

    Tags may be BIO (IOB2) or IOB1; an I- tag that does not continue a span of the same
    type starts a new one. A file whose lines have a single column carries no tags.
    """
    limit = settings.QUORUM_IMPORT_ITEM_MAX_BYTES
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    tokens: list[str] = []
    tags: list[str | None] = []
    start_line, sentence_bytes, number = 0, 0, 0
    while line_bytes := raw.readline(limit + 1):
        number += 1
        sentence_bytes = sentence_bytes + len(line_bytes) if tokens else len(line_bytes)
        if sentence_bytes > limit:
            first = start_line if tokens else number
            raise FileProblem(
                f"The sentence that starts on line {first:,} is longer than {_size(limit)}, the limit for one "
                "item (are the blank lines between sentences missing?). Nothing was imported."
            )
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
