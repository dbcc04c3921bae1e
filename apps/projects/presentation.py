"""Projects' data shaped for templates and charts: answers ready to show, the items-by-state
chart. Views of every app use these, so no view imports another view."""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from .answers import Answer, LabelIndex
from .models import Item, ItemState, JoinLink, Label, Project
from .rendering import markdown_to_html
from .selectors import LinkState, join_link_state

STATE_COLOURS = {ItemState.OPEN: "#38bdf8", ItemState.IN_PROGRESS: "#f59e0b", ItemState.COMPLETE: "#22c55e"}


def state_chart(counts: dict[str, int]) -> dict[str, Any]:
    """A doughnut of items per state (Chart.js configuration)."""
    return {
        "data": {
            "labels": [state.label for state in ItemState],
            "datasets": [
                {
                    "data": [counts[state] for state in ItemState.values],
                    "backgroundColor": [STATE_COLOURS[state] for state in ItemState],
                    "borderWidth": 0,
                }
            ],
        },
        "options": {"cutout": "62%"},
    }


def answer_display(project: Project, labels: LabelIndex, parts: Answer, text: str) -> dict[str, Any]:
    """An answer ready for a template: the chosen labels, or the text cut into spans."""
    if project.is_spans:
        return {
            "segments": text_segments(text, parts, labels),
            "spans": [{"label": labels.by_id[p.label_id], "text": text[p.start : p.end]} for p in parts],
        }
    return {"labels": sorted((labels.by_id[p.label_id] for p in parts), key=lambda label: label.order)}


def text_segments(text: str, parts: Answer, labels: LabelIndex) -> list[dict[str, Any]]:
    """The text cut into plain and labelled pieces, for highlighting spans in templates.
    Overlapping spans are shown by their first span only."""
    segments: list[dict[str, Any]] = []
    position = 0
    for part in parts:
        assert part.start is not None and part.end is not None
        if part.start < position:
            continue
        if part.start > position:
            segments.append({"text": text[position : part.start], "label": None})
        segments.append({"text": text[part.start : part.end], "label": labels.by_id[part.label_id]})
        position = part.end
    if position < len(text):
        segments.append({"text": text[position:], "label": None})
    return segments


# Prolific fills these placeholders in a study URL with the participant's ids.
PROLIFIC_PLACEHOLDERS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


@dataclass
class JoinLinkRow:
    link: JoinLink
    url: str
    # What to paste into the crowd platform: the URL with Prolific's placeholders for a
    # Prolific link; the plain URL otherwise (the platform adds the worker id itself).
    study_url: str
    state: str
    state_text: str

    @property
    def is_active(self) -> bool:
        return self.state == LinkState.ACTIVE


STATE_TEXT = {
    LinkState.ACTIVE: "open",
    LinkState.REVOKED: "revoked",
    LinkState.EXPIRED: "expired",
    LinkState.USED_UP: "used up",
}


def join_link_rows(links: Iterable[JoinLink], join_url: Callable[[JoinLink], str]) -> list[JoinLinkRow]:
    now = timezone.now()
    rows = []
    for link in links:
        url = join_url(link)
        study_url = f"{url}?{PROLIFIC_PLACEHOLDERS}" if link.worker_id_param == "PROLIFIC_PID" else url
        state = join_link_state(link, now)
        rows.append(JoinLinkRow(link, url, study_url, state, STATE_TEXT[state]))
    return rows


def item_rows(items: list[Item], answers: list[dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the items list: each item with what the apps above said of it
    (``events.items_listed``; annotation: its consensus)."""
    return [
        {"item": item, **{key: value for each in answers for key, value in each.get(item.pk, {}).items()}}
        for item in items
    ]


SAMPLE_TEXT = "Your items' texts will show here, each with the labels below it."


def label_preview(*, project: Project, labels: list[Label], instructions: str, sample: str) -> dict[str, Any]:
    """The annotator's workspace as the labels page shows it: the instructions, an item,
    the labels with their keys and descriptions; and which keys collide, as typed."""
    keys = Counter(label.key for label in labels if label.key)
    names: dict[str, list[str]] = {}
    for label in labels:
        names.setdefault(label.name.casefold(), []).append(label.name)
    return {
        "project": project,
        "preview_labels": labels,
        "instructions_html": markdown_to_html(instructions),
        "sample_text": sample or SAMPLE_TEXT,
        "clashing_keys": sorted(key for key, n in keys.items() if n > 1),
        "clashing_names": [spellings for spellings in names.values() if len(spellings) > 1],
        "without_key": [label for label in labels if not label.key],
    }
