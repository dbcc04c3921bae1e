"""The annotation app's data shaped for templates and charts (Chart.js configurations):
the overview's sections, the reports' charts and heat map."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.template.defaultfilters import pluralize
from django.utils import timezone

from apps.projects.answers import Answer, LabelIndex
from apps.projects.models import Item, Membership, PrelabelMode, Project, Role
from apps.projects.presentation import answer_display
from apps.projects.rendering import markdown_to_html
from apps.projects.selectors import ANNOTATE, REVIEW

from . import payments, qualification, selectors, services
from .feedback import item_feedback_list
from .models import Assignment, FeedbackKind, ItemConsensus, PracticeAnswer, Suggestion
from .qualification import (
    crowd_notices,
    practice_number,
    practice_progress,
    practice_truth,
    qualification_results,
    qualification_state,
)


def task_context(*, project: Project, labels: LabelIndex, assignment: Assignment) -> dict[str, Any]:
    """One item to label, as the workspace's task partial shows it, with its pre-label.
    Prelabel mode "after" keeps the model's guess out of sight until the annotator has
    answered, so it cannot anchor them; it then shows beside their answer in the latest
    answers."""
    suggestion = selectors.item_suggestion(item=assignment.item) if project.prelabel_mode == PrelabelMode.SHOW else None
    suggested = selectors.suggestion_answer(suggestion, labels.by_id)
    return {
        "suggestion_acceptable": suggestion_acceptable(project, suggestion),
        "feedback_kinds": FeedbackKind.choices,
        "project": project,
        "labels": labels.labels,
        "assignment": assignment,
        "item": assignment.item,
        "submission_id": uuid.uuid4(),
        "suggestion": suggestion,
        "suggested_labels": [labels.by_id[p.label_id] for p in suggested if not p.is_span],
        "suggested_spans": spans_json(suggested),
        "selected_ids": set(),
        "spans": [],
    }


# Prolific takes a participant back to the study with this address and the completion code.
PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete?cc="


def completion_context(
    *, project: Project, annotator: User, membership: Membership | None, leaving: bool
) -> dict[str, Any]:
    """The completion page: a person who joined through a link sees its completion code
    once they have labelled their most (``max_items_per_annotator``), when nothing is left
    for them, or when they say they are leaving."""
    link = membership.join_link if membership is not None else None
    answered = selectors.answers_given(project=project, annotator=annotator)
    limit = project.max_items_per_annotator
    reached_limit = limit is not None and answered >= limit
    work_left = selectors.work_left_for(project=project, annotator=annotator)
    finished = reached_limit or not work_left
    show_code = link is not None and (finished or leaving)
    return {
        "link": link,
        "answered": answered,
        "limit": limit,
        "reached_limit": reached_limit,
        "work_left": work_left,
        "finished": finished,
        "code": link.completion_code if show_code and link is not None else "",
        "platform_url": PROLIFIC_COMPLETE_URL + link.completion_code
        if show_code and link is not None and link.worker_id_param == "PROLIFIC_PID"
        else "",
    }


def no_task_message(next_task: services.NextTask, progress: dict[str, Any]) -> str:
    """Why there is no item for the annotator; when they have done their part, that the
    rest of the project waits for other people (its answers still needed are not theirs)."""
    message = next_task.message
    still = progress["project_still"]
    if next_task.reason == services.NoTask.DONE and still:
        message += f" The project's other {still:,} answer{pluralize(still)} must come from other people."
    return message


def suggestion_acceptable(project: Project, suggestion: Suggestion | None) -> bool:
    """Whether a suggestion may be taken with one key: only at or above the project's floor
    (suggestion_min_confidence). Below it, or with no confidence to compare while a floor
    is set, it shows as a hint the annotator must act on label by label."""
    if suggestion is None:
        return False
    floor = project.suggestion_min_confidence
    if suggestion.confidence is None:
        return floor <= 0
    return suggestion.confidence >= floor


def spans_json(answer: Answer) -> list[dict[str, Any]]:
    """An answer's spans as the workspace script takes them."""
    return [part.to_json() for part in answer if part.is_span]


def recent_answers(*, project: Project, annotator: User, labels: LabelIndex) -> list[dict[str, Any]]:
    """The annotator's latest answers, with whether each may still change and, in prelabel
    mode "after", the model's guess beside it."""
    rows = selectors.recent_annotations(project=project, annotator=annotator)
    recent_ids = {annotation.pk for annotation in rows}
    recent = []
    for annotation in rows:
        answer = selectors.annotation_answer(annotation)
        suggestion = (
            selectors.item_suggestion(item=annotation.item) if project.prelabel_mode == PrelabelMode.AFTER else None
        )
        recent.append(
            {
                "annotation": annotation,
                "labels": [labels.by_id[p.label_id] for p in answer if not p.is_span],
                "span_count": sum(1 for p in answer if p.is_span),
                "editable": services.annotation_is_editable(annotation=annotation, recent_ids=recent_ids),
                "model": [
                    labels.by_id[label_id]
                    for label_id in selectors.suggestion_answer(suggestion, labels.by_id).label_ids
                ],
            }
        )
    return recent


