"""Answers: one type from parsing to the training set.

An :class:`Answer` is a sorted tuple of :class:`LabelPart`: one part for a single-label
answer, one per chosen label for multi-label, one per entity span (with character offsets)
for spans. Gold answers and annotations are stored as rows of parts (``GoldLabel``,
``AnnotationLabel``; ``Answer.of_rows`` reads them); consensus labels and pre-labels are
stored as the answer's JSON form in an :class:`AnswerField`. Imports, the workspace, gold
scoring, consolidation, review, exports, suggestions and training sets all pass Answers,
so the rules for what is a valid answer, how two answers compare and how spans become
BIO tags live here and nowhere else.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.fields.json import KeyTransform
from django.db.models.query_utils import DeferredAttribute

from .models import Label, Project, TaskType


class InvalidValue(Exception):
    """An answer that does not fit the project; the message says why, for people."""


@dataclass(frozen=True, order=True)
class LabelPart:
    """A chosen label (``start`` and ``end`` are None), or a labelled character span."""

    start: int | None
    end: int | None
    label_id: int

    @property
    def is_span(self) -> bool:
        return self.start is not None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label_id": self.label_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LabelPart":
        return cls(data.get("start"), data.get("end"), int(data["label_id"]))


def _position(part: LabelPart) -> tuple[int, int, int]:
    return (-1 if part.start is None else part.start, -1 if part.end is None else part.end, part.label_id)


class Answer(tuple[LabelPart, ...]):
    """An answer's parts, sorted by position then label, so equal answers are equal tuples
    (and hash alike) however they were given."""

    def __new__(cls, parts: Iterable[LabelPart] = ()) -> "Answer":
        return super().__new__(cls, sorted(parts, key=_position))

    @classmethod
    def of_rows(cls, rows: Iterable[Any]) -> "Answer":
        """From rows that store parts (``GoldLabel``, ``AnnotationLabel``)."""
        return cls(LabelPart(row.start, row.end, row.label_id) for row in rows)

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> "Answer":
        return cls(LabelPart.from_json(part) for part in data)

    def to_json(self) -> list[dict[str, Any]]:
        return [part.to_json() for part in self]

    @property
    def label_ids(self) -> list[int]:
        return [part.label_id for part in self]

    @property
    def label_id(self) -> int | None:
        """A single-label answer's label (the first part's), None for an empty answer."""
        return self[0].label_id if self else None

    def has(self, label_id: int) -> bool:
        return any(part.label_id == label_id for part in self)

    def only_labels(self, label_ids: Iterable[int]) -> "Answer":
        known = set(label_ids)
        return Answer(part for part in self if part.label_id in known)


class _AnswerAttribute(DeferredAttribute):
    """Turns whatever is assigned (the JSON form, a list of parts) into an Answer, so an
    instance always holds one, however it was made."""

    def __set__(self, instance: models.Model, value: Any) -> None:
        if value is not None and not isinstance(value, Answer):
            value = Answer(value) if all(isinstance(part, LabelPart) for part in value) else Answer.from_json(value)
        instance.__dict__[self.field.attname] = value


class AnswerField(models.JSONField):
    """An answer stored as its JSON form, ``[{"start", "end", "label_id"}]``, read back as
    an :class:`Answer` (attribute, ``values_list`` and ``values`` alike)."""

    descriptor_class = _AnswerAttribute

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        value = super().from_db_value(value, expression, connection)
        if value is None or isinstance(expression, KeyTransform):
            return value
        return Answer.from_json(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, Answer):
            value = value.to_json()
        return super().get_prep_value(value)


class LabelIndex:
    """A project's labels, looked up by id or by name (names match case-insensitively)."""

    def __init__(self, labels: Iterable[Label]):
        self.labels = list(labels)
        self.by_id = {label.pk: label for label in self.labels}
        self.by_name = {label.name.casefold(): label for label in self.labels}

    @classmethod
    def for_project(cls, project: Project) -> "LabelIndex":
        return cls(project.labels.all())

    def named(self, name: Any) -> Label:
        """The label a name (or, from forms and the API, an id) refers to."""
        if isinstance(name, int) and not isinstance(name, bool):
            if name in self.by_id:
                return self.by_id[name]
            raise InvalidValue(f"there is no label with the id {name} in this project")
        if not isinstance(name, str) or not name.strip():
            raise InvalidValue(f"a label must be a name or an id, not {name!r}")
        label = self.by_name.get(name.strip().casefold())
        if label is None:
            known = ", ".join(label.name for label in self.labels) or "none yet"
            raise InvalidValue(f"unknown label {name.strip()!r} (labels: {known})")
        return label


# --- the outside forms: parsing and rendering ----------------------------------------------------


def value_parse(*, project: Project, labels: LabelIndex, raw: Any, text: str) -> Answer:
    """Turn an answer as files and the API send it into an Answer, or raise InvalidValue.

    single_label: ``"Sports"`` or ``["Sports"]``.
    multi_label: ``["Sports", "Business"]`` or ``"Sports|Business"`` (CSV cells).
    spans: ``[{"start": 0, "end": 5, "label": "PER"}, ...]`` with offsets into ``text``
    (``label_id`` instead of ``label`` is accepted too, as the workspace sends it).
    """
    if project.task_type == TaskType.SPANS:
        return spans_parse(project=project, labels=labels, raw=raw, text=text)
    if isinstance(raw, str):
        names: list[Any] = raw.split("|") if project.task_type == TaskType.MULTI_LABEL else [raw]
    elif isinstance(raw, int) and not isinstance(raw, bool):
        names = [raw]  # a label id, as forms send it
    elif isinstance(raw, list):
        names = raw
    else:
        raise InvalidValue(f"expected a label name or a list of names, not {type(raw).__name__}")
    answer = Answer({LabelPart(None, None, labels.named(name).pk) for name in names})
    if not answer:
        raise InvalidValue("the answer has no label")
    if project.task_type == TaskType.SINGLE_LABEL and len(answer) > 1:
        raise InvalidValue("this project takes exactly one label per item")
    return answer


