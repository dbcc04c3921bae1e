"""The annotator workspace.

With JavaScript (static/js/annotate.js) the page shows the current item and holds the
next one, leased ahead, in a <template>: Enter swaps it in at once while the answer
is posted, and the reply brings the item after that. Without JavaScript the same
forms post normally and the page reloads with the next item.
"""

import json
import uuid
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import selectors as project_selectors
from apps.projects.models import ConsolidationMethod, Project
from apps.projects.rendering import markdown_to_html
from apps.projects.selectors import ANNOTATE, REVIEW
from apps.projects.services import membership_unblock
from apps.projects.values import InvalidValue, LabelIndex, LabelPart, value_parse
from apps.projects.views import answer_display

from . import reports as report_selectors
from . import selectors, services
from .consolidation import consensus_override, consolidation_request
from .models import Annotation, AnnotatorQuality, Assignment, AssignmentState, ItemConsensus


def _session_start(request: HttpRequest, project: Project) -> datetime:
    """When this browser session started labelling the project (kept in the session)."""
    key = f"annotate-since:{project.pk}"
    since = parse_datetime(request.session.get(key, "") or "")
    if since is None:
        since = timezone.now()
        request.session[key] = since.isoformat()
    return since


def _task_context(project: Project, labels: LabelIndex, assignment: Assignment) -> dict[str, Any]:
    # "after" keeps the model's guess out of sight until the annotator has answered, so it
    # cannot anchor them; it then shows beside their answer in the latest answers.
    suggestion = selectors.item_suggestion(item=assignment.item) if project.prelabel_mode == "show" else None
    suggested = (
        [
            LabelPart(p.get("start"), p.get("end"), p["label_id"])
            for p in suggestion.parts
            if p.get("label_id") in labels.by_id
        ]
        if suggestion
        else []
    )
    return {
        "project": project,
        "labels": labels.labels,
        "assignment": assignment,
        "item": assignment.item,
        "submission_id": uuid.uuid4(),
        "suggestion": suggestion,
        "suggested_labels": [labels.by_id[p.label_id] for p in suggested if p.start is None],
        "suggested_spans": [
            {"start": p.start, "end": p.end, "label_id": p.label_id} for p in suggested if p.start is not None
        ],
        "selected_ids": set(),
        "spans": [],
    }


def _render_task(request: HttpRequest, project: Project, labels: LabelIndex, assignment: Assignment | None) -> str:
    if assignment is None:
        return ""
    return render_to_string("annotation/partials/task.html", _task_context(project, labels, assignment), request)


def _held_ids(request: HttpRequest) -> tuple[int, ...]:
    held = []
    for raw in request.POST.getlist("holding"):
        try:
            held.append(int(raw))
        except ValueError:
            continue
    return tuple(held)


