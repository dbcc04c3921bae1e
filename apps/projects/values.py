"""Label answers: parse what people and files send into label parts, and render them back.

An answer is a list of :class:`LabelPart`: one part for a single-label answer, one per
chosen label for multi-label, one per entity span (with character offsets) for spans.
Gold answers, annotations and exports all use this one representation, so the rules
for what is a valid answer live here and nowhere else.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .models import Label, Project, TaskType


class InvalidValue(Exception):
    """An answer that does not fit the project; the message says why, for people."""


@dataclass(frozen=True, order=True)
class LabelPart:
    start: int | None
    end: int | None
    label_id: int


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


def value_parse(*, project: Project, labels: LabelIndex, raw: Any, text: str) -> list[LabelPart]:
    """Turn an answer as files and the API send it into label parts, or raise InvalidValue.

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
    parts = sorted({LabelPart(None, None, labels.named(name).pk) for name in names})
    if not parts:
        raise InvalidValue("the answer has no label")
    if project.task_type == TaskType.SINGLE_LABEL and len(parts) > 1:
        raise InvalidValue("this project takes exactly one label per item")
    return parts


def spans_parse(*, project: Project, labels: LabelIndex, raw: Any, text: str) -> list[LabelPart]:
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


def spans_validate(*, project: Project, parts: list[LabelPart], text: str) -> list[LabelPart]:
    """Check offsets against the text and the project's overlap rule; return sorted parts."""
    parts = sorted(parts)
    for part in parts:
        assert part.start is not None and part.end is not None
        if not 0 <= part.start < part.end <= len(text):
            raise InvalidValue(f"span {part.start}-{part.end} lies outside the text (which has {len(text)} characters)")
        if not text[part.start : part.end].strip():
            raise InvalidValue(f"span {part.start}-{part.end} covers only whitespace")
    for before, after in zip(parts, parts[1:], strict=False):
        assert before.end is not None and after.start is not None
        if before == after:
            raise InvalidValue(f"span {before.start}-{before.end} is given twice")
        if after.start < before.end and not project.allow_overlapping_spans:
            raise InvalidValue(
                f"spans {before.start}-{before.end} and {after.start}-{after.end} overlap, "
                "and this project does not allow overlapping spans"
            )
    return parts


def value_render(*, project: Project, labels: LabelIndex, parts: Iterable[LabelPart], text: str) -> Any:
    """The inverse of :func:`value_parse`: label names, or span objects with their text."""
    if project.task_type == TaskType.SPANS:
        return [
            {
                "start": part.start,
                "end": part.end,
                "label": labels.by_id[part.label_id].name,
                "text": text[part.start : part.end],
            }
            for part in sorted(parts)
        ]
    names = [labels.by_id[part.label_id].name for part in parts]
    if project.task_type == TaskType.SINGLE_LABEL:
        return names[0] if names else None
    return names
