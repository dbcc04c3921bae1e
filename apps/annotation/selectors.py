"""Reads of the annotation app: the workspace, the manager's dashboard, answers and their
consensus, the reports and the review pages, and the API's lists."""

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest, TruncDate
from django.http import Http404
from django.utils import timezone

from apps.projects.answers import Answer, LabelPart
from apps.projects.jobs import JobState
from apps.projects.models import BlockedAnswers, Item, ItemState, Label, Membership, Project
from apps.projects.selectors import AnswerFilters

from .models import (
    Annotation,
    AnnotationLabel,
    AnnotatorQuality,
    Assignment,
    AssignmentState,
    ConsolidationRun,
    ItemConsensus,
    Suggestion,
)

ITEMS_LEFT_CACHE_SECONDS = 30
CONFIDENCE_BINS = 10


# --- the workspace -------------------------------------------------------------------------------


def project_progress_counts(*, project: Project) -> dict[str, int]:
    """The project's non-gold items: how many (``items``), how many are not complete
    (``left``), and how many answers they need in all (``needed``: a complete item the
    answers it has, any other at least k plus what dynamic overlap asked for). Counted at
    most every 30 seconds per project: every submit shows them, and counting 100k items
    each time would not pay."""
    key = f"quorum:project-progress:{project.pk}"
    counts = cache.get(key)
    if counts is None:
        needs = Case(
            When(state=ItemState.COMPLETE, then=F("annotation_count")),
            default=Greatest(Value(project.overlap) + F("extra_annotations"), F("annotation_count")),
            output_field=IntegerField(),
        )
        totals = Item.objects.filter(project=project, is_gold=False).aggregate(
            items=Count("id"), left=Count("id", filter=~Q(state=ItemState.COMPLETE)), needed=Sum(needs)
        )
        counts = {name: int(value or 0) for name, value in totals.items()}
        cache.set(key, counts, ITEMS_LEFT_CACHE_SECONDS)
    return dict(counts)