def qualification_context(*, project: Project, annotator: User, labels: LabelIndex) -> dict[str, Any]:
    """The test page: the next item of the attempt under way, or where the person stands.
    Never the right answers, nor a model's suggestion: the test measures the person."""
    state = qualification_state(project=project, annotator=annotator)
    return {
        "project": project,
        "labels": labels.labels,
        "state": state,
        "percent_done": round(100 * (state.position - 1) / state.size) if state.item and state.size else 0,
        "score_percent": _percent(state.latest.score if state.latest else None),
        "pass_percent": _percent(project.qualification_pass_mark),
        "instructions_html": markdown_to_html(project.instructions),
    }


def practice_context(*, project: Project, annotator: User, labels: LabelIndex, item: Item) -> dict[str, Any]:
    """A practice item to answer (its answer shows once they have answered)."""
    done, total = practice_progress(project=project, annotator=annotator)
    return {
        "project": project,
        "labels": labels.labels,
        "item": item,
        "position": done + 1,
        "total": total,
        "instructions_html": markdown_to_html(project.instructions),
    }


def practice_feedback_context(*, project: Project, labels: LabelIndex, practice: PracticeAnswer) -> dict[str, Any]:
    """After a practice answer: whether it was right, the right answer beside theirs, and
    what the labels involved mean (their descriptions, then the instructions)."""
    item, given = practice.item, practice.parts
    truth = practice_truth(project=project, practice=practice)
    involved = {*truth.label_ids, *given.label_ids}
    _, total = practice_progress(project=project, annotator=practice.annotator)
    return {
        "project": project,
        "item": item,
        "practice": practice,
        "verdict": "right" if practice.score >= 1 else "partly" if practice.score > 0 else "wrong",
        "score_percent": _percent(practice.score),
        "given": answer_display(project, labels, given.only_labels(labels.by_id), item.text),
        "truth": answer_display(project, labels, truth, item.text),
        "explained": [label for label in labels.labels if label.pk in involved and label.description],
        "position": practice_number(project=project, practice=practice),
        "total": total,
        "instructions_html": markdown_to_html(project.instructions),
    }


def members_sections(*, project: Project) -> dict[str, Any]:
    """What the members page shows of the test and training: each annotator's test result
    by user id, and what the manager should know about the settings."""
    return {"member_tests": qualification_results(project=project), "crowd_notices": crowd_notices(project=project)}


def _percent(share: float | None) -> int | None:
    return None if share is None else round(100 * share)


def review_context(*, project: Project, item: Item, labels: LabelIndex) -> dict[str, Any]:
    """Every answer an item got, beside its consensus and each annotator's quality."""
    consensus = selectors.consensus_get(item=item)
    current = consensus.parts if consensus is not None else Answer()
    quality = selectors.qualities(project=project)
    answers = [
        {
            **row,
            "display": answer_display(project, labels, row["answer"], item.text),
            "quality": quality.get(row["annotation"].annotator_id),
            "agrees": consensus is not None and row["answer"] == current,
        }
        for row in selectors.item_annotations(item=item)
    ]
    return {
        "project": project,
        "item": item,
        "labels": labels.labels,
        "answers": answers,
        "consensus": consensus,
        "consensus_display": answer_display(project, labels, current, item.text) if consensus else None,
        "selected_ids": {p.label_id for p in current if not p.is_span},
        "spans": spans_json(current),
        "next_item": selectors.item_next_disagreement(project=project, after=item),
        "feedback": item_feedback_list(item=item),
    }


# What an annotator's home says of a project where the test or practice comes first, and
# the button that leads there (None: nothing to open).
HOME_STEPS = {
    qualification.Stage.TEST: ("Take the qualification test to start.", "Take the test"),
    qualification.Stage.NOT_QUALIFIED: ("You did not pass the qualification test, so no items come to you here.", None),
    qualification.Stage.TRAINING: ("Finish your practice items to start the real work.", "Practise"),
}


@dataclass(frozen=True)
class HomeStatus:
    """What stands between an annotator and the next item, and the button to it."""

    note: str = ""
    action: str | None = "Start labelling"
    blocked: bool = False


