"""What the weak-supervision pages show: each function's analysis (like Snorkel's LF
analysis), the editor's live preview on a sample, every source's estimate, and the weak
labels as a download. Reads only; the writes are in ``weak``."""

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import QuerySet
from django.http import Http404

from apps.projects.answers import LabelIndex, value_render
from apps.projects.jobs import JobState
from apps.projects.models import Item, Project, TaskType

from . import label_models, rules, weak
from .models import (
    LabellingFunction,
    LabellingFunctionVersion,
    RuleApplication,
    RuleVote,
    SourceEstimate,
    SourceKind,
    WeakLabel,
)

# The editor's preview: labelled items to measure accuracy on, and others to show coverage.
PREVIEW_LABELLED = 1_000
PREVIEW_OTHERS = 1_000
PREVIEW_SHOWN = 25
# A preview stops after this long (it says how many items it looked at), in batches of this many.
PREVIEW_SECONDS = 1.5
PREVIEW_BATCH = 100


def functions_analysis(*, project: Project) -> list[dict[str, Any]]:
    """One row per function, like Snorkel's LF analysis, from the stored votes: polarity,
    coverage, overlaps, conflicts, correct and incorrect against gold and consensus, empirical
    and estimated accuracy, whether its votes are stale (edited since the last application)."""
    functions = list(LabellingFunction.objects.filter(project=project).order_by("name"))
    labels = weak.labels_ordered(project)
    column_of_label = {label.pk: index for index, label in enumerate(labels)}
    item_ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    row_of = {item_id: index for index, item_id in enumerate(item_ids)}
    column_of = {function.pk: index for index, function in enumerate(functions)}
    votes = np.full((len(item_ids), len(functions)), label_models.ABSTAIN, dtype=np.int64)
    applied: dict[int, set[int]] = defaultdict(set)
    spans_task = project.task_type == TaskType.SPANS
    for function_id, item_id, version, label_id, spans in RuleVote.objects.filter(project=project).values_list(
        "function_id", "item_id", "version", "label_id", "spans"
    ):
        applied[function_id].add(version)
        if spans_task:
            # One "label" per item for span functions: the first type proposed (coverage, overlaps).
            votes[row_of[item_id], column_of[function_id]] = column_of_label.get(spans[0][2], 0) if spans else -1
        elif label_id in column_of_label:
            votes[row_of[item_id], column_of[function_id]] = column_of_label[label_id]
    gold = np.full(len(item_ids), label_models.ABSTAIN, dtype=np.int64)
    if not spans_task:
        for item_id, answer in weak.truth_answers(project).items():
            if item_id in row_of and answer.label_id in column_of_label:
                gold[row_of[item_id]] = column_of_label[answer.label_id]
    summary = label_models.lf_analysis(votes, max(len(labels), 1), gold if (gold >= 0).any() else None)
    estimates = {e.key: e for e in SourceEstimate.objects.filter(project=project, kind=SourceKind.FUNCTION)}
    last = RuleApplication.objects.filter(project=project, state=JobState.SUCCEEDED).first()
    timed_out = last.summary.get("timeouts", {}) if last else {}
    versions_applied = last.summary.get("versions", {}) if last else {}
    rows = []
    for function, analysis in zip(functions, summary, strict=True):
        estimate = estimates.get(function.name)
        rows.append(
            {
                "function": function,
                "label": function.definition.get("label") or "(its own)",
                "polarity_names": [labels[index].name for index in analysis["polarity"] if index < len(labels)],
                "coverage": analysis["coverage"],
                "overlaps": analysis["overlaps"],
                "conflicts": analysis["conflicts"],
                "correct": analysis["correct"],
                "incorrect": analysis["incorrect"],
                "empirical_accuracy": _number(analysis["accuracy"]),
                "estimated_accuracy": estimate.accuracy if estimate else None,
                "flagged": bool(estimate and estimate.flagged),
                "applied": function.version in applied.get(function.pk, set())
                or versions_applied.get(function.name) == function.version,
                "timeouts": timed_out.get(function.name, 0),
            }
        )
    return rows


