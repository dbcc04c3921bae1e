"""Consolidation: from disagreeing answers to one label per item, and what that teaches
about each annotator.

Two passes keep labels fresh without re-running heavy models on every answer:

- When an item reaches k answers, ``consensus_provisional`` gives it a label at once by a
  vote weighted with each annotator's last estimated skill (a "one-coin" model).
- After every ``consolidate_every`` answers, and on demand, a Celery task runs the
  project's method over all answers (``project_consolidate``): labels, confidences and
  per-annotator skill and confusion matrices are rewritten together. Reviewer answers
  are never overwritten.

Task types:
- single-label: a crowd-kit method over (item, annotator, label); ``auto`` picks the
  method with the best accuracy on the gold items (see ``aggregation.choose_method``).
- multi-label: each label is a yes/no question per item, aggregated on its own.
- entity spans: crowd-kit has no sequence aggregator, so:
  1. every annotator's spans become BIO tags over the item's word tokens;
  2. the tags of the tokens that anyone marked are aggregated with Dawid-Skene, one
     task per (item, token), so each annotator is weighted by a confusion matrix
     learnt over all their tokens (tokens nobody marked are "O" for certain);
  3. the tags are decoded into valid spans: an I- tag that does not continue a span of
     its type starts one, and a span ends where its I- tags end.
"""

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.projects.models import GoldLabel, Item, JobState, Membership, Project, TaskType

from .models import Annotation, AnnotationLabel, AnnotatorQuality, ConsolidationRun, ItemConsensus

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"\w+(?:['’.\-&]\w+)*|[^\w\s]")
# The skill assumed for an annotator before any full consolidation has measured them.
DEFAULT_SKILL = 0.7
# A blocked annotator's answers, when the project keeps them, count as barely better than chance.
DOWNWEIGHTED_SKILL = 0.5
STALE_RUN = timedelta(minutes=30)

Part = tuple[int | None, int | None, int]  # (start, end, label_id)


# --- answers -------------------------------------------------------------------------------


@dataclass
class Answer:
    item_id: int
    annotator_id: int
    parts: list[Part]


def _answers(project: Project, item_ids: Iterable[int] | None = None) -> list[Answer]:
    """Answers to consolidate: without those of blocked annotators when the project
    excludes them."""
    annotations = Annotation.objects.filter(project=project)
    if item_ids is not None:
        annotations = annotations.filter(item_id__in=list(item_ids))
    if project.blocked_answers == "exclude":
        blocked = Membership.objects.filter(project=project, is_blocked=True).values("user_id")
        annotations = annotations.exclude(annotator_id__in=blocked)
    by_annotation: dict[int, Answer] = {
        pk: Answer(item_id, annotator_id, [])
        for pk, item_id, annotator_id in annotations.values_list("pk", "item_id", "annotator_id")
    }
    rows = AnnotationLabel.objects.filter(annotation__in=annotations).values_list(
        "annotation_id", "start", "end", "label_id"
    )
    for annotation_id, start, end, label_id in rows.iterator(chunk_size=20_000):
        if annotation_id in by_annotation:
            by_annotation[annotation_id].parts.append((start, end, label_id))
    return list(by_annotation.values())


def _gold(project: Project, item_ids: Iterable[int] | None = None) -> dict[int, list[Part]]:
    gold_items = Item.objects.filter(project=project, is_gold=True)
    if item_ids is not None:
        gold_items = gold_items.filter(pk__in=list(item_ids))
    gold: dict[int, list[Part]] = {pk: [] for pk in gold_items.values_list("pk", flat=True)}
    for item_id, start, end, label_id in GoldLabel.objects.filter(item__in=gold_items).values_list(
        "item_id", "start", "end", "label_id"
    ):
        gold[item_id].append((start, end, label_id))
    return gold


def parts_json(parts: Iterable[Part]) -> list[dict[str, Any]]:
    return [{"start": s, "end": e, "label_id": label} for s, e, label in sorted(parts, key=_part_order)]


def _part_order(part: Part) -> tuple[int, int, int]:
    return (part[0] if part[0] is not None else -1, part[1] if part[1] is not None else -1, part[2])


# --- scoring answers against each other ------------------------------------------------------


