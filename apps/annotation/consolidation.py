"""The full consolidation pass, in a worker: from disagreeing answers to one label per item,
and what that teaches about each annotator.

After every ``consolidate_every`` answers, and on demand (``consensus.consolidation_request``),
a Celery task runs the project's method over all answers (``consolidation_run``): labels,
confidences and per-annotator skill and confusion matrices are rewritten together, with the
agreement report. Reviewer answers are never overwritten. This module loads crowd-kit
(pandas, scikit-learn) and only workers import it.

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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.projects.answers import Answer, LabelPart, answer_score, bio_decode, bio_tags, tokens_of
from apps.projects.jobs import JobState, job_beat, job_finish, job_held
from apps.projects.models import ConsolidationMethod, Item, Project, TaskType
from apps.projects.selectors import gold_answers
from platform.errors import error_for_people

from . import aggregation
from .consensus import GOLD_METHOD, Verdict
from .models import AnnotatorQuality, ConsolidationRun, ItemConsensus
from .quality import annotators_check
from .reports import quality_gold_write, report_compute
from .selectors import GivenAnswer, given_answers

logger = logging.getLogger(__name__)

# Items whose labels one transaction of the pass writes (and whose rows it locks).
WRITE_BATCH = 1000


@dataclass
class Outcome:
    method: str
    reason: str
    scores: dict[str, float]
    consensus: dict[int, Verdict]  # item id -> its verdict
    skills: dict[int, float]
    confusion: dict[int, dict[str, dict[str, float]]]


def _frame(rows: Iterable[tuple[Any, Any, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["task", "worker", "label"])


def _confusion_json(matrices: dict[Any, Any]) -> dict[int, dict[str, dict[str, float]]]:
    return {
        int(worker): {
            str(true): {str(given): round(float(p), 4) for given, p in row.items()} for true, row in matrix.iterrows()
        }
        for worker, matrix in matrices.items()
    }


def _aggregate_single(answers: list[GivenAnswer], method: str, gold: dict[int, Answer]) -> Outcome:
    data = _frame((a.item_id, a.annotator_id, a.answer.label_id) for a in answers if a.answer)
    reason, scores = "", {}
    if method == ConsolidationMethod.AUTO:
        truth = {item: answer.label_id for item, answer in gold.items() if answer}
        selection = data
        if len(data) > 200_000:  # judge methods on the gold items' answers and a sample of the rest
            keep = set(truth) | set(data["task"].drop_duplicates().sample(20_000, random_state=0))
            selection = data[data["task"].isin(keep)]
        choice = aggregation.choose_method(selection, truth)
        method, reason, scores = choice.method, choice.reason, choice.scores
    result = aggregation.aggregate(data, method)
    confidence = result.confidence()
    consensus = {
        int(task): Verdict(
            Answer([LabelPart(None, None, int(label))]),
            float(confidence[task]),
            {str(k): round(float(v), 4) for k, v in result.posteriors.loc[task].items() if v > 0},
        )
        for task, label in result.labels.items()
    }
    return Outcome(
        method, reason, scores, consensus, {int(w): float(s) for w, s in result.skills.dropna().items()},
        _confusion_json(result.confusion),
    )  # fmt: skip


def _aggregate_multi(project: Project, answers: list[GivenAnswer], method: str) -> Outcome:
    method = aggregation.FALLBACK if method == ConsolidationMethod.AUTO else method
    label_ids = list(project.labels.values_list("pk", flat=True))
    chosen: dict[int, list[LabelPart]] = defaultdict(list)
    sureness: dict[int, list[float]] = defaultdict(list)
    posteriors: dict[int, dict[str, float]] = defaultdict(dict)
    skills: dict[int, list[float]] = defaultdict(list)
    for label in label_ids:
        data = _frame((a.item_id, a.annotator_id, int(a.answer.has(label))) for a in answers)
        if data.empty:
            continue
        result = aggregation.aggregate(data, method)
        probability_yes = result.posteriors[1] if 1 in result.posteriors.columns else result.posteriors.iloc[:, 0] * 0
        for task, value in result.labels.items():
            if value == 1:
                chosen[int(task)].append(LabelPart(None, None, label))
            sureness[int(task)].append(float(result.posteriors.loc[task].max()))
            posteriors[int(task)][str(label)] = round(float(probability_yes.get(task, 0.0)), 4)
        for worker, skill in result.skills.dropna().items():
            skills[int(worker)].append(float(skill))
    consensus = {
        task: Verdict(Answer(chosen.get(task, [])), min(sureness[task]), posteriors[task])
        for task in {a.item_id for a in answers}
    }
    return Outcome(method, "", {}, consensus, {w: sum(v) / len(v) for w, v in skills.items()}, {})


def _aggregate_spans(answers: list[GivenAnswer]) -> Outcome:
    texts = dict(Item.objects.filter(pk__in={a.item_id for a in answers}).values_list("pk", "text"))
    tokens = {item_id: tokens_of(text) for item_id, text in texts.items()}
    rows, marked = [], defaultdict(set)
    tags_by_answer = {}
    for given in answers:
        tags = bio_tags(tokens[given.item_id], given.answer)
        tags_by_answer[id(given)] = tags
        for index, tag in enumerate(tags):
            if tag != "O":
                marked[given.item_id].add(index)
    for given in answers:
        tags = tags_by_answer[id(given)]
        for index in marked[given.item_id]:
            rows.append((f"{given.item_id}:{index}", given.annotator_id, tags[index]))
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
    consensus = {}
    for item_id in tokens:
        sure = sureness.get(item_id, [])
        consensus[item_id] = Verdict(
            bio_decode(tokens[item_id], decided[item_id]), sum(sure) / len(sure) if sure else 1.0, {}
        )
    return Outcome("token Dawid-Skene", "", {}, consensus, skills, {})


def outcome_compute(*, project: Project, method: str, answers: list[GivenAnswer], gold: dict[int, Answer]) -> Outcome:
    if project.task_type == TaskType.SINGLE_LABEL:
        return _aggregate_single(answers, method, gold)
    if project.task_type == TaskType.MULTI_LABEL:
        return _aggregate_multi(project, answers, method)
    return _aggregate_spans(answers)


def _write(project: Project, outcome: Outcome, answers: list[GivenAnswer], gold: dict[int, Answer]) -> int:
    """Store labels, then qualities; reviewer answers are left alone.

    Labels are written in batches, each its own short transaction that locks its items
    first, in id order, as a submit and a review do (item, then its consensus, then the
    project): the pass never holds a consensus row while it waits for an item, so it and
    the submits it runs beside cannot deadlock, and no submit waits for the whole pass.
    A pass that stops half-way is run again whole (the writes are upserts)."""
    now = timezone.now()
    complete = set(
        Item.objects.filter(
            project=project, annotation_count__gte=F("extra_annotations") + project.overlap
        ).values_list("pk", flat=True)
    )
    item_ids = sorted(set(outcome.consensus) | complete)
    written = 0
    for start in range(0, len(item_ids), WRITE_BATCH):
        batch = item_ids[start : start + WRITE_BATCH]
        with transaction.atomic():
            list(Item.objects.filter(pk__in=batch).order_by("pk").select_for_update().values_list("pk", flat=True))
            # Read under the item locks: a review that lands during the pass is kept.
            reviewed = set(
                ItemConsensus.objects.filter(item_id__in=batch, reviewed_at__isnull=False).values_list(
                    "item_id", flat=True
                )
            )
            rows = []
            for item_id in batch:
                verdict = outcome.consensus.get(item_id)
                if verdict is None or item_id in reviewed:
                    continue
                method = outcome.method
                if item_id in gold:  # a gold item's label is known
                    verdict, method = Verdict(gold[item_id], 1.0, {}), GOLD_METHOD
                rows.append(
                    verdict.row(project=project, item_id=item_id, method=method, is_provisional=item_id not in complete)
                )
            ItemConsensus.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["item"],
                update_fields=["parts", "confidence", "posteriors", "method", "is_provisional", "updated_at"],
            )
            Item.objects.filter(pk__in=[pk for pk in batch if pk in complete], consolidated_at__isnull=True).update(
                consolidated_at=now
            )
            written += len(rows)
    with transaction.atomic():
        _qualities_write(project, outcome, answers)
        Project.objects.filter(pk=project.pk).update(pending_consolidation=0)
    return written


def _qualities_write(project: Project, outcome: Outcome, answers: list[GivenAnswer]) -> None:
    agreement: dict[int, list[float]] = defaultdict(list)
    for given in answers:
        if given.item_id in outcome.consensus:
            agreement[given.annotator_id].append(
                answer_score(project.task_type, given.answer, outcome.consensus[given.item_id].answer)
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
            for annotator_id in sorted(annotators)
        ],
        update_conflicts=True,
        unique_fields=["project", "annotator"],
        update_fields=["skill", "confusion", "agreement", "method", "updated_at"],
    )


def consolidation_run(*, run_id: int) -> ConsolidationRun | None:
    """Run a queued consolidation (or resume one whose worker stopped). A delivery that
    finds the run taken or finished does nothing."""
    with job_held(model=ConsolidationRun, job_id=run_id) as run:
        if run is None:
            return ConsolidationRun.objects.filter(pk=run_id).first()
        return _consolidate(run)


def _consolidate(run: ConsolidationRun) -> ConsolidationRun:
    run_id, project = run.pk, run.project
    try:
        job_beat(run, stage="Reading the answers", progress=5)
        answers, gold = given_answers(project=project), gold_answers(project=project)
        job_beat(run, stage="Inferring labels", progress=20)
        outcome = outcome_compute(project=project, method=run.requested_method, answers=answers, gold=gold)
        job_beat(run, stage="Writing labels and qualities", progress=70)
        items = _write(project, outcome, answers, gold)
        quality_gold_write(project=project)
        annotators_check(project=project)
        job_beat(run, stage="Measuring agreement", progress=85)
        report = report_compute(
            project=project,
            answers=answers,
            choice={"method": outcome.method, "reason": outcome.reason, "scores": outcome.scores},
        )
    except Exception as error:
        # Library errors may name server paths: people see a reference, the log the traceback.
        message = error_for_people(error, logger=logger, job=f"Consolidation run {run_id}")
        return job_finish(run, state=JobState.FAILED, error=message)
    scores = {k: (None if math.isnan(v) else round(v, 4)) for k, v in outcome.scores.items()}
    report["choice"]["scores"] = scores
    return job_finish(
        run,
        state=JobState.SUCCEEDED,
        stage=f"Consolidated {items:,} items with {outcome.method}",
        method=outcome.method,
        choice_reason=outcome.reason,
        choice_scores=scores,
        report=report,
        items=items,
        annotations=len(answers),
    )
