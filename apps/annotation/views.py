"""The annotator workspace, the reports and review pages, and exports.

With JavaScript (static/js/annotate.js) the workspace shows the current item and holds
the next one, leased ahead, in a <template>: Enter swaps it in at once while the answer
is posted, and the reply brings the item after that. Without JavaScript the same forms
post normally and the page reloads with the next item.
"""

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import selectors as project_selectors
from apps.projects.answers import LabelIndex
from apps.projects.models import ConsolidationMethod, Project
from apps.projects.rendering import markdown_to_html
from apps.projects.selectors import ANNOTATE, MANAGE, REVIEW
from apps.projects.services import membership_unblock
from platform.errors import Conflict
from platform.html import AuthenticatedRequest, refusal_json, refusal_message, render_page

from . import consensus, payments, presentation, selectors, services
from .exports import ExportError, export_formats_for, export_response, payments_response
from .feedback import item_feedback_send
from .forms import ExportOptionsForm, PayPeriodForm, held_assignment_ids, submitted_value
from .models import Annotation, Assignment, AssignmentState

# Where the labelling page sends someone whom task distribution gives no item yet.
CROWD_STEPS = {
    services.NoTask.QUALIFICATION: "annotation:qualification",
    services.NoTask.NOT_QUALIFIED: "annotation:qualification",
    services.NoTask.TRAINING: "annotation:practice",
}


def _session_start(request: AuthenticatedRequest, project: Project) -> datetime:
    """When this browser session started labelling the project (kept in the session)."""
    key = f"annotate-since:{project.pk}"
    since = parse_datetime(request.session.get(key, "") or "")
    if since is None:
        since = timezone.now()
        request.session[key] = since.isoformat()
    return since


def _render_task(
    request: AuthenticatedRequest, project: Project, labels: LabelIndex, assignment: Assignment | None
) -> str:
    if assignment is None:
        return ""
    context = presentation.task_context(project=project, labels=labels, assignment=assignment)
    return render_to_string("annotation/partials/task.html", context, request)


