"""Agreement and annotator-quality reports.

The heavy figures (alpha, kappas, per-annotator gold accuracy) are computed by the
consolidation run in a worker and stored on it; pages read the latest run and add
what the database answers cheaply (confidence histogram, items in disagreement).
"""

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet

from apps.projects.models import Item, JobState, Membership, Project, TaskType

from . import agreement
from .consolidation import Answer, Outcome, Part
from .models import Annotation, AnnotatorQuality, ConsolidationRun, ItemConsensus
from .quality import gold_accuracy, gold_scores

HEATMAP_ANNOTATORS = 15
CONFIDENCE_BINS = 10


def _units(project: Project, answers: Sequence[Answer]) -> tuple[dict, dict]:
    """Agreement units (item -> values) and each annotator's values per unit."""
    units: dict[Any, list[Any]] = defaultdict(list)
    by_annotator: dict[int, dict[Any, Any]] = defaultdict(dict)
    label_ids = list(project.labels.values_list("pk", flat=True))
    for answer in answers:
        values: list[tuple[Any, Any]]
        if project.task_type == TaskType.SINGLE_LABEL:
            values = [(answer.item_id, answer.parts[0][2] if answer.parts else None)]
        elif project.task_type == TaskType.MULTI_LABEL:
            chosen = {part[2] for part in answer.parts}
            values = [((answer.item_id, label), label in chosen) for label in label_ids]
        else:
            values = [(answer.item_id, frozenset(answer.parts))]
        for unit, value in values:
            units[unit].append(value)
            by_annotator[answer.annotator_id][unit] = value
    return units, by_annotator


def report_compute(project: Project, answers: Sequence[Answer], outcome: Outcome) -> dict[str, Any]:
    """The figures a consolidation run stores for the report pages and the API."""
    units, by_annotator = _units(project, answers)
    names = dict(get_user_model().objects.filter(pk__in=list(by_annotator)).values_list("pk", "username"))
    report: dict[str, Any] = {"task_type": project.task_type, "answers": len(answers)}
    if project.task_type == TaskType.SPANS:
        report["span_f1"] = agreement.span_agreement({unit: list(values) for unit, values in units.items()})
        report["items_compared"] = sum(1 for values in units.values() if len(values) >= 2)
    else:
        report["alpha"] = agreement.krippendorff_alpha(units)
        report["fleiss"] = agreement.fleiss_kappa(units)
        report["percent"] = agreement.percent_agreement(units)
        report["items_compared"] = sum(1 for values in units.values() if len(values) >= 2)
        busiest = sorted(by_annotator, key=lambda a: -len(by_annotator[a]))[:HEATMAP_ANNOTATORS]
        pairs = agreement.cohen_kappa_pairs({a: by_annotator[a] for a in busiest})
        report["heatmap"] = {
            "annotators": [names.get(a, str(a)) for a in busiest],
            "kappa": [
                [1.0 if a == b else (pairs.get((a, b)) or pairs.get((b, a)) or (None, 0))[0] for b in busiest]
                for a in busiest
            ],
            "shared": [
                [
                    len(by_annotator[a]) if a == b else (pairs.get((a, b)) or pairs.get((b, a)) or (None, 0))[1]
                    for b in busiest
                ]
                for a in busiest
            ],
        }
    report["choice"] = {"method": outcome.method, "reason": outcome.reason, "scores": outcome.scores}
    return report


def quality_gold_write(project: Project) -> None:
    """Store each annotator's gold record (all time) beside the estimated skill."""
    for annotator_id, scores in gold_scores(project=project).items():
        AnnotatorQuality.objects.update_or_create(
            project=project,
            annotator_id=annotator_id,
            defaults={"gold_answered": len(scores), "gold_accuracy": gold_accuracy(scores)},
        )


def latest_run(*, project: Project) -> ConsolidationRun | None:
    return ConsolidationRun.objects.filter(project=project, state=JobState.SUCCEEDED).first()


def active_run(*, project: Project) -> ConsolidationRun | None:
    return ConsolidationRun.objects.filter(project=project, state__in=[JobState.QUEUED, JobState.RUNNING]).first()


def annotator_rows(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator: answers, gold accuracy, agreement with consensus, skill, median
    time, confusion matrix and whether (and why) they are blocked."""
    labels = {label.pk: label.name for label in project.labels.all()}
    quality = {q.annotator_id: q for q in AnnotatorQuality.objects.filter(project=project)}
    memberships = {m.user_id: m for m in Membership.objects.filter(project=project)}
    durations: dict[int, list[int]] = defaultdict(list)
    for annotator_id, duration in (
        Annotation.objects.filter(project=project, duration_ms__isnull=False)
        .order_by("-id")
        .values_list("annotator_id", "duration_ms")[:100_000]
    ):
        if duration is not None:
            durations[annotator_id].append(duration)
    rows = []
    counts = (
        Annotation.objects.filter(project=project)
        .values("annotator_id", "annotator__username")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    for row in counts:
        annotator_id = row["annotator_id"]
        q = quality.get(annotator_id)
        membership = memberships.get(annotator_id)
        rows.append(
            {
                "annotator_id": annotator_id,
                "username": row["annotator__username"],
                "answers": row["n"],
                "gold_answered": q.gold_answered if q else 0,
                "gold_accuracy": q.gold_accuracy if q else None,
                "agreement": q.agreement if q else None,
                "skill": q.skill if q else None,
                "median_seconds": statistics.median(durations[annotator_id]) / 1000
                if durations[annotator_id]
                else None,
                "confusion": _confusion_table(q.confusion if q else {}, labels),
                "membership": membership,
            }
        )
    return rows


def _confusion_table(confusion: dict[str, dict[str, float]], labels: dict[int, str]) -> dict[str, Any] | None:
    if not confusion:
        return None
    ids = [label_id for label_id in labels if str(label_id) in confusion]
    return {
        "labels": [labels[i] for i in ids],
        "rows": [[confusion.get(str(true), {}).get(str(given), 0.0) for given in ids] for true in ids],
    }


def confidence_histogram(*, project: Project) -> list[int]:
    """How many non-gold items have a consensus with confidence in each tenth."""
    bins = [0] * CONFIDENCE_BINS
    for confidence in ItemConsensus.objects.filter(project=project, item__is_gold=False).values_list(
        "confidence", flat=True
    ):
        if confidence is not None:
            bins[min(int(confidence * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
    return bins


def disagreements(*, project: Project) -> QuerySet[ItemConsensus]:
    """Consolidated non-gold items with two answers or more, least sure first, that no
    reviewer has settled yet."""
    return (
        ItemConsensus.objects.filter(
            project=project, reviewed_at__isnull=True, item__is_gold=False, item__annotation_count__gte=2
        )
        .select_related("item")
        .order_by("confidence", "item_id")
    )


def consensus_parts(consensus: ItemConsensus | None) -> list[Part]:
    if consensus is None:
        return []
    return [(p.get("start"), p.get("end"), p["label_id"]) for p in consensus.parts]


def item_next_disagreement(*, project: Project, after: Item) -> ItemConsensus | None:
    return disagreements(project=project).exclude(item=after).first()