def answer_score(task_type: str, given: Sequence[Part], truth: Sequence[Part]) -> float:
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
    matched = len(given_set & truth_set)
    return 2 * matched / (len(given_set) + len(truth_set))


# --- entity spans as token tags ------------------------------------------------------------


def tokens_of(text: str) -> list[tuple[int, int]]:
    return [(match.start(), match.end()) for match in TOKEN.finditer(text)]


def bio(tokens: Sequence[tuple[int, int]], parts: Sequence[Part]) -> list[str]:
    """BIO tags (``B-<label id>``, ``I-<label id>``, ``O``) of word tokens for spans; a
    token belongs to the first span that overlaps it."""
    tags = ["O"] * len(tokens)
    for start, end, label in sorted(parts, key=_part_order):
        inside = [
            i for i, (s, e) in enumerate(tokens) if start is not None and end is not None and s < end and start < e
        ]
        for position, index in enumerate(inside):
            if tags[index] == "O":
                tags[index] = f"{'B' if position == 0 else 'I'}-{label}"
    return tags


def decode(tokens: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[Part]:
    """Valid spans from tags. An I- tag continues the open span of its type; otherwise
    (after O, or after another type) it starts a span, as a B- tag does."""
    spans: list[Part] = []
    open_label: int | None = None
    for (start, end), tag in zip(tokens, tags, strict=True):
        if tag == "O":
            open_label = None
            continue
        prefix, label_text = tag.split("-", 1)
        label = int(label_text)
        if prefix == "I" and open_label == label:
            spans[-1] = (spans[-1][0], end, label)
        else:
            spans.append((start, end, label))
        open_label = label
    return spans


# --- the provisional vote ----------------------------------------------------------------------


def _skills_known(project: Project) -> dict[int, float]:
    skills: dict[int, float] = {
        annotator_id: float(skill or DEFAULT_SKILL)
        for annotator_id, skill in AnnotatorQuality.objects.filter(project=project, skill__isnull=False).values_list(
            "annotator_id", "skill"
        )
    }
    if project.blocked_answers == "downweight":
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
        for vote, skill in votes:
            skill = min(max(skill, 1e-3), 1 - 1e-3)
            total += math.log(skill) if vote == choice else math.log((1 - skill) / (k - 1))
        logs[choice] = total
    top = max(logs.values())
    weights = {choice: math.exp(value - top) for choice, value in logs.items()}
    norm = sum(weights.values())
    return {choice: weight / norm for choice, weight in weights.items()}


def vote(
    project: Project, item: Item, answers: Sequence[Answer], skills: dict[int, float]
) -> tuple[list[Part], float, dict]:
    """The skill-weighted vote for one item: (parts, confidence, posteriors)."""
    label_ids = list(project.labels.values_list("pk", flat=True))
    weight = [(answer, skills.get(answer.annotator_id, DEFAULT_SKILL)) for answer in answers]
    if project.task_type == TaskType.SINGLE_LABEL:
        posterior = _one_coin([(a.parts[0][2] if a.parts else None, w) for a, w in weight], label_ids)
        best = max(posterior, key=lambda label: posterior[label])
        single: list[Part] = [(None, None, best)]
        return single, posterior[best], {str(k): round(v, 4) for k, v in posterior.items()}
    if project.task_type == TaskType.MULTI_LABEL:
        chosen: list[Part] = []
        sureness: list[float] = []
        posteriors: dict[str, float] = {}
        for label in label_ids:
            posterior = _one_coin([(any(p[2] == label for p in a.parts), w) for a, w in weight], [True, False])
            if posterior[True] > 0.5:
                chosen.append((None, None, label))
            sureness.append(max(posterior.values()))
            posteriors[str(label)] = round(posterior[True], 4)
        return chosen, min(sureness) if sureness else 1.0, posteriors
    tokens = tokens_of(item.text)
    tags = [bio(tokens, a.parts) for a, _ in weight]
    decided, sureness = [], []
    for index in range(len(tokens)):
        seen = sorted({t[index] for t in tags})
        if seen == ["O"]:
            decided.append("O")
            continue
        posterior = _one_coin(
            [(t[index], w) for t, (_, w) in zip(tags, weight, strict=True)], [*seen, "O"] if "O" not in seen else seen
        )
        best = max(posterior, key=lambda tag: posterior[tag])
        decided.append(best)
        sureness.append(posterior[best])
    return decode(tokens, decided), (sum(sureness) / len(sureness)) if sureness else 1.0, {}


def consensus_provisional(*, project: Project, item: Item) -> ItemConsensus | None:
    """Give an item that just reached k answers a label at once. A reviewer's answer
    stays; gold items take their gold answer."""
    existing = ItemConsensus.objects.filter(item=item).first()
    if existing is not None and existing.is_reviewed:
        return existing
    posteriors: dict[str, float]
    if item.is_gold:
        parts, confidence, posteriors, method = _gold(project, [item.pk])[item.pk], 1.0, {}, "gold"
    else:
        answers = _answers(project, [item.pk])
        if not answers:
            return None
        parts, confidence, posteriors = vote(project, item, answers, _skills_known(project))
        method = "weighted vote"
    consensus, _ = ItemConsensus.objects.update_or_create(
        item=item,
        defaults={
            "project": project,
            "parts": parts_json(parts),
            "confidence": confidence,
            "posteriors": posteriors,
            "method": method,
            "is_provisional": True,
        },
    )
    return consensus


# --- the full pass ------------------------------------------------------------------------------


@dataclass
class Outcome:
    method: str
    reason: str
    scores: dict[str, float]
    consensus: dict[int, tuple[list[Part], float, dict]]  # item -> (parts, confidence, posteriors)
    skills: dict[int, float]
    confusion: dict[int, dict[str, dict[str, float]]]


def _frame(rows: Iterable[tuple[Any, Any, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(list(rows), columns=["task", "worker", "label"])


def _confusion_json(matrices: dict[Any, Any]) -> dict[int, dict[str, dict[str, float]]]:
    return {
        int(worker): {
            str(true): {str(given): round(float(p), 4) for given, p in row.items()} for true, row in matrix.iterrows()
        }
        for worker, matrix in matrices.items()
    }


def _aggregate_single(project: Project, answers: list[Answer], method: str, gold: dict[int, list[Part]]) -> Outcome:
    from . import aggregation  # crowd-kit loads pandas and scikit-learn: only in workers

    data = _frame((a.item_id, a.annotator_id, a.parts[0][2]) for a in answers if a.parts)
    reason, scores = "", {}
    if method == "auto":
        truth = {item: parts[0][2] for item, parts in gold.items() if parts}
        selection = data
        if len(data) > 200_000:  # judge methods on the gold items' answers and a sample of the rest
            keep = set(truth) | set(data["task"].drop_duplicates().sample(20_000, random_state=0))
            selection = data[data["task"].isin(keep)]
        choice = aggregation.choose_method(selection, truth)
        method, reason, scores = choice.method, choice.reason, choice.scores
    result = aggregation.aggregate(data, method)
    confidence = result.confidence()
    consensus: dict[int, tuple[list[Part], float, dict]] = {
        int(task): (
            [(None, None, int(label))],
            float(confidence[task]),
            {str(k): round(float(v), 4) for k, v in result.posteriors.loc[task].items() if v > 0},
        )
        for task, label in result.labels.items()
    }
    return Outcome(
        method, reason, scores, consensus, {int(w): float(s) for w, s in result.skills.dropna().items()},
        _confusion_json(result.confusion),
    )  # fmt: skip


def _aggregate_multi(project: Project, answers: list[Answer], method: str) -> Outcome:
    from . import aggregation

    method = aggregation.FALLBACK if method == "auto" else method
    label_ids = list(project.labels.values_list("pk", flat=True))
    chosen: dict[int, list[Part]] = defaultdict(list)
    sureness: dict[int, list[float]] = defaultdict(list)
    posteriors: dict[int, dict[str, float]] = defaultdict(dict)
    skills: dict[int, list[float]] = defaultdict(list)
    for label in label_ids:
        data = _frame((a.item_id, a.annotator_id, int(any(p[2] == label for p in a.parts))) for a in answers)
        if data.empty:
            continue
        result = aggregation.aggregate(data, method)
        probability_yes = result.posteriors[1] if 1 in result.posteriors.columns else result.posteriors.iloc[:, 0] * 0
        for task, value in result.labels.items():
            if value == 1:
                chosen[int(task)].append((None, None, label))
            sureness[int(task)].append(float(result.posteriors.loc[task].max()))
            posteriors[int(task)][str(label)] = round(float(probability_yes.get(task, 0.0)), 4)
        for worker, skill in result.skills.dropna().items():
            skills[int(worker)].append(float(skill))
    consensus = {
        task: (chosen.get(task, []), min(sureness[task]), posteriors[task]) for task in {a.item_id for a in answers}
    }
    return Outcome(method, "", {}, consensus, {w: sum(v) / len(v) for w, v in skills.items()}, {})


def _aggregate_spans(project: Project, answers: list[Answer]) -> Outcome:
    from . import aggregation

    texts = dict(Item.objects.filter(pk__in={a.item_id for a in answers}).values_list("pk", "text"))
    tokens = {item_id: tokens_of(text) for item_id, text in texts.items()}
    rows, marked = [], defaultdict(set)
    tags_by_answer = {}
    for answer in answers:
        tags = bio(tokens[answer.item_id], answer.parts)
        tags_by_answer[id(answer)] = tags
        for index, tag in enumerate(tags):
            if tag != "O":
                marked[answer.item_id].add(index)
    for answer in answers:
        tags = tags_by_answer[id(answer)]
        for index in marked[answer.item_id]:
            rows.append((f"{answer.item_id}:{index}", answer.annotator_id, tags[index]))
    consensus: dict[int, tuple[list[Part], float, dict]] = {}
    skills: dict[int, float] = {}
    decided: dict[int, list[str]] = {item: ["O"] * len(tokens[item]) for item in tokens}
    sureness: dict[int, list[float]] = defaultdict(list)
    if rows:
        result = aggregation.aggregate(_frame(rows), aggregation.FALLBACK)
        confidence = result.confidence()
        for task, tag in result.labels.items():
            item_text, index_text = str(task).split(":")
            decided[int(item_text)][int(index_text)] = str(tag)
            sureness[int(item_text)].append(float(confidence[task]))
        skills = {int(w): float(s) for w, s in result.skills.dropna().items()}
    for item_id in tokens:
        sure = sureness.get(item_id, [])
        consensus[item_id] = (decode(tokens[item_id], decided[item_id]), sum(sure) / len(sure) if sure else 1.0, {})
    return Outcome("token Dawid-Skene", "", {}, consensus, skills, {})


def outcome_compute(project: Project, method: str) -> tuple[Outcome, list[Answer], dict[int, list[Part]]]:
    answers = _answers(project)
    gold = _gold(project)
    if project.task_type == TaskType.SINGLE_LABEL:
        outcome = _aggregate_single(project, answers, method, gold)
    elif project.task_type == TaskType.MULTI_LABEL:
        outcome = _aggregate_multi(project, answers, method)
    else:
        outcome = _aggregate_spans(project, answers)
    return outcome, answers, gold


def _write(project: Project, outcome: Outcome, answers: list[Answer], gold: dict[int, list[Part]]) -> int:
    """Store labels and qualities in one transaction; reviewer answers are left alone."""
    now = timezone.now()
    with transaction.atomic():
        reviewed = set(
            ItemConsensus.objects.filter(project=project, reviewed_at__isnull=False).values_list("item_id", flat=True)
        )
        complete = set(
            Item.objects.filter(
                project=project, annotation_count__gte=F("extra_annotations") + project.overlap
            ).values_list("pk", flat=True)
        )
        rows = []
        for item_id, (parts, confidence, posteriors) in outcome.consensus.items():
            if item_id in reviewed:
                continue
            method = outcome.method
            if item_id in gold:  # a gold item's label is known
                parts, confidence, posteriors, method = gold[item_id], 1.0, {}, "gold"
            rows.append(
                ItemConsensus(
                    project=project,
                    item_id=item_id,
                    parts=parts_json(parts),
                    confidence=confidence,
                    posteriors=posteriors,
                    method=method,
                    is_provisional=item_id not in complete,
                )
            )
        ItemConsensus.objects.bulk_create(
            rows,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["item"],
            update_fields=["parts", "confidence", "posteriors", "method", "is_provisional", "updated_at"],
        )
        Item.objects.filter(project=project, pk__in=complete, consolidated_at__isnull=True).update(consolidated_at=now)
        _qualities_write(project, outcome, answers)
        Project.objects.filter(pk=project.pk).update(pending_consolidation=0)
    return len(rows)


def _qualities_write(project: Project, outcome: Outcome, answers: list[Answer]) -> None:
    agreement: dict[int, list[float]] = defaultdict(list)
    for answer in answers:
        if answer.item_id in outcome.consensus:
            agreement[answer.annotator_id].append(
                answer_score(project.task_type, answer.parts, outcome.consensus[answer.item_id][0])
            )
    annotators = set(agreement) | set(outcome.skills)
    AnnotatorQuality.objects.bulk_create(
        [
            AnnotatorQuality(
                project=project,
                annotator_id=annotator_id,
                skill=outcome.skills.get(annotator_id),
                confusion=outcome.confusion.get(annotator_id, {}),
                agreement=(sum(agreement[annotator_id]) / len(agreement[annotator_id]))
                if agreement[annotator_id]
                else None,
                method=outcome.method,
            )
            for annotator_id in annotators
        ],
        update_conflicts=True,
        unique_fields=["project", "annotator"],
        update_fields=["skill", "confusion", "agreement", "method", "updated_at"],
    )


# --- runs ----------------------------------------------------------------------------------------


def consolidation_request(*, project: Project, method: str = "") -> ConsolidationRun:
    """Queue a full consolidation, unless one is queued or running already (that one is
    returned). A run left "running" by a worker that died is failed after 30 minutes."""
    ConsolidationRun.objects.filter(
        project=project, state=JobState.RUNNING, started_at__lt=timezone.now() - STALE_RUN
    ).update(state=JobState.FAILED, error="The worker stopped before finishing.", finished_at=timezone.now())
    try:
        with transaction.atomic():
            run = ConsolidationRun.objects.create(
                project=project, requested_method=method or project.consolidation_method
            )
    except IntegrityError:
        return ConsolidationRun.objects.get(project=project, state__in=[JobState.QUEUED, JobState.RUNNING])
    from .tasks import consolidation_run_task

    transaction.on_commit(lambda: consolidation_run_task.delay(run.pk))
    return run


def consolidation_run(*, run_id: int) -> ConsolidationRun | None:
    """Run a queued consolidation. A delivery that finds the run taken does nothing."""
    claimed = ConsolidationRun.objects.filter(pk=run_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=timezone.now()
    )
    run = ConsolidationRun.objects.select_related("project").filter(pk=run_id).first()
    if not claimed or run is None:
        return run
    try:
        from .quality import annotators_check
        from .reports import quality_gold_write, report_compute

        outcome, answers, gold = outcome_compute(run.project, run.requested_method)
        items = _write(run.project, outcome, answers, gold)
        quality_gold_write(run.project)
        annotators_check(project=run.project)
        run.report = report_compute(run.project, answers, outcome)
    except Exception as error:
        logger.exception("consolidation run %s failed", run_id)
        run.state, run.error = JobState.FAILED, f"{type(error).__name__}: {error}"
    else:
        run.state, run.method, run.choice_reason = JobState.SUCCEEDED, outcome.method, outcome.reason
        run.choice_scores = {k: (None if math.isnan(v) else round(v, 4)) for k, v in outcome.scores.items()}
        run.report["choice"]["scores"] = run.choice_scores
        run.items, run.annotations = items, len(answers)
    run.finished_at = timezone.now()
    run.save()
    return run


def consensus_override(*, item: Item, parts: list[Part], reviewer: User, note: str = "") -> ItemConsensus:
    """A reviewer's final answer for an item; no later consolidation changes it."""
    now = timezone.now()
    with transaction.atomic():
        consensus, _ = ItemConsensus.objects.update_or_create(
            item=item,
            defaults={
                "project_id": item.project_id,
                "parts": parts_json(parts),
                "confidence": 1.0,
                "posteriors": {},
                "method": "reviewer",
                "is_provisional": False,
                "reviewed_by": reviewer,
                "reviewed_at": now,
                "review_note": note[:500],
            },
        )
        Item.objects.filter(pk=item.pk, consolidated_at__isnull=True).update(consolidated_at=now)
    return consensus