def spans_parse(*, project: Project, labels: LabelIndex, raw: Any, text: str) -> Answer:
    if not isinstance(raw, list):
        raise InvalidValue("entity spans must be a list of {start, end, label} objects")
    parts = []
    for position, span in enumerate(raw, start=1):
        if not isinstance(span, Mapping):
            raise InvalidValue(f"span {position} must be an object with start, end and label")
        start, end = span.get("start"), span.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
            raise InvalidValue(f"span {position} needs whole-number start and end offsets")
        label = labels.named(span["label"] if "label" in span else span.get("label_id"))
        parts.append(LabelPart(start, end, label.pk))
    return spans_validate(project=project, parts=parts, text=text)


def spans_validate(*, project: Project, parts: Iterable[LabelPart], text: str) -> Answer:
    """Check offsets against the text and the project's overlap rule."""
    answer = Answer(parts)
    for part in answer:
        assert part.start is not None and part.end is not None
        if not 0 <= part.start < part.end <= len(text):
            raise InvalidValue(f"span {part.start}-{part.end} lies outside the text (which has {len(text)} characters)")
        if not text[part.start : part.end].strip():
            raise InvalidValue(f"span {part.start}-{part.end} covers only whitespace")
    for before, after in zip(answer, answer[1:], strict=False):
        assert before.end is not None and after.start is not None
        if before == after:
            raise InvalidValue(f"span {before.start}-{before.end} is given twice")
        if after.start < before.end and not project.allow_overlapping_spans:
            raise InvalidValue(
                f"spans {before.start}-{before.end} and {after.start}-{after.end} overlap, "
                "and this project does not allow overlapping spans"
            )
    return answer


def value_render(*, project: Project, labels: LabelIndex, parts: Iterable[LabelPart], text: str) -> Any:
    """The inverse of :func:`value_parse`: label names, or span objects with their text."""
    answer = Answer(parts)
    if project.task_type == TaskType.SPANS:
        return [
            {
                "start": part.start,
                "end": part.end,
                "label": labels.by_id[part.label_id].name,
                "text": text[part.start : part.end],
            }
            for part in answer
        ]
    names = [labels.by_id[label_id].name for label_id in answer.label_ids]
    if project.task_type == TaskType.SINGLE_LABEL:
        return names[0] if names else None
    return names


# --- comparing answers -----------------------------------------------------------------------------


def answer_score(task_type: str, given: Answer, truth: Answer) -> float:
    """How right an answer is, from 0 to 1: equal label (single-label), Jaccard overlap of
    the label sets (multi-label), F1 of exactly matching spans (entity spans)."""
    given_set, truth_set = set(given), set(truth)
    if task_type == TaskType.SINGLE_LABEL:
        return float(given_set == truth_set)
    if task_type == TaskType.MULTI_LABEL:
        union = given_set | truth_set
        return len(given_set & truth_set) / len(union) if union else 1.0
    if not given_set and not truth_set:
        return 1.0
    return 2 * len(given_set & truth_set) / (len(given_set) + len(truth_set))


# --- entity spans as token tags --------------------------------------------------------------------

# Words and punctuation: the tokens consolidation aggregates spans over.
WORDS = re.compile(r"\w+(?:['’.\-&]\w+)*|[^\w\s]")
# Runs of non-space: the tokens of CoNLL and Hugging Face exports.
WHITESPACE_SEPARATED = re.compile(r"\S+")

Token = tuple[int, int]  # character offsets


def tokens_of(text: str, pattern: re.Pattern[str] = WORDS) -> list[Token]:
    return [(match.start(), match.end()) for match in pattern.finditer(text)]


def bio_tags(tokens: Sequence[Token], answer: Answer) -> list[str]:
    """BIO tags (``B-<label id>``, ``I-<label id>``, ``O``) of tokens for an answer's spans.
    A token is inside a span when it overlaps it; where spans overlap, the earlier span wins."""
    tags, previous = [], None
    spans = [part for part in answer if part.is_span]
    for start, end in tokens:
        span = next((p for p in spans if p.start < end and start < p.end), None)  # type: ignore[operator]
        tags.append("O" if span is None else f"{'I' if span == previous else 'B'}-{span.label_id}")
        previous = span
    return tags


def bio_decode(tokens: Sequence[Token], tags: Sequence[str]) -> Answer:
    """Spans from tags. An I- tag continues the open span of its label; otherwise (after O,
    or after another label) it starts a span, as a B- tag does."""
    spans: list[LabelPart] = []
    open_label: int | None = None
    for (start, end), tag in zip(tokens, tags, strict=True):
        if tag == "O":
            open_label = None
            continue
        prefix, label_text = tag.split("-", 1)
        label = int(label_text)
        if prefix == "I" and open_label == label:
            spans[-1] = LabelPart(spans[-1].start, end, label)
        else:
            spans.append(LabelPart(start, end, label))
        open_label = label
    return Answer(spans)