def annotator_home(*, user: User, projects: Iterable[Project]) -> dict[str, Any]:
    """The annotator's side of the projects list, for each project where they annotate:
    their answers, gold accuracy and earnings (pay_rows over all time: what the payments
    page says of them), the items still open to them, their limit, what stands in their
    way (a block, the test, practice), and the instructions."""
    rows: list[dict[str, Any]] = []
    for project in projects:
        if project.user_role != Role.ANNOTATOR:
            continue
        pay = next(iter(payments.pay_rows(project=project, annotator=user)), None)
        progress = selectors.annotator_progress(project=project, annotator=user, since=None)
        status = _home_status(project, user, progress)
        left = 0 if status.blocked else selectors.items_left_for(project=project, annotator=user)
        if not left and not status.note:
            status = HomeStatus("Nothing is left for you here now; the rest waits for other people's answers.", None)
        rows.append(
            {
                "project": project,
                "progress": progress,
                "pay": pay,
                "earned": pay.amount if pay is not None else Decimal(0),
                "left": left,
                "status": status,
                "instructions_html": markdown_to_html(project.instructions),
            }
        )
    return {"my_work": rows, "my_work_ids": {row["project"].pk for row in rows}}


def _home_status(project: Project, user: User, progress: dict[str, Any]) -> HomeStatus:
    membership = Membership.objects.filter(project=project, user=user).only("is_blocked", "blocked_reason").first()
    if membership is not None and membership.is_blocked:
        why = membership.blocked_reason.rstrip(". ") or "ask its manager why"
        return HomeStatus(f"You are blocked in this project: {why}.", None, blocked=True)
    stage = qualification.crowd_stage(project=project, annotator=user)
    if stage in HOME_STEPS:
        note, action = HOME_STEPS[stage]
        return HomeStatus(note, action, blocked=action is None)
    if progress["quota"] is not None and not progress["quota_left"]:
        return HomeStatus("You have given as many answers as one person may here. Thank you!", None, blocked=True)
    return HomeStatus(action="Go on labelling" if progress["total"] else "Start labelling")


def overview_sections(*, project: Project, user: User) -> dict[str, Any]:
    """What the project overview shows of annotation, for the viewer's role: their own
    progress (annotators), the answers per day, the annotators' table and the budget
    (managers and reviewers)."""
    context: dict[str, Any] = {}
    if project.user_role in ANNOTATE:
        context["my_progress"] = selectors.annotator_progress(project=project, annotator=user, since=None)
    if project.user_role in REVIEW:
        stats = selectors.annotator_stats(project=project)
        context.update(
            per_day_chart=per_day_chart(selectors.annotations_per_day(project=project)),
            annotations_total=sum(row["count"] for row in stats),
            annotator_stats=stats,
            budget=selectors.budget_summary(project=project),
        )
    return context


def per_day_chart(per_day: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": {
            "labels": [row["day"].strftime("%d %b") for row in per_day],
            "datasets": [{"label": "Annotations", "data": [row["n"] for row in per_day], "backgroundColor": "#6366f1"}],
        },
        "options": {
            "plugins": {"legend": {"display": False}},
            "scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}, "x": {"grid": {"display": False}}},
        },
    }


def heat_colour(value: float | None) -> str:
    """Red (disagree) to green (agree) for a kappa; grey where it is undefined."""
    if value is None:
        return "#f1f5f9"
    hue = max(0.0, min(1.0, (value + 0.2) / 1.2)) * 130
    return f"hsl({hue:.0f} 70% 85%)"


def _percentages(rows: list[dict[str, Any]], key: str) -> list[float | None]:
    return [None if row[key] is None else round(100 * row[key], 1) for row in rows]


def report_charts(rows: list[dict[str, Any]], histogram: list[int]) -> dict[str, Any]:
    percent_axis = {"min": 0, "max": 100, "title": {"display": True, "text": "%"}}
    count_axis = {"beginAtZero": True, "ticks": {"precision": 0}}
    return {
        "quality": {
            "data": {
                "labels": [row["username"] for row in rows],
                "datasets": [
                    {
                        "label": "Gold accuracy",
                        "data": _percentages(rows, "gold_accuracy"),
                        "backgroundColor": "#f59e0b",
                    },
                    {
                        "label": "Agreement with consensus",
                        "data": _percentages(rows, "agreement"),
                        "backgroundColor": "#6366f1",
                    },
                ],
            },
            "options": {"indexAxis": "y", "scales": {"x": percent_axis}},
        },
        "confidence": {
            "data": {
                "labels": [f"{10 * i}–{10 * (i + 1)}%" for i in range(len(histogram))],
                "datasets": [{"label": "Items", "data": histogram, "backgroundColor": "#22c55e"}],
            },
            "options": {"plugins": {"legend": {"display": False}}, "scales": {"y": count_axis}},
        },
    }


