"""Simulated crowd annotators, for the demo and for benchmarks.

Each simulated annotator has an accuracy: with that probability they give the true
answer, otherwise a plausible mistake (another label; for entity spans a missed span,
a span with the wrong type, or a boundary one word off). They work through the same
services as people do (lease, submit, sometimes skip), so everything downstream sees
ordinary annotations.
"""

import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from apps.projects.models import Project, TaskType

from .models import Annotation
from .services import annotation_submit, assignment_skip, task_next_for_annotator


@dataclass(frozen=True)
class SimulatedAnnotator:
    user: User
    accuracy: float
    skip_rate: float = 0.02
    seconds_per_item: float = 8.0


def _noisy_label(truth: Any, names: Sequence[str], accuracy: float, rng: random.Random) -> Any:
    if rng.random() < accuracy:
        return truth
    wrong = [name for name in names if name != truth]
    return rng.choice(wrong) if wrong else truth


def _noisy_spans(
    truth: list[dict[str, Any]], text: str, names: Sequence[str], accuracy: float, rng: random.Random
) -> list[dict[str, Any]]:
    spans = []
    for span in truth:
        if rng.random() < accuracy:
            spans.append(dict(span))
            continue
        mistake = rng.choice(["miss", "type", "boundary"])
        if mistake == "type":
            spans.append({**span, "label": _noisy_label(span["label"], names, 0.0, rng)})
        elif mistake == "boundary":
            # Take in the next word, when there is one.
            following = re.match(r"\s+\S+", text[span["end"] :])
            end = span["end"] + following.end() if following else span["end"]
            spans.append({**span, "end": end})
    return _without_overlaps(spans)


def _without_overlaps(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        if not kept or span["start"] >= kept[-1]["end"]:
            kept.append(span)
    return kept


def simulate_crowd(
    *,
    project: Project,
    annotators: Sequence[SimulatedAnnotator],
    truth: Mapping[int, Any],
    answers: int,
    seed: int = 7,
    spread_days: int = 0,
) -> int:
    """Let the annotators give about ``answers`` answers in turn; return how many.

    ``truth`` maps item ids to the true answer (a label name, or a list of spans with
    label names). ``spread_days`` back-dates the answers evenly over that many days,
    so a demo's charts have a history."""
    rng = random.Random(seed)  # nosec B311 # seeded simulated annotators, not a secret
    names = list(project.labels.values_list("name", flat=True))
    given = 0
    active = list(annotators)
    while given < answers and active:
        for annotator in list(active):
            task = task_next_for_annotator(project=project, annotator=annotator.user)
            if task.assignment is None:
                active.remove(annotator)
                continue
            if rng.random() < annotator.skip_rate:
                assignment_skip(project=project, annotator=annotator.user, assignment_id=task.assignment.pk)
                continue
            item = task.assignment.item
            true = truth[item.pk]
            if project.task_type == TaskType.SPANS:
                value: Any = _noisy_spans(true, item.text, names, annotator.accuracy, rng)
            else:
                value = _noisy_label(true, names, annotator.accuracy, rng)
            annotation_submit(
                project=project,
                annotator=annotator.user,
                assignment_id=task.assignment.pk,
                value=value,
                submission_id=uuid.uuid4(),
                duration_ms=int(rng.lognormvariate(0, 0.4) * annotator.seconds_per_item * 1000),
            )
            given += 1
            if given >= answers:
                break
    if spread_days:
        _spread_over_days(project, spread_days, rng)
    return given


def _spread_over_days(project: Project, days: int, rng: random.Random) -> None:
    now = timezone.now()
    ids = list(Annotation.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    for position, annotation_id in enumerate(ids):
        age = timedelta(days=days * (1 - position / max(len(ids), 1)), minutes=rng.randint(0, 600))
        Annotation.objects.filter(pk=annotation_id).update(created_at=now - age, updated_at=now - age)
