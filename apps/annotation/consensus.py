"""Labels for items, short of the full consolidation pass: the provisional vote at k
answers, a reviewer's final answer, labels a model gives on its own, pre-labels, and
queuing the full pass (``consolidation.py``, in a worker).

When an item reaches k answers, ``consensus_provisional`` gives it a label at once by a
vote weighted with each annotator's last estimated skill (a "one-coin" model), inside the
submit's transaction; the full pass later rewrites every label together.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from apps.projects.answers import (
    Answer,
    InvalidValue,
    LabelIndex,
    LabelPart,
    bio_decode,
    bio_tags,
    tokens_of,
    value_parse,
)
from apps.projects.jobs import job_request, job_send
from apps.projects.models import BlockedAnswers, Item, ItemState, Membership, Project, TaskType
from apps.projects.selectors import gold_answers

from .models import AnnotatorQuality, ConsolidationRun, ItemConsensus, Suggestion
from .selectors import GivenAnswer, annotation_answer, given_answers, item_annotation_get

# The skill assumed for an annotator before any full consolidation has measured them.
DEFAULT_SKILL = 0.7
# A blocked annotator's answers, when the project keeps them, count as barely better than chance.
DOWNWEIGHTED_SKILL = 0.5
GOLD_METHOD = "gold"


@dataclass(frozen=True)
class Verdict:
    """What a vote or a method concludes for one item."""

    answer: Answer
    confidence: float
    posteriors: dict[str, float]  # label id -> probability, where the method gives them

    def row(self, *, project: Project, item_id: int, method: str, **flags: bool) -> ItemConsensus:
        """The verdict as an item's consensus row (``flags``: is_provisional, is_model_label)."""
        return ItemConsensus(project=project, item_id=item_id, method=method, **self.fields(), **flags)

    def fields(self) -> dict[str, Any]:
        return {"parts": self.answer, "confidence": self.confidence, "posteriors": self.posteriors}


# --- the provisional vote ---------------------------------------------------------------------------


def skills_known(*, project: Project) -> dict[int, float]:
    """Each annotator's skill as the last full pass estimated it (blocked annotators whose
    answers the project keeps are down-weighted)."""
    skills: dict[int, float] = {
        annotator_id: float(skill or DEFAULT_SKILL)
        for annotator_id, skill in AnnotatorQuality.objects.filter(project=project, skill__isnull=False).values_list(
            "annotator_id", "skill"
        )
    }
    if project.blocked_answers == BlockedAnswers.DOWNWEIGHT:
        for user_id in Membership.objects.filter(project=project, is_blocked=True).values_list("user_id", flat=True):
            skills[user_id] = DOWNWEIGHTED_SKILL
    return skills


def _one_coin(votes: Sequence[tuple[Any, float]], choices: Sequence[Any]) -> dict[Any, float]:
    """Posterior over ``choices`` when each vote is right with its voter's skill and
    otherwise spread evenly over the other choices."""
    k = max(len(choices), 2)
    logs = {}
    for choice in choices:
        total = 0.0
        for given, skill in votes:
            skill = min(max(skill, 1e-3), 1 - 1e-3)
            total += math.log(skill) if given == choice else math.log((1 - skill) / (k - 1))
        logs[choice] = total
    top = max(logs.values())
    weights = {choice: math.exp(value - top) for choice, value in logs.items()}
    norm = sum(weights.values())
    return {choice: weight / norm for choice, weight in weights.items()}


def vote(*, project: Project, item: Item, answers: Sequence[GivenAnswer], skills: Mapping[int, float]) -> Verdict:
    """The skill-weighted vote for one item."""
    label_ids = list(project.labels.values_list("pk", flat=True))
    weighted = [(given.answer, skills.get(given.annotator_id, DEFAULT_SKILL)) for given in answers]
    if project.task_type == TaskType.SINGLE_LABEL:
        posterior = _one_coin([(answer.label_id, weight) for answer, weight in weighted], label_ids)
        best = max(posterior, key=lambda label: posterior[label])
        return Verdict(
            Answer([LabelPart(None, None, best)]), posterior[best], {str(k): round(v, 4) for k, v in posterior.items()}
        )
    if project.task_type == TaskType.MULTI_LABEL:
        chosen: list[LabelPart] = []
        sureness: list[float] = []
        posteriors: dict[str, float] = {}
        for label in label_ids:
            posterior = _one_coin([(answer.has(label), weight) for answer, weight in weighted], [True, False])
            if posterior[True] > 0.5:
                chosen.append(LabelPart(None, None, label))
            sureness.append(max(posterior.values()))
            posteriors[str(label)] = round(posterior[True], 4)
        return Verdict(Answer(chosen), min(sureness) if sureness else 1.0, posteriors)
    tokens = tokens_of(item.text)
    tags = [bio_tags(tokens, answer) for answer, _ in weighted]
    decided, sureness = [], []
    for index in range(len(tokens)):
        seen = sorted({t[index] for t in tags})
        if seen == ["O"]:
            decided.append("O")
            continue
        posterior = _one_coin(
            [(t[index], weight) for t, (_, weight) in zip(tags, weighted, strict=True)],
            [*seen, "O"] if "O" not in seen else seen,
        )
        best = max(posterior, key=lambda tag: posterior[tag])
        decided.append(best)
        sureness.append(posterior[best])
    return Verdict(bio_decode(tokens, decided), (sum(sureness) / len(sureness)) if sureness else 1.0, {})