def heatmap_cells(heatmap: dict[str, Any] | None) -> dict[str, Any] | None:
    """The pairwise-kappa heat map of a consolidation report, with a colour per cell."""
    if not heatmap:
        return None
    return {
        "annotators": heatmap["annotators"],
        "rows": [
            [
                {"value": value, "shared": shared, "colour": heat_colour(value)}
                for value, shared in zip(values, counts, strict=True)
            ]
            for values, counts in zip(heatmap["kappa"], heatmap["shared"], strict=True)
        ],
    }


def pay_context(*, project: Project, start: date | None, end: date | None, valid: bool = True) -> dict[str, Any]:
    """The payments page: a row per person, the totals, and, over all time, whether the
    paid answers match the budget spent (they do unless answers were deleted)."""
    rows = payments.pay_rows(project=project, start=start, end=end) if valid else []
    total = payments.pay_total(rows)
    all_time = valid and start is None and end is None
    query = urlencode({key: value.isoformat() for key, value in (("start", start), ("end", end)) if value})
    return {
        "rows": rows,
        "total": total,
        "all_time": all_time,
        "budget_spent": project.budget_spent,
        "budget_cost": project.budget_spent * project.price_per_annotation,
        "matches_budget": total.answers == project.budget_spent,
        "period_query": query,
        "shortcuts": pay_periods(timezone.localdate()),
    }


def pay_periods(today: date) -> list[dict[str, str]]:
    """Periods a payer often wants: this month, last month, the last 7 days, all time."""
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    periods = [
        ("This month", first, today),
        ("Last month", last_month_end.replace(day=1), last_month_end),
        ("Last 7 days", today - timedelta(days=6), today),
    ]
    shortcuts = [
        {"name": name, "query": urlencode({"start": a.isoformat(), "end": b.isoformat()})} for name, a, b in periods
    ]
    return [*shortcuts, {"name": "All time", "query": ""}]


def answer_name(project: Project, labels: LabelIndex, answer: Answer, text: str) -> str:
    """An answer in a few words: its labels in the ontology's order, or its spans with their text."""
    if project.is_spans:
        spans = [f"{labels.by_id[p.label_id].name} “{text[p.start : p.end]}”" for p in answer if p.is_span]
        return ", ".join(spans) or "No entities"
    chosen = sorted((labels.by_id[p.label_id] for p in answer), key=lambda label: (label.order, label.pk))
    return " + ".join(label.name for label in chosen) or "No label"


def disagreement_rows(*, project: Project, rows: list[ItemConsensus], labels: LabelIndex) -> list[dict[str, Any]]:
    """Items waiting for a reviewer, each with how its answers split ("Sports 2 · World 1",
    the most given first) and its consensus as it stands."""
    splits = selectors.answer_splits(item_ids=[row.item_id for row in rows])
    shown = []
    for row in rows:
        current = row.parts.only_labels(labels.by_id)
        named = [
            (answer_name(project, labels, answer, row.item.text), n, answer)
            for answer, n in splits.get(row.item_id, {}).items()
        ]
        shown.append(
            {
                "consensus": row,
                "consensus_name": answer_name(project, labels, current, row.item.text),
                "split": [
                    {"name": name, "count": n, "is_consensus": answer == current}
                    for name, n, answer in sorted(named, key=lambda each: (-each[1], each[0]))
                ],
            }
        )
    return shown


def items_consensus(*, project: Project, items: list[Item], labels: LabelIndex) -> dict[int, dict[str, Any]]:
    """The items list's consensus column: per item, its consensus row and its answer (the
    labels, or for entity spans how many)."""
    found = selectors.consensus_of(item_ids=[item.pk for item in items])
    return {
        item_id: {"consensus": row, "consensus_answer": _short_answer(project, labels, row.parts)}
        for item_id, row in found.items()
    }


def _short_answer(project: Project, labels: LabelIndex, answer: Answer) -> dict[str, Any]:
    known = answer.only_labels(labels.by_id)
    if project.is_spans:
        return {"spans": len(known)}
    return {"labels": sorted((labels.by_id[p.label_id] for p in known), key=lambda label: (label.order, label.pk))}


def item_consensus(*, project: Project, item: Item, labels: LabelIndex) -> dict[str, Any]:
    """The item page's consensus card: the consensus or the reviewer's final answer, its
    method and confidence, who settled it; and the suggestion annotators see."""
    consensus = selectors.consensus_get(item=item)
    suggestion = selectors.item_suggestion(item=item)
    return {
        "consensus": consensus,
        "consensus_display": (
            answer_display(project, labels, consensus.parts.only_labels(labels.by_id), item.text) if consensus else None
        ),
        "suggestion": suggestion,
        "suggestion_display": (
            answer_display(project, labels, selectors.suggestion_answer(suggestion, labels.by_id), item.text)
            if suggestion
            else None
        ),
    }