def annotator_progress(*, project: Project, annotator: User, since: datetime | None) -> dict[str, Any]:
    """The annotator's answers, this session and in all, against their limit in the project
    (``max_items_per_annotator``, which counts every answer), and the project's answers
    given against those its items need. The annotator's figures are counted afresh; what the
    project has been given is its ``budget_spent`` (paid answers, kept by annotation_submit)
    as fresh as ``project`` is, and what it needs is counted at most every 30 seconds."""
    counts = Annotation.objects.filter(project=project, annotator=annotator).aggregate(
        total=Count("id"), session=Count("id", filter=Q(created_at__gte=since) if since else Q(pk__in=[]))
    )
    total = counts["total"]
    project_counts = project_progress_counts(project=project)
    needed = project_counts["needed"]
    given = min(project.budget_spent, needed)
    quota = project.max_items_per_annotator
    return {
        "total": total,
        "session": counts["session"],
        "left": project_counts["left"],
        "quota": quota,
        "quota_left": None if quota is None else max(quota - total, 0),
        "quota_percent": None if not quota else min(100, 100 * total // quota),
        "project_given": given,
        "project_needed": needed,
        "project_still": needed - given,
        "project_percent": 100 * given // needed if needed else 0,
    }


def items_left_for(*, project: Project, annotator: User) -> int:
    """Regular items that may still come to this annotator: not complete, not answered or
    skipped by them, and no more than their limit allows. One count over the project's
    open items: for pages read now and then (the annotator's home), not for every submit."""
    finished = Assignment.objects.filter(
        item=OuterRef("pk"), annotator=annotator, state__in=[AssignmentState.SUBMITTED, AssignmentState.SKIPPED]
    )
    open_to_them = (
        Item.objects.filter(project=project, is_gold=False)
        .exclude(state=ItemState.COMPLETE)
        .exclude(Exists(finished))
        .count()
    )
    quota = project.max_items_per_annotator
    if quota is None:
        return open_to_them
    answered = Annotation.objects.filter(project=project, annotator=annotator).count()
    return min(open_to_them, max(quota - answered, 0))


def answers_given(*, project: Project, annotator: User) -> int:
    """How many answers (gold ones too) the annotator gave in the project: what the
    per-person limit counts, with their live leases."""
    return Annotation.objects.filter(project=project, annotator=annotator).count()


def work_left_for(*, project: Project, annotator: User) -> bool:
    """Whether a regular item may still come to this annotator: one not complete that they
    have not answered or skipped (their own live lease counts; others' leases may lapse)."""
    finished = Assignment.objects.filter(
        item=OuterRef("pk"), annotator=annotator, state__in=[AssignmentState.SUBMITTED, AssignmentState.SKIPPED]
    )
    return (
        Item.objects.filter(project=project, is_gold=False)
        .exclude(state=ItemState.COMPLETE)
        .exclude(Exists(finished))
        .exists()
    )


def annotation_answer(annotation: Annotation) -> Answer:
    """An annotation's answer (from its prefetched parts when they were prefetched)."""
    return Answer.of_rows(annotation.labels.all())


def recent_annotations(*, project: Project, annotator: User, limit: int = 5) -> list[Annotation]:
    return list(
        Annotation.objects.filter(project=project, annotator=annotator)
        .select_related("item", "item__suggestion")
        .prefetch_related("labels")
        .order_by("-id")[:limit]
    )


def annotation_get(*, project: Project, annotator: User, annotation_id: Any) -> Annotation:
    """One of the annotator's own answers in this project; anything else is a 404."""
    try:
        return (
            Annotation.objects.select_related("item")
            .prefetch_related("labels")
            .get(project=project, annotator=annotator, pk=int(annotation_id))
        )
    except (Annotation.DoesNotExist, TypeError, ValueError):
        raise Http404("No such answer of yours in this project.") from None


def assignment_get(*, project: Project, annotator: User, assignment_id: Any) -> Assignment:
    """One of this annotator's assignments in this project; anything else is a 404."""
    try:
        return Assignment.objects.select_related("item").get(
            pk=int(assignment_id), project=project, annotator=annotator
        )
    except (Assignment.DoesNotExist, TypeError, ValueError):
        raise Http404("No such assignment for you in this project.") from None


def item_suggestion(*, item: Item) -> Suggestion | None:
    """The item's suggestion; free when the item was loaded with select_related."""
    try:
        return item.suggestion
    except Suggestion.DoesNotExist:
        return None


def suggestion_answer(suggestion: Suggestion | None, labels: Iterable[int]) -> Answer:
    """A suggestion's answer without labels the project no longer has."""
    return suggestion.parts.only_labels(labels) if suggestion is not None else Answer()


# --- the dashboard ---------------------------------------------------------------------------------


def budget_summary(*, project: Project) -> dict[str, Any]:
    live_paid = Assignment.objects.filter(
        project=project, state=AssignmentState.LEASED, is_gold=False, expires_at__gt=timezone.now()
    ).count()
    limit = project.budget_max_annotations
    spent = project.budget_spent
    return {
        "limit": limit,
        "spent": spent,
        "reserved": live_paid,
        "remaining": None if limit is None else max(limit - spent - live_paid, 0),
        "exhausted": limit is not None and spent + live_paid >= limit,
        "percent": None if not limit else min(100, round(100 * spent / limit)),
        "cost_spent": spent * project.price_per_annotation,
        "cost_limit": None if limit is None else limit * project.price_per_annotation,
    }


def annotations_per_day(*, project: Project, days: int = 30) -> list[dict[str, Any]]:
    start = (timezone.now() - timedelta(days=days - 1)).date()
    rows = (
        Annotation.objects.filter(project=project, created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("day")
    )
    by_day = {row["day"]: row["n"] for row in rows}
    return [{"day": start + timedelta(days=i), "n": by_day.get(start + timedelta(days=i), 0)} for i in range(days)]


def annotator_stats(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator: answers, gold answers, skips, median seconds per item, last active,
    and whether (and why) they are blocked."""
    membership = Membership.objects.filter(project=project, user=OuterRef("annotator_id"))
    rows = (
        Annotation.objects.filter(project=project)
        .values("annotator_id", "annotator__username")
        .annotate(
            count=Count("id"),
            gold=Count("id", filter=Q(is_gold=True)),
            last=Max("created_at"),
            blocked=Subquery(membership.values("is_blocked")[:1]),
            blocked_reason=Subquery(membership.values("blocked_reason")[:1]),
        )
        .order_by("-count")
    )
    skips = dict(
        Assignment.objects.filter(project=project, state=AssignmentState.SKIPPED)
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    durations = _durations(project, limit=50_000)
    return [
        {
            "annotator_id": row["annotator_id"],
            "username": row["annotator__username"],
            "count": row["count"],
            "gold": row["gold"],
            "skips": skips.get(row["annotator_id"], 0),
            "median_seconds": (
                statistics.median(durations[row["annotator_id"]]) / 1000 if row["annotator_id"] in durations else None
            ),
            "last": row["last"],
            "blocked": bool(row["blocked"]),
            "blocked_reason": row["blocked_reason"] or "",
        }
        for row in rows
    ]


def _durations(project: Project, limit: int) -> dict[int, list[int]]:
    """Time per answer, by annotator, over the project's latest ``limit`` answers."""
    durations: dict[int, list[int]] = defaultdict(list)
    for annotator_id, duration in (
        Annotation.objects.filter(project=project, duration_ms__isnull=False)
        .order_by("-id")
        .values_list("annotator_id", "duration_ms")[:limit]
    ):
        if duration is not None:
            durations[annotator_id].append(duration)
    return durations


# --- answers ---------------------------------------------------------------------------------------


@dataclass
class GivenAnswer:
    """One annotator's answer to one item, as consolidation and the reports read them."""

    item_id: int
    annotator_id: int
    answer: Answer


def answers_of(annotations: QuerySet[Annotation]) -> dict[int, Answer]:
    """The answer of each of these annotations, by annotation id, read in one streamed query."""
    parts: dict[int, list[LabelPart]] = defaultdict(list)
    rows = AnnotationLabel.objects.filter(annotation__in=annotations).values_list(
        "annotation_id", "start", "end", "label_id"
    )
    for annotation_id, start, end, label_id in rows.iterator(chunk_size=20_000):
        parts[annotation_id].append(LabelPart(start, end, label_id))
    return {annotation_id: Answer(answer) for annotation_id, answer in parts.items()}


def given_answers(*, project: Project, item_ids: Iterable[int] | None = None) -> list[GivenAnswer]:
    """The project's answers (or those to these items) to consolidate: without those of
    blocked annotators when the project excludes them."""
    annotations = Annotation.objects.filter(project=project)
    if item_ids is not None:
        annotations = annotations.filter(item_id__in=list(item_ids))
    if project.blocked_answers == BlockedAnswers.EXCLUDE:
        blocked = Membership.objects.filter(project=project, is_blocked=True).values("user_id")
        annotations = annotations.exclude(annotator_id__in=blocked)
    who = annotations.values_list("pk", "item_id", "annotator_id")
    answers = answers_of(annotations)
    return [GivenAnswer(item_id, annotator_id, answers.get(pk, Answer())) for pk, item_id, annotator_id in who]


def item_annotations(*, item: Item) -> list[dict[str, Any]]:
    """An item's annotations, oldest first, each with its annotator's name and answer."""
    rows = Annotation.objects.filter(item=item).select_related("annotator").prefetch_related("labels").order_by("id")
    return [
        {
            "annotation": annotation,
            "annotator": annotation.annotator.get_username(),
            "answer": annotation_answer(annotation),
        }
        for annotation in rows
    ]


def item_annotation_get(*, item: Item, annotation_id: Any) -> Annotation:
    """One annotation of this item (a reviewer takes it as the final answer); else a 404."""
    try:
        return (
            Annotation.objects.select_related("annotator")
            .prefetch_related("labels")
            .get(item=item, pk=int(annotation_id))
        )
    except (Annotation.DoesNotExist, TypeError, ValueError):
        raise Http404("No such answer to this item.") from None


# The orders a list of annotations may take: oldest or newest first. Only these: an
# ordering named by a client never reaches order_by unchecked.
ANNOTATION_ORDERINGS = ("id", "-id")


def annotations_list(
    *, project: Project, item_id: int | None = None, annotator: str = "", ordering: str = "id"
) -> QuerySet[Annotation]:
    """The project's annotations for the API, filtered by item or annotator name."""
    if ordering not in ANNOTATION_ORDERINGS:
        raise ValueError(f"Annotations cannot be ordered by {ordering!r}.")
    annotations = (
        Annotation.objects.filter(project=project)
        .select_related("annotator", "item")
        .prefetch_related("labels")
        .order_by(ordering)
    )
    if item_id is not None:
        annotations = annotations.filter(item_id=item_id)
    if annotator:
        annotations = annotations.filter(annotator__username=annotator)
    return annotations


def answers_count(*, project: Project, label: Label | None = None) -> int:
    """How many annotations the project holds, or how many choose ``label``."""
    if label is None:
        return Annotation.objects.filter(project=project).count()
    return AnnotationLabel.objects.filter(label=label).values("annotation_id").distinct().count()


# --- consensus ---------------------------------------------------------------------------------------


def consensus_get(*, item: Item) -> ItemConsensus | None:
    return ItemConsensus.objects.filter(item=item).select_related("reviewed_by").first()


def consensus_list(*, project: Project) -> QuerySet[ItemConsensus]:
    return ItemConsensus.objects.filter(project=project).select_related("item", "reviewed_by").order_by("item_id")


def consensus_for_training(*, project: Project) -> list[tuple[int, Answer, float]]:
    """Consolidated human labels of non-gold items: (item id, answer, confidence). Model
    labels are left out: a model never trains on its own guesses."""
    rows = (
        ItemConsensus.objects.filter(project=project, is_model_label=False, item__is_gold=False)
        .order_by("item_id")
        .values_list("item_id", "parts", "confidence")
    )
    return [(item_id, answer, confidence if confidence is not None else 1.0) for item_id, answer, confidence in rows]


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


def item_next_disagreement(*, project: Project, after: Item) -> ItemConsensus | None:
    return disagreements(project=project).exclude(item=after).first()


def answer_splits(*, item_ids: Iterable[int]) -> dict[int, Counter[Answer]]:
    """How the answers to these items split: each distinct answer and how many gave it, by
    item, in one query (an answer without parts, "no entities", counts too)."""
    parts: dict[int, list[LabelPart]] = defaultdict(list)
    item_of: dict[int, int] = {}
    rows = Annotation.objects.filter(item_id__in=list(item_ids)).values_list(
        "pk", "item_id", "labels__start", "labels__end", "labels__label_id"
    )
    for pk, item_id, start, end, label_id in rows.order_by():
        item_of[pk] = item_id
        if label_id is not None:
            parts[pk].append(LabelPart(start, end, label_id))
    splits: dict[int, Counter[Answer]] = defaultdict(Counter)
    for pk, item_id in item_of.items():
        splits[item_id][Answer(parts.get(pk, ()))] += 1
    return dict(splits)


def confidence_histogram(*, project: Project) -> list[int]:
    """How many non-gold items have a consensus with confidence in each tenth."""
    bins = [0] * CONFIDENCE_BINS
    for confidence in ItemConsensus.objects.filter(project=project, item__is_gold=False).values_list(
        "confidence", flat=True
    ):
        if confidence is not None:
            bins[min(int(confidence * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
    return bins


# --- consolidation runs and annotator quality -----------------------------------------------------------


def consolidation_latest(*, project: Project) -> ConsolidationRun | None:
    return ConsolidationRun.objects.filter(project=project, state=JobState.SUCCEEDED).first()


def consolidation_active(*, project: Project) -> ConsolidationRun | None:
    return ConsolidationRun.objects.filter(project=project).active().first()


def consolidation_runs(*, project: Project) -> QuerySet[ConsolidationRun]:
    return ConsolidationRun.objects.filter(project=project)


def consolidation_get(*, project: Project, run_id: Any) -> ConsolidationRun:
    try:
        return ConsolidationRun.objects.get(project=project, pk=int(run_id))
    except (ConsolidationRun.DoesNotExist, TypeError, ValueError):
        raise Http404("No such consolidation in this project.") from None


def qualities(*, project: Project) -> dict[int, AnnotatorQuality]:
    return {quality.annotator_id: quality for quality in AnnotatorQuality.objects.filter(project=project)}


def annotator_rows(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator: answers, gold accuracy, agreement with consensus, skill, median
    time, confusion matrix and whether (and why) they are blocked."""
    labels = {label.pk: label.name for label in project.labels.all()}
    quality = qualities(project=project)
    memberships = {m.user_id: m for m in Membership.objects.filter(project=project)}
    durations = _durations(project, limit=100_000)
    counts = (
        Annotation.objects.filter(project=project)
        .values("annotator_id", "annotator__username")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    rows = []
    for row in counts:
        annotator_id = row["annotator_id"]
        q = quality.get(annotator_id)
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
                "membership": memberships.get(annotator_id),
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


# --- the items list's filters and columns ------------------------------------------------------------


def items_answer_filter(*, project: Project, filters: AnswerFilters) -> Q:
    """The items list's filters on answers, as a condition on items. Each is one subquery on
    an indexed column of the project's rows (consensus by confidence, annotations by
    annotator), so a page of 100k items stays a few queries."""
    condition = Q()
    consensus = ItemConsensus.objects.filter(project=project)
    if filters.label_id is not None:
        condition &= Q(pk__in=consensus.filter(_has_label(project, filters.label_id)).values("item_id"))
    if filters.confidence_below is not None:
        condition &= Q(pk__in=consensus.filter(confidence__lt=filters.confidence_below).values("item_id"))
    if filters.disagreement:
        condition &= Q(items_disagreeing(project=project))
    if filters.suggestion is not None:
        suggested = Q(pk__in=Suggestion.objects.filter(item__project=project).values("item_id"))
        condition &= suggested if filters.suggestion else ~suggested
    if filters.annotator:
        answered = Annotation.objects.filter(project=project, annotator__username=filters.annotator)
        condition &= Q(pk__in=answered.values("item_id"))
    return condition


def _has_label(project: Project, label_id: int) -> Q:
    """Consensus rows whose answer has a part with this label. PostgreSQL asks jsonb
    containment; SQLite (tests, development) reads the JSON array with json_each."""
    if connection.vendor == "postgresql":
        return Q(parts__contains=[{"label_id": label_id}])
    table = ItemConsensus._meta.db_table
    with_label = RawSQL(  # nosec B611 # a fixed query on the model's own table; both values are bound parameters
        f"SELECT c.id FROM {table} c, json_each(c.parts) part "  # nosec B608 # the model's own table; values are bound
        "WHERE c.project_id = %s AND json_extract(part.value, '$.label_id') = %s",
        [project.pk, label_id],
    )
    return Q(pk__in=with_label)


def items_disagreeing(*, project: Project) -> Exists:
    """Items whose answers are not all the same: some part (a label, or a labelled span)
    that fewer of the item's annotations give than the item has answers. Items with one
    answer never disagree; two empty answers ("no entities") agree. Correlated to each
    item, so a page of the list stops at its 50th match instead of grouping every answer."""
    split = (
        AnnotationLabel.objects.filter(annotation__project=project, annotation__item_id=OuterRef("pk"))
        .values("label_id", "start", "end", "annotation__item__annotation_count")
        .annotate(giving=Count("annotation_id"))
        .filter(giving__lt=F("annotation__item__annotation_count"))
    )
    return Exists(split)


def consensus_of(*, item_ids: Iterable[int]) -> dict[int, ItemConsensus]:
    """The consensus of each of these items that has one, with its reviewer, in one query."""
    rows = ItemConsensus.objects.filter(item_id__in=list(item_ids)).select_related("reviewed_by")
    return {row.item_id: row for row in rows}
