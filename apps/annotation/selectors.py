"""Reads for the annotator workspace and the manager's dashboard."""

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from apps.learning.models import Suggestion
from apps.projects.models import Item, ItemState, Project
from apps.projects.values import LabelPart

from .models import Annotation, Assignment, AssignmentState

ITEMS_LEFT_CACHE_SECONDS = 30


def items_left(*, project: Project) -> int:
    """Non-gold items that still need answers. Counted at most every 30 seconds per
    project: every submit shows it, and counting 100k items each time would not pay."""
    key = f"quorum:items-left:{project.pk}"
    left = cache.get(key)
    if left is None:
        left = Item.objects.filter(project=project, is_gold=False).exclude(state=ItemState.COMPLETE).count()
        cache.set(key, left, ITEMS_LEFT_CACHE_SECONDS)
    return int(left)


def annotator_progress(*, project: Project, annotator: User, since: datetime | None) -> dict[str, int]:
    counts = Annotation.objects.filter(project=project, annotator=annotator).aggregate(
        total=Count("id"), session=Count("id", filter=Q(created_at__gte=since) if since else Q(pk__in=[]))
    )
    return {"total": counts["total"], "session": counts["session"], "left": items_left(project=project)}


def annotation_parts(annotation: Annotation) -> list[LabelPart]:
    return [LabelPart(row.start, row.end, row.label_id) for row in annotation.labels.all()]


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


def item_suggestion(*, item: Item) -> Suggestion | None:
    """The item's suggestion; free when the item was loaded with select_related."""
    try:
        return item.suggestion
    except Suggestion.DoesNotExist:
        return None


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
    """Per annotator: answers, gold answers, skips, median seconds per item, last active."""
    rows = (
        Annotation.objects.filter(project=project)
        .values("annotator_id", "annotator__username")
        .annotate(count=Count("id"), gold=Count("id", filter=Q(is_gold=True)), last=Max("created_at"))
        .order_by("-count")
    )
    skips = dict(
        Assignment.objects.filter(project=project, state=AssignmentState.SKIPPED)
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    durations: dict[int, list[int]] = {}
    for annotator_id, duration in (
        Annotation.objects.filter(project=project, duration_ms__isnull=False)
        .order_by("-id")
        .values_list("annotator_id", "duration_ms")[:50_000]
    ):
        if duration is not None:
            durations.setdefault(annotator_id, []).append(duration)
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
        }
        for row in rows
    ]