@login_required
@require_GET
def workspace(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    since = _session_start(request, project)
    current: Assignment | None = None
    if request.GET.get("assignment"):
        chosen = services.assignment_get(
            project=project, annotator=request.user, assignment_id=request.GET["assignment"]
        )
        if chosen.state in (AssignmentState.LEASED, AssignmentState.EXPIRED):
            current = chosen
    first = (
        services.NextTask(current)
        if current
        else services.task_next_for_annotator(project=project, annotator=request.user)
    )
    ahead = None
    if first.assignment is not None:
        ahead = services.task_next_for_annotator(
            project=project, annotator=request.user, exclude_assignment_ids=(first.assignment.pk,)
        ).assignment
    context = {
        "project": project,
        "labels": labels.labels,
        "task": _task_context(project, labels, first.assignment) if first.assignment else None,
        "no_task": first,
        "ahead_html": _render_task(request, project, labels, ahead),
        "progress": selectors.annotator_progress(project=project, annotator=request.user, since=since),
        "recent": _recent(project, request.user, labels),
        "instructions_html": markdown_to_html(project.instructions),
    }
    return render(request, "annotation/workspace.html", context)


def _recent(project: Project, annotator: Any, labels: LabelIndex) -> list[dict[str, Any]]:
    rows = selectors.recent_annotations(project=project, annotator=annotator)
    recent_ids = {annotation.pk for annotation in rows}
    recent = []
    for annotation in rows:
        parts = selectors.annotation_parts(annotation)
        suggestion = selectors.item_suggestion(item=annotation.item) if project.prelabel_mode == "after" else None
        recent.append(
            {
                "annotation": annotation,
                "labels": [labels.by_id[p.label_id] for p in parts if p.start is None],
                "span_count": sum(1 for p in parts if p.start is not None),
                "editable": services.annotation_is_editable(annotation, recent_ids),
                "model": [
                    labels.by_id[p["label_id"]]
                    for p in (suggestion.parts if suggestion else [])
                    if p["label_id"] in labels.by_id
                ],
            }
        )
    return recent


def submitted_value(request: HttpRequest, project: Project) -> Any:
    """The answer as the workspace form sends it: label ids, or spans as JSON."""
    if project.is_spans:
        try:
            return json.loads(request.POST.get("spans") or "[]")
        except json.JSONDecodeError:
            raise ValidationError({"value": "The spans could not be read; reload the page."}) from None
    ids = []
    for raw in request.POST.getlist("label"):
        try:
            ids.append(int(raw))
        except ValueError:
            raise ValidationError({"value": "Choose labels from the list."}) from None
    if not ids:
        raise ValidationError({"value": "Choose a label first."})
    return ids if project.task_type == "multi_label" else ids[0] if len(ids) == 1 else ids


def _workspace_reply(request: HttpRequest, project: Project, labels: LabelIndex, extra: dict[str, Any]) -> JsonResponse:
    """What the workspace script needs after a submit or skip: the item to hold next,
    progress and the recent answers."""
    since = _session_start(request, project)
    ahead = services.task_next_for_annotator(
        project=project, annotator=request.user, exclude_assignment_ids=_held_ids(request)
    )
    return JsonResponse(
        {
            **extra,
            "next_html": _render_task(request, project, labels, ahead.assignment),
            "no_task_message": ahead.message,
            "progress": selectors.annotator_progress(project=project, annotator=request.user, since=since),
            "recent_html": render_to_string(
                "annotation/partials/recent.html",
                {"project": project, "recent": _recent(project, request.user, labels)},
                request,
            ),
        }
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def submit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    assignment_id = request.POST.get("assignment")
    try:
        result = services.annotation_submit(
            project=project,
            annotator=request.user,
            assignment_id=assignment_id,
            value=submitted_value(request, project),
            submission_id=request.POST.get("submission_id"),
            duration_ms=request.POST.get("duration_ms"),
        )
    except (ValidationError, services.SubmitRefused) as error:
        message = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        if _wants_json(request):
            return JsonResponse({"saved": False, "message": message, "assignment": assignment_id}, status=422)
        messages.error(request, f"Not saved: {message}")
        return redirect(f"{reverse('annotation:workspace', args=[project.pk])}?assignment={assignment_id}")
    if _wants_json(request):
        return _workspace_reply(
            request,
            project,
            labels,
            {"saved": True, "annotation": result.annotation.pk, "repeated": not result.created},
        )
    messages.success(request, "Saved.")
    return redirect("annotation:workspace", project_id=project.pk)


@login_required
@require_POST
def skip(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    try:
        services.assignment_skip(
            project=project,
            annotator=request.user,
            assignment_id=request.POST.get("assignment"),
            reason=request.POST.get("reason", ""),
        )
    except services.SubmitRefused as error:
        if _wants_json(request):
            return JsonResponse({"skipped": False, "message": str(error)}, status=422)
        messages.error(request, str(error))
        return redirect("annotation:workspace", project_id=project.pk)
    if _wants_json(request):
        return _workspace_reply(request, project, labels, {"skipped": True})
    return redirect("annotation:workspace", project_id=project.pk)


@login_required
@require_http_methods(["GET", "POST"])
def annotation_edit(request: HttpRequest, project_id: int, annotation_id: int) -> HttpResponse:
    """Go back to one of the annotator's latest answers and change it."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    annotation = selectors.annotation_get(project=project, annotator=request.user, annotation_id=annotation_id)
    if request.method == "POST":
        try:
            services.annotation_update(
                project=project,
                annotator=request.user,
                annotation_id=annotation.pk,
                value=submitted_value(request, project),
            )
        except (ValidationError, services.SubmitRefused) as error:
            messages.error(request, " ".join(error.messages) if isinstance(error, ValidationError) else str(error))
        else:
            messages.success(request, f"Your answer on item {annotation.item_id} was changed.")
            return redirect("annotation:workspace", project_id=project.pk)
    parts = selectors.annotation_parts(annotation)
    recent_ids = services.recent_annotation_ids(project=project, annotator=request.user)
    context = {
        "project": project,
        "labels": labels.labels,
        "annotation": annotation,
        "item": annotation.item,
        "editable": services.annotation_is_editable(annotation, recent_ids),
        "selected_ids": {p.label_id for p in parts if p.start is None},
        "spans": [{"start": p.start, "end": p.end, "label_id": p.label_id} for p in parts if p.start is not None],
    }
    return render(request, "annotation/edit.html", context)


# --- reports and review (reviewers and managers) ---------------------------------------------


def _heat_colour(value: float | None) -> str:
    """Red (disagree) to green (agree) for a kappa; grey where it is undefined."""
    if value is None:
        return "#f1f5f9"
    hue = max(0.0, min(1.0, (value + 0.2) / 1.2)) * 130
    return f"hsl({hue:.0f} 70% 85%)"


def _percentages(rows: list[dict[str, Any]], key: str) -> list[float | None]:
    return [None if row[key] is None else round(100 * row[key], 1) for row in rows]


def _report_charts(rows: list[dict[str, Any]], histogram: list[int]) -> dict[str, Any]:
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


@login_required
@require_GET
def reports(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    run = report_selectors.latest_run(project=project)
    rows = report_selectors.annotator_rows(project=project)
    histogram = report_selectors.confidence_histogram(project=project)
    heatmap = (run.report.get("heatmap") if run else None) or None
    if heatmap:
        heatmap = {
            "annotators": heatmap["annotators"],
            "rows": [
                [
                    {"value": value, "shared": shared, "colour": _heat_colour(value)}
                    for value, shared in zip(values, counts, strict=True)
                ]
                for values, counts in zip(heatmap["kappa"], heatmap["shared"], strict=True)
            ],
        }
    context = {
        "project": project,
        "run": run,
        "active": report_selectors.active_run(project=project),
        "report": run.report if run else {},
        "heatmap": heatmap,
        "rows": rows,
        "charts": _report_charts(rows, histogram),
        "disagreements": report_selectors.disagreements(project=project)[:25],
        "method_titles": {name: title for name, title in ConsolidationMethod.choices},
    }
    return render(request, "annotation/reports.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def consolidate(request: HttpRequest, project_id: int) -> HttpResponse:
    """POST: queue a full consolidation now. GET (htmx): the run's status, polled."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    if request.method == "POST":
        consolidation_request(project=project, method=request.POST.get("method", ""))
        if not request.htmx:
            messages.success(request, "Consolidation is queued; the report updates when it finishes.")
            return redirect("annotation:reports", project_id=project.pk)
    context = {
        "project": project,
        "active": report_selectors.active_run(project=project),
        "run": report_selectors.latest_run(project=project),
    }
    return render(request, "annotation/reports.html#run-status", context)


@login_required
@require_http_methods(["GET", "POST"])
def review(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    """Every answer an item got, its consensus, and the reviewer's final say."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    item = project_selectors.item_get(project=project, item_id=item_id)
    labels = LabelIndex.for_project(project)
    if request.method == "POST":
        try:
            if request.POST.get("annotation"):
                chosen = Annotation.objects.get(project=project, item=item, pk=int(request.POST["annotation"]))
                parts = [(p.start, p.end, p.label_id) for p in selectors.annotation_parts(chosen)]
                note = f"Took {chosen.annotator.get_username()}'s answer. {request.POST.get('note', '')}".strip()
            else:
                value = submitted_value(request, project)
                parsed = value_parse(project=project, labels=labels, raw=value, text=item.text)
                parts, note = [(p.start, p.end, p.label_id) for p in parsed], request.POST.get("note", "")
        except (ValidationError, InvalidValue, Annotation.DoesNotExist, ValueError) as error:
            messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
        else:
            consensus_override(item=item, parts=parts, reviewer=request.user, note=note)
            messages.success(request, f"Item {item.pk} now has your final answer; consolidation will keep it.")
            following = report_selectors.item_next_disagreement(project=project, after=item)
            if following is not None and request.POST.get("then") == "next":
                return redirect("annotation:review", project_id=project.pk, item_id=following.item_id)
            return redirect("annotation:review", project_id=project.pk, item_id=item.pk)
    consensus = ItemConsensus.objects.filter(item=item).select_related("reviewed_by").first()
    current = report_selectors.consensus_parts(consensus)
    quality = {q.annotator_id: q for q in AnnotatorQuality.objects.filter(project=project)}
    answers = []
    for row in project_selectors.item_annotations(item=item):
        annotation = row["annotation"]
        answers.append(
            {
                **row,
                "display": answer_display(project, labels, row["parts"], item.text),
                "quality": quality.get(annotation.annotator_id),
                "agrees": consensus is not None
                and set(map(tuple, ((p.start, p.end, p.label_id) for p in row["parts"]))) == set(current),
            }
        )
    following = report_selectors.item_next_disagreement(project=project, after=item)
    context = {
        "project": project,
        "item": item,
        "labels": labels.labels,
        "answers": answers,
        "consensus": consensus,
        "consensus_display": answer_display(project, labels, [LabelPart(*p) for p in current], item.text)
        if consensus
        else None,
        "selected_ids": {p[2] for p in current if p[0] is None},
        "spans": [{"start": s, "end": e, "label_id": label} for s, e, label in current if s is not None],
        "next_item": following,
    }
    return render(request, "annotation/review.html", context)


@login_required
@require_POST
def unblock(request: HttpRequest, project_id: int, membership_id: int) -> HttpResponse:
    """Reviewers (and managers) can lift an automatic block after reading its reason."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    membership = project_selectors.membership_get(project=project, membership_id=membership_id)
    membership_unblock(membership=membership)
    messages.success(request, f"{membership.user.get_username()} is unblocked; earlier gold answers no longer count.")
    return redirect("annotation:reports", project_id=project.pk)