@login_required
@require_GET
def workspace(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    since = _session_start(request, project)
    current: Assignment | None = None
    if request.GET.get("assignment"):
        chosen = selectors.assignment_get(
            project=project, annotator=request.user, assignment_id=request.GET["assignment"]
        )
        if chosen.state in (AssignmentState.LEASED, AssignmentState.EXPIRED):
            current = chosen
    first = (
        services.NextTask(current)
        if current
        else services.task_next_for_annotator(project=project, annotator=request.user, labels=labels)
    )
    # A newcomer takes the qualification test, then practises, before real work.
    if first.reason in CROWD_STEPS:
        return redirect(CROWD_STEPS[first.reason], project_id=project.pk)
    ahead = None
    if first.assignment is not None:
        ahead = services.task_next_for_annotator(
            project=project, annotator=request.user, exclude_assignment_ids=(first.assignment.pk,), labels=labels
        ).assignment
    progress = selectors.annotator_progress(project=project, annotator=request.user, since=since)
    context = {
        "project": project,
        "labels": labels.labels,
        "task": presentation.task_context(project=project, labels=labels, assignment=first.assignment)
        if first.assignment
        else None,
        "no_task": first,
        "no_task_message": presentation.no_task_message(first, progress),
        "ahead_html": _render_task(request, project, labels, ahead),
        "progress": progress,
        "recent": presentation.recent_answers(project=project, annotator=request.user, labels=labels),
        "instructions_html": markdown_to_html(project.instructions),
        # People who came through a join link may finish and take its completion code.
        "membership": project_selectors.membership_of(project=project, user=request.user),
    }
    return render(request, "annotation/workspace.html", context)


def _workspace_reply(
    request: AuthenticatedRequest, project: Project, labels: LabelIndex, **extra: object
) -> JsonResponse:
    """What the workspace script needs after a submit or skip: the item to hold next,
    progress and the recent answers."""
    since = _session_start(request, project)
    ahead = services.task_next_for_annotator(
        project=project, annotator=request.user, exclude_assignment_ids=held_assignment_ids(request.POST), labels=labels
    )
    recent = presentation.recent_answers(project=project, annotator=request.user, labels=labels)
    # The answers the project has, counting the one just given (the gate read the row before it).
    project.refresh_from_db(fields=["budget_spent"])
    progress = selectors.annotator_progress(project=project, annotator=request.user, since=since)
    return JsonResponse(
        {
            **extra,
            "next_html": _render_task(request, project, labels, ahead.assignment),
            "no_task_message": presentation.no_task_message(ahead, progress),
            "progress": progress,
            "progress_html": render_to_string("annotation/partials/progress.html", {"progress": progress}, request),
            "recent_html": render_to_string(
                "annotation/partials/recent.html", {"project": project, "recent": recent}, request
            ),
        }
    )


def _wants_json(request: AuthenticatedRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def submit(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    assignment_id = request.POST.get("assignment")
    try:
        result = services.annotation_submit(
            project=project,
            annotator=request.user,
            assignment_id=assignment_id,
            value=submitted_value(request.POST, project),
            submission_id=request.POST.get("submission_id"),
            duration_ms=request.POST.get("duration_ms"),
            labels=labels,
        )
    except (ValidationError, Conflict) as error:
        if _wants_json(request):
            return refusal_json(error, saved=False, assignment=assignment_id)
        messages.error(request, f"Not saved: {refusal_message(error)}")
        return redirect(f"{reverse('annotation:workspace', args=[project.pk])}?assignment={assignment_id}")
    if _wants_json(request):
        return _workspace_reply(
            request, project, labels, saved=True, annotation=result.annotation.pk, repeated=not result.created
        )
    messages.success(request, "Saved.")
    return redirect("annotation:workspace", project_id=project.pk)


@login_required
@require_POST
def skip(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    labels = LabelIndex.for_project(project)
    try:
        services.assignment_skip(
            project=project,
            annotator=request.user,
            assignment_id=request.POST.get("assignment"),
            reason=request.POST.get("reason", ""),
        )
    except Conflict as error:
        if _wants_json(request):
            return refusal_json(error, skipped=False)
        messages.error(request, refusal_message(error))
        return redirect("annotation:workspace", project_id=project.pk)
    if _wants_json(request):
        return _workspace_reply(request, project, labels, skipped=True)
    return redirect("annotation:workspace", project_id=project.pk)


@login_required
@require_POST
def feedback(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """An annotator tells reviewers what is wrong with the item in front of them; the item
    stays theirs to answer or skip."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    assignment_id = request.POST.get("assignment", "")
    try:
        note = item_feedback_send(
            project=project,
            annotator=request.user,
            assignment_id=assignment_id,
            kind=request.POST.get("feedback_kind", ""),
            text=request.POST.get("feedback_text", ""),
        )
    except ValidationError as error:
        if _wants_json(request):
            return refusal_json(error, sent=False)
        messages.error(request, f"Not sent: {refusal_message(error)}")
    else:
        thanks = f"Thank you: reviewers will see your note ({note.get_kind_display().lower()}) on item {note.item_id}."
        if _wants_json(request):
            return JsonResponse({"sent": True, "message": thanks})
        messages.success(request, thanks)
    return redirect(f"{reverse('annotation:workspace', args=[project.pk])}?assignment={assignment_id}")


@login_required
@require_http_methods(["GET", "POST"])
def annotation_edit(request: AuthenticatedRequest, project_id: int, annotation_id: int) -> HttpResponse:
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
                value=submitted_value(request.POST, project),
                version=request.POST.get("version"),
            )
        except (ValidationError, Conflict) as error:
            messages.error(request, refusal_message(error))
            if isinstance(error, Conflict):
                # The page below shows the newer answer; 409 tells scripts it was refused.
                annotation = selectors.annotation_get(
                    project=project, annotator=request.user, annotation_id=annotation_id
                )
                return _edit_page(request, project, labels, annotation, status=409)
        else:
            messages.success(request, f"Your answer on item {annotation.item_id} was changed.")
            return redirect("annotation:workspace", project_id=project.pk)
    return _edit_page(request, project, labels, annotation)


def _edit_page(
    request: AuthenticatedRequest, project: Project, labels: LabelIndex, annotation: Annotation, status: int = 200
) -> HttpResponse:
    answer = selectors.annotation_answer(annotation)
    recent_ids = services.recent_annotation_ids(project=project, annotator=request.user)
    context = {
        "project": project,
        "labels": labels.labels,
        "annotation": annotation,
        "item": annotation.item,
        "editable": services.annotation_is_editable(annotation=annotation, recent_ids=recent_ids),
        "selected_ids": {p.label_id for p in answer if not p.is_span},
        "spans": presentation.spans_json(answer),
    }
    return render(request, "annotation/edit.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def done(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The completion page (docs/crowd.md): how much the person labelled and, for someone who
    joined through a link, its completion code once they are finished, or when they leave
    (POST; nothing is changed: their leases run out as usual)."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    membership = project_selectors.membership_of(project=project, user=request.user)
    context = presentation.completion_context(
        project=project, annotator=request.user, membership=membership, leaving=request.method == "POST"
    )
    return render(request, "annotation/done.html", {"project": project, **context})


# --- reports and review (reviewers and managers) ---------------------------------------------


@login_required
@require_GET
def reports(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    run = selectors.consolidation_latest(project=project)
    rows = selectors.annotator_rows(project=project)
    context = {
        "project": project,
        "run": run,
        "active": selectors.consolidation_active(project=project),
        "report": run.report if run else {},
        "heatmap": presentation.heatmap_cells(run.report.get("heatmap") if run else None),
        "rows": rows,
        "charts": presentation.report_charts(rows, selectors.confidence_histogram(project=project)),
        "disagreements": presentation.disagreement_rows(
            project=project,
            rows=list(selectors.disagreements(project=project)[:25]),
            labels=LabelIndex.for_project(project),
        ),
        "method_titles": dict(ConsolidationMethod.choices),
    }
    return render(request, "annotation/reports.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def consolidate(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """POST: queue a full consolidation now. GET (htmx): the run's status, polled."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    if request.method == "POST":
        consensus.consolidation_request(project=project, method=request.POST.get("method", ""))
        if not request.htmx:
            messages.success(request, "Consolidation is queued; the report updates when it finishes.")
            return redirect("annotation:reports", project_id=project.pk)
    context = {
        "project": project,
        "active": selectors.consolidation_active(project=project),
        "run": selectors.consolidation_latest(project=project),
    }
    return render(request, "annotation/reports.html#run-status", context)


@login_required
@require_http_methods(["GET", "POST"])
def review(request: AuthenticatedRequest, project_id: int, item_id: int) -> HttpResponse:
    """Every answer an item got, its consensus, and the reviewer's final say."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    item = project_selectors.item_get(project=project, item_id=item_id)
    labels = LabelIndex.for_project(project)
    if request.method == "POST":
        try:
            consensus.consensus_review(
                project=project,
                item=item,
                reviewer=request.user,
                labels=labels,
                annotation_id=request.POST.get("annotation") or None,
                value=None if request.POST.get("annotation") else submitted_value(request.POST, project),
                note=request.POST.get("note", ""),
            )
        except ValidationError as error:
            messages.error(request, refusal_message(error))
        else:
            messages.success(request, f"Item {item.pk} now has your final answer; consolidation will keep it.")
            following = selectors.item_next_disagreement(project=project, after=item)
            if following is not None and request.POST.get("then") == "next":
                return redirect("annotation:review", project_id=project.pk, item_id=following.item_id)
            return redirect("annotation:review", project_id=project.pk, item_id=item.pk)
    return render(
        request, "annotation/review.html", presentation.review_context(project=project, item=item, labels=labels)
    )


@login_required
@require_POST
def unblock(request: AuthenticatedRequest, project_id: int, membership_id: int) -> HttpResponse:
    """Reviewers (and managers) can lift an automatic block after reading its reason."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    membership = project_selectors.membership_get(project=project, membership_id=membership_id)
    membership_unblock(membership=membership)
    messages.success(request, f"{membership.user.get_username()} is unblocked; earlier gold answers no longer count.")
    return redirect("annotation:reports", project_id=project.pk)


# --- exports (managers) -----------------------------------------------------------------------


@login_required
@require_GET
def export(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    context = {
        "project": project,
        "formats": export_formats_for(project),
        "counts": project_selectors.project_item_counts(project=project),
    }
    return render(request, "annotation/export.html", context)


@login_required
@require_GET
def export_download(request: AuthenticatedRequest, project_id: int, fmt: str) -> HttpResponse | StreamingHttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    options = ExportOptionsForm(request.GET)
    if not options.is_valid():
        return HttpResponseBadRequest("formula_escape must be true or false.", content_type="text/plain")
    try:
        return export_response(project=project, fmt=fmt, formula_escape=options.cleaned_data["formula_escape"])
    except ExportError as error:
        raise Http404(str(error)) from None


# --- payments (managers) ----------------------------------------------------------------------


@login_required
@require_GET
def pay(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """What each person earned in a period: answers, accepted answers, gold accuracy, amounts."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    period = PayPeriodForm(request.GET)
    start, end = (period.cleaned_data["start"], period.cleaned_data["end"]) if period.is_valid() else (None, None)
    context = {
        "project": project,
        "period": period,
        **presentation.pay_context(project=project, start=start, end=end, valid=period.is_valid()),
    }
    return render_page(request, "annotation/payments.html", context, partial="pay-table")


@login_required
@require_GET
def pay_csv(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    period = PayPeriodForm(request.GET)
    if not period.is_valid():
        problems = "; ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in period.errors.items())
        return HttpResponseBadRequest(problems, content_type="text/plain")
    start, end = period.cleaned_data["start"], period.cleaned_data["end"]
    rows = payments.pay_rows(project=project, start=start, end=end)
    return payments_response(
        project=project, rows=rows, start=start, end=end, formula_escape=period.cleaned_data["formula_escape"]
    )