def consensus_provisional(*, project: Project, item: Item) -> ItemConsensus | None:
    """Give an item that just reached k answers a label at once. A reviewer's answer
    stays; gold items take their gold answer."""
    existing = ItemConsensus.objects.filter(item=item).first()
    if existing is not None and existing.is_reviewed:
        return existing
    if item.is_gold:
        verdict, method = Verdict(gold_answers(project=project, item_ids=[item.pk])[item.pk], 1.0, {}), GOLD_METHOD
    else:
        answers = given_answers(project=project, item_ids=[item.pk])
        if not answers:
            return None
        verdict = vote(project=project, item=item, answers=answers, skills=skills_known(project=project))
        method = "weighted vote"
    consensus, _ = ItemConsensus.objects.update_or_create(
        item=item,
        defaults={"project": project, "method": method, "is_provisional": True, **verdict.fields()},
    )
    return consensus


# --- reviewers, models, the full pass -----------------------------------------------------------------


def consensus_override(*, item: Item, answer: Answer, reviewer: User, note: str = "") -> ItemConsensus:
    """A reviewer's final answer for an item; no later consolidation changes it."""
    now = timezone.now()
    with transaction.atomic():
        # The item first, as a submit and the full pass lock it: no deadlock between them.
        list(Item.objects.select_for_update().filter(pk=item.pk).values_list("pk", flat=True))
        consensus, _ = ItemConsensus.objects.update_or_create(
            item=item,
            defaults={
                **Verdict(answer, 1.0, {}).fields(),
                "project_id": item.project_id,
                "method": "reviewer",
                "is_provisional": False,
                "reviewed_by": reviewer,
                "reviewed_at": now,
                "review_note": note[:500],
            },
        )
        Item.objects.filter(pk=item.pk, consolidated_at__isnull=True).update(consolidated_at=now)
    return consensus


def consensus_review(
    *,
    project: Project,
    item: Item,
    reviewer: User,
    labels: LabelIndex,
    annotation_id: Any = None,
    value: Any = None,
    note: str = "",
) -> ItemConsensus:
    """A reviewer settles an item: with one annotator's answer (``annotation_id``), or with
    an answer of their own (``value``, as the API and forms send answers). ValidationError
    when the answer does not fit the project."""
    if annotation_id is not None:
        try:
            chosen = item_annotation_get(item=item, annotation_id=annotation_id)
        except Http404:
            raise ValidationError("No such answer to this item.") from None
        answer = annotation_answer(chosen)
        note = f"Took {chosen.annotator.get_username()}'s answer. {note}".strip()
    else:
        try:
            answer = value_parse(project=project, labels=labels, raw=value, text=item.text)
        except InvalidValue as problem:
            raise ValidationError({"value": str(problem)}) from None
    return consensus_override(item=item, answer=answer, reviewer=reviewer, note=note)


def consensus_from_model(*, project: Project, verdicts: Mapping[int, Verdict], source: str) -> int:
    """Model labels for items nobody has answered or holds yet, marked as the model's: they
    take the items out of the queue but never count as human labels (agreement, training).
    Returns how many items got one."""
    untouched = set(
        Item.objects.filter(pk__in=list(verdicts), annotation_count=0, lease_count=0).values_list("pk", flat=True)
    )
    rows = [
        verdict.row(project=project, item_id=item_id, method=source, is_provisional=False, is_model_label=True)
        for item_id, verdict in verdicts.items()
        if item_id in untouched
    ]
    ItemConsensus.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    Item.objects.filter(pk__in=[row.item_id for row in rows]).update(
        state=ItemState.COMPLETE, consolidated_at=timezone.now()
    )
    return len(rows)


@dataclass(frozen=True)
class Prelabel:
    item_id: int
    answer: Answer
    confidence: float | None
    scores: dict[str, float]


def suggestions_replace(
    *, project: Project, prelabels: Iterable[Prelabel], source: str, within: tuple[int, int] | None = None
) -> int:
    """Make these the project's pre-labels from ``source``, replacing the earlier ones
    (or, with ``within``, those of the items whose ids lie in that range)."""
    stale = Suggestion.objects.filter(item__project=project)
    if within is not None:
        stale = stale.filter(item__pk__range=within)
    stale.delete()
    rows = [
        Suggestion(item_id=p.item_id, parts=p.answer, confidence=p.confidence, scores=p.scores, source=source)
        for p in prelabels
    ]
    Suggestion.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def suggestions_keep_only(*, project: Project, source: str) -> None:
    """Drop pre-labels that other sources (older models) left."""
    Suggestion.objects.filter(item__project=project).exclude(source=source).delete()


def consolidation_request(*, project: Project, method: str = "") -> ConsolidationRun:
    """Queue a full consolidation, unless one is queued or running already (that one is
    returned). A run whose worker stopped is failed first (apps/projects/jobs.py)."""
    run, created = job_request(
        model=ConsolidationRun, project=project, requested_method=method or project.consolidation_method
    )
    if created:
        job_send(run)
    return run
