"""Pay: what each person earned in a project over a period, read from the database.

What counts (docs/crowd.md, "Pay"):
1. An *answer* is a paid annotation: an ``Annotation`` on a non-gold item, counted on the
   day it was first given (``created_at``). Changing it later neither adds one nor moves
   it, and a skip gives none. These are the rows ``annotation_submit`` adds to
   ``Project.budget_spent``, so over a period that covers everything the base amounts
   add up to ``budget_spent x price_per_annotation``.
2. Gold answers are free (they test people rather than label data); they give the gold
   accuracy: the mean score against the gold answers (``answer_score``) of the gold
   answers given in the period.
3. Practice answers (training mode) and qualification tests live in their own tables
   (``PracticeAnswer``, ``QualificationAttempt``) and are never read here.
4. *Accepted*: a paid answer equal to its item's consensus as it stands now, which is the
   reviewer's final answer once an item was reviewed (the same labels; for entity spans,
   the same spans). An answer whose item has no consensus yet is *pending*. Accepted
   answers are reported beside the pay; they do not change it.
5. base = answers x price per answer; bonus = answers x bonus per answer when the project
   sets a bonus threshold and the person's gold accuracy in the period reaches it (which
   takes at least one gold answer in the period); amount = base + bonus. Amounts are exact
   to the price's four decimals: rounding to cents is the payer's step.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import JSONField, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from apps.projects.models import Membership, Project

from .models import Annotation, ItemConsensus
from .quality import gold_accuracy, gold_scores


@dataclass(frozen=True)
class PayRow:
    annotator: User
    worker_id: str  # the id an external crowd platform knows them by ("" when none)
    answers: int
    accepted: int
    pending: int
    gold_answered: int
    gold_accuracy: float | None
    base: Decimal
    bonus: Decimal
    amount: Decimal
    currency: str

    @property
    def has_bonus(self) -> bool:
        return self.bonus > 0


@dataclass(frozen=True)
class PayTotal:
    answers: int
    accepted: int
    pending: int
    gold_answered: int
    base: Decimal
    bonus: Decimal
    amount: Decimal


@dataclass
class _Counts:
    answers: int = 0
    accepted: int = 0
    pending: int = 0


def period_bounds(start: date | None, end: date | None) -> Q:
    """Answers given from the start of ``start`` to the end of ``end`` (both days included,
    in the site's time zone); an open end is unbounded."""
    zone = timezone.get_current_timezone()
    bounds = Q()
    if start is not None:
        bounds &= Q(created_at__gte=datetime.combine(start, time.min, tzinfo=zone))
    if end is not None:
        bounds &= Q(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone))
    return bounds


Part = tuple[int | None, int | None, int]  # (start, end, label id): a LabelPart as a plain tuple


def _paid_counts(project: Project, paid: QuerySet[Annotation]) -> dict[int, _Counts]:
    """Per annotator: paid answers, those equal to their item's consensus, those waiting for one.

    One pass over the answers' parts (a row per part, or one empty row for an answer with
    none). Answers compare as sets of (start, end, label id): an ``Answer`` is a sorted
    tuple of distinct parts, so equal sets are equal answers. Plain tuples and the stored
    JSON keep 300k answers to seconds (an Answer each took three times as long)."""
    stored = ItemConsensus.objects.filter(project=project, item_id__in=paid.values("item_id")).annotate(
        raw=Cast("parts", JSONField())
    )
    consensus = {
        item_id: frozenset((part.get("start"), part.get("end"), part["label_id"]) for part in raw)
        for item_id, raw in stored.values_list("item_id", "raw")
    }
    rows = paid.order_by("pk").values_list(
        "pk", "annotator_id", "item_id", "labels__start", "labels__end", "labels__label_id"
    )
    answers: dict[int, tuple[int, int, set[Part]]] = {}
    for pk, annotator_id, item_id, start, end, label_id in rows.iterator(chunk_size=20_000):
        parts = answers.setdefault(pk, (annotator_id, item_id, set()))[2]
        if label_id is not None:
            parts.add((start, end, label_id))
    counts: dict[int, _Counts] = defaultdict(_Counts)
    for annotator_id, item_id, parts in answers.values():
        tally = counts[annotator_id]
        tally.answers += 1
        final = consensus.get(item_id)
        if final is None:
            tally.pending += 1
        elif parts == final:
            tally.accepted += 1
    return counts


def _gold_in_period(
    project: Project, annotator_ids: list[int] | None, start: date | None, end: date | None
) -> dict[int, list[float]]:
    """Per annotator, the scores of their gold answers given in the period."""
    zone = timezone.get_current_timezone()
    first = datetime.combine(start, time.min, tzinfo=zone) if start else None
    after = datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone) if end else None
    kept: dict[int, list[float]] = {}
    for annotator_id, scores in gold_scores(project=project, annotator_ids=annotator_ids).items():
        within = [
            (at, score) for at, score in scores if (first is None or at >= first) and (after is None or at < after)
        ]
        if within:
            kept[annotator_id] = [score for _, score in within]
    return kept


def _bonus_earned(project: Project, accuracy: float | None) -> bool:
    threshold = project.bonus_gold_accuracy
    return threshold is not None and accuracy is not None and accuracy >= threshold and project.bonus_per_answer > 0


def pay_rows(
    *, project: Project, start: date | None = None, end: date | None = None, annotator: User | None = None
) -> list[PayRow]:
    """One row per person who gave a paid or a gold answer in the period (or only
    ``annotator``'s row), by username. The module docstring says what each figure counts."""
    answers = Annotation.objects.filter(project=project).filter(period_bounds(start, end))
    if annotator is not None:
        answers = answers.filter(annotator=annotator)
    counts = _paid_counts(project, answers.filter(is_gold=False))
    gold = _gold_in_period(project, [annotator.pk] if annotator is not None else None, start, end)
    people = {user.pk: user for user in User.objects.filter(pk__in=set(counts) | set(gold))}
    worker_ids = dict(
        Membership.objects.filter(project=project, user_id__in=list(people)).values_list(
            "user_id", "external_worker_id"
        )
    )
    rows = []
    for user_id, user in people.items():
        tally = counts.get(user_id, _Counts())
        scores = gold.get(user_id, [])
        accuracy = gold_accuracy([(None, score) for score in scores])
        base = tally.answers * project.price_per_annotation
        bonus = tally.answers * project.bonus_per_answer if _bonus_earned(project, accuracy) else Decimal(0)
        rows.append(
            PayRow(
                annotator=user,
                worker_id=worker_ids.get(user_id, "") or "",
                answers=tally.answers,
                accepted=tally.accepted,
                pending=tally.pending,
                gold_answered=len(scores),
                gold_accuracy=accuracy,
                base=base,
                bonus=bonus,
                amount=base + bonus,
                currency=project.currency,
            )
        )
    return sorted(rows, key=lambda row: row.annotator.get_username().casefold())


def pay_total(rows: Iterable[PayRow]) -> PayTotal:
    rows = list(rows)
    return PayTotal(
        answers=sum(row.answers for row in rows),
        accepted=sum(row.accepted for row in rows),
        pending=sum(row.pending for row in rows),
        gold_answered=sum(row.gold_answered for row in rows),
        base=sum((row.base for row in rows), Decimal(0)),
        bonus=sum((row.bonus for row in rows), Decimal(0)),
        amount=sum((row.amount for row in rows), Decimal(0)),
    )