def _number(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


@dataclass
class Preview:
    definition: rules.RuleDefinition
    sample_size: int  # items looked at: all of the sample, unless the time ran out
    sample_total: int
    fired: list[dict[str, Any]]  # the first items it fires on: id, text segments, label, truth
    fired_count: int
    coverage: float
    overlaps: float
    conflicts: float
    checked: int  # fired on items with a known answer
    correct: int
    timeouts: int
    seconds: float

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.checked if self.checked else None


def _sample(project: Project) -> list[tuple[int, str]]:
    """Labelled items (to measure accuracy) first, then a fixed spread of the others (coverage)."""
    truth_ids = list(weak.truth_answers(project))[:PREVIEW_LABELLED]
    labelled = list(Item.objects.filter(project=project, pk__in=truth_ids).values_list("pk", "text"))
    others = list(
        Item.objects.filter(project=project).exclude(pk__in=truth_ids).order_by("random_key")
        .values_list("pk", "text")[:PREVIEW_OTHERS]
    )  # fmt: skip
    return sorted(labelled) + sorted(others)


def _segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, highlighted) so a template can mark matches without HTML."""
    pieces, at = [], 0
    for start, end in sorted(spans):
        if start < at:
            continue
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


@dataclass
class _Partial:
    fired: list[rules.Fired]
    timeouts: int
    seconds: float
    texts: int  # how many of the texts were looked at before the deadline


def _apply_within(
    definition: rules.RuleDefinition, texts: list[str], context: rules.Context, deadline: float
) -> _Partial:
    """Apply in batches until the texts or the time run out: a pattern that is slow on
    every text (each within its own time limit) cannot hold a request for long."""
    partial = _Partial([], 0, 0.0, 0)
    while partial.texts < len(texts) and (partial.texts == 0 or time.monotonic() < deadline):
        batch = slice(partial.texts, partial.texts + PREVIEW_BATCH)
        try:
            part = rules.rule_apply(definition, texts[batch], _context_slice(context, batch))
        except rules.RuleError as error:
            raise weak.refusal(error) from None
        partial.fired.extend(rules.Fired(hit.index + partial.texts, hit.label, hit.spans) for hit in part.fired)
        partial.timeouts += part.timeouts
        partial.seconds += part.seconds
        partial.texts += len(texts[batch])
    return partial


def _context_slice(context: rules.Context, rows: slice) -> rules.Context:
    return rules.Context(
        vectors=None if context.vectors is None else context.vectors[rows],
        label_vectors=context.label_vectors,
        model_probs=None if context.model_probs is None else context.model_probs[rows],
        model_labels=context.model_labels,
        external={source: values[rows] for source, values in context.external.items()},
        text_vectors=context.text_vectors,
    )


def function_preview(*, project: Project, data: Any, function: LabellingFunction | None = None) -> Preview:
    """What a function (as written, not yet saved) does on a sample of the project: the
    items it fires on with the matches highlighted, its coverage, overlaps and conflicts with
    the other enabled functions' stored votes, and its accuracy on items with known answers."""
    definition = weak.definition_parse(project=project, data=data)
    sample = _sample(project)
    ids = [pk for pk, _ in sample]
    texts = [text for _, text in sample]
    context = weak.votes_context(project, ids, [definition], embed=False)
    applied = _apply_within(definition, texts, context, deadline=time.monotonic() + PREVIEW_SECONDS)
    sample_total, sample = len(sample), sample[: applied.texts]
    names = {label.pk: label.name for label in weak.labels_ordered(project)}
    others: dict[int, set[str]] = defaultdict(set)
    other_votes = [row for row in weak.current_votes(project) if function is None or row[0] != function.pk]
    for _, item_id, label_id, _ in other_votes:
        others[item_id].add(names.get(label_id, "") if label_id else "span")
    truth = weak.truth_answers(project)
    fired: list[dict[str, Any]] = []
    overlaps = conflicts = checked = correct = 0
    for hit in applied.fired:
        item_id = ids[hit.index]
        other = others.get(item_id, set())
        overlaps += bool(other)
        conflicts += bool(other - {hit.label}) if project.task_type != TaskType.SPANS else 0
        known = truth.get(item_id)
        right = None
        if known is not None and project.task_type != TaskType.SPANS:
            right = names.get(known.label_id or -1) == hit.label
        elif known is not None:
            wanted = {(p.start, p.end, names.get(p.label_id)) for p in known if p.is_span}
            right = all((s, e, hit.label) in wanted for s, e in hit.spans)
        if right is not None:
            checked += 1
            correct += right
        if len(fired) < PREVIEW_SHOWN:
            fired.append(
                {
                    "item_id": item_id,
                    "segments": _segments(texts[hit.index], hit.spans),
                    "label": hit.label,
                    "right": right,
                }
            )
    count = max(len(sample), 1)
    return Preview(
        definition=definition, sample_size=len(sample), sample_total=sample_total, fired=fired,
        fired_count=len(applied.fired),
        coverage=len(applied.fired) / count, overlaps=overlaps / count, conflicts=conflicts / count,
        checked=checked, correct=correct, timeouts=applied.timeouts, seconds=applied.seconds,
    )  # fmt: skip


def sources_estimates(*, project: Project) -> list[SourceEstimate]:
    """Every source's estimated accuracy from the last fit: people and functions together."""
    return list(SourceEstimate.objects.filter(project=project).order_by("-accuracy", "title"))


def weak_labels(*, project: Project) -> "QuerySet[WeakLabel]":
    return WeakLabel.objects.filter(project=project).select_related("item").order_by("item_id")


def weak_labels_jsonl(*, project: Project) -> Iterator[str]:
    """Every weak label as a JSON line: the item (its import id, its Quorum id, its text), the
    answer as the import format writes it, its confidence and posteriors by label name, and
    ``"weak": true``, so it cannot be mistaken for people's labels."""
    labels = LabelIndex.for_project(project)
    names = {str(label.pk): label.name for label in labels.labels}
    for weak_label in weak_labels(project=project).iterator(chunk_size=2000):
        item = weak_label.item
        value = value_render(project=project, labels=labels, parts=weak_label.answer, text=item.text)
        yield json.dumps(
            {
                "id": item.external_id or None, "item": item.pk, "text": item.text,
                ("spans" if project.task_type == TaskType.SPANS else "label"): value,
                "confidence": round(weak_label.confidence, 4),
                "posteriors": {names.get(key, key): p for key, p in weak_label.posteriors.items()},
                "method": weak_label.method, "weak": True,
            },
            ensure_ascii=False,
        ) + "\n"  # fmt: skip


def application_latest(*, project: Project) -> RuleApplication | None:
    return RuleApplication.objects.filter(project=project).first()


def function_get(*, project: Project, function_id: Any) -> LabellingFunction:
    """A function of this project by id; any other id (another project's too) is a 404."""
    try:
        function_id = int(function_id)
    except (TypeError, ValueError):
        raise Http404("No such labelling function in this project.") from None
    # Ids are 64-bit: a larger number names nothing (and SQLite could not even bind it).
    found = None
    if 0 < function_id < 2**63:
        found = LabellingFunction.objects.filter(project=project, pk=function_id).first()
    if found is None:
        raise Http404("No such labelling function in this project.")
    return found


def function_versions(*, function: LabellingFunction) -> list[LabellingFunctionVersion]:
    """Every definition the function has had, newest first."""
    return list(function.versions.select_related("created_by").order_by("-number"))
