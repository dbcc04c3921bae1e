"""The weak-supervision pages: the labelling functions' analysis table, their editor with a
live preview, and every source's estimated accuracy (shown on the reports page too).

Thin views over ``weak``: reviewers read, managers write; every view goes through
``project_get_for_user`` and every function through ``weak_analysis.function_get`` (scoped to the
project, so another project's id is a 404)."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import selectors as project_selectors
from apps.projects.models import Project, TaskType
from apps.projects.selectors import MANAGE, REVIEW
from platform.html import AuthenticatedRequest, form_add_service_error, refusal_message, render_page

from . import rules, weak, weak_analysis
from .forms import KIND_FIELDS, FunctionsImportForm, LabellingFunctionForm
from .models import LabellingFunction, RuleApplication, SourceEstimate, SourceKind

FUNCTIONS_PAGE = "learning/functions.html"
EDITOR_PAGE = "learning/function_edit.html"


def _project(request: AuthenticatedRequest, project_id: int, roles: Any) -> Project:
    return project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=roles)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _table_rows(project: Project, application: RuleApplication | None) -> list[dict[str, Any]]:
    """The analysis rows, with their shares as percentages too."""
    rows = weak_analysis.functions_analysis(project=project)
    shares = ("coverage", "overlaps", "conflicts", "empirical_accuracy", "estimated_accuracy")
    for row in rows:
        row["percent"] = {key: _percent(row[key]) for key in shares}
    return rows


def sources_chart(estimates: list[SourceEstimate]) -> dict[str, Any]:
    """People and functions side by side as horizontal bars (percent), one colour each."""
    rated = [estimate for estimate in estimates if estimate.accuracy is not None]

    def bars(kind: str) -> list[float | None]:
        return [round(100 * e.accuracy, 1) if e.kind == kind and e.accuracy is not None else None for e in rated]

    return {
        "data": {
            "labels": [estimate.title for estimate in rated],
            "datasets": [
                {"label": "People", "data": bars(SourceKind.ANNOTATOR), "backgroundColor": "#f59e0b"},
                {"label": "Labelling functions", "data": bars(SourceKind.FUNCTION), "backgroundColor": "#6366f1"},
            ],
        },
        # Not grouped: each row has one source, so its bar takes the row's whole height.
        "options": {
            "indexAxis": "y",
            "datasets": {"bar": {"grouped": False}},
            "scales": {"x": {"min": 0, "max": 100, "title": {"display": True, "text": "estimated accuracy, %"}}},
        },
    }


def _sources_context(project: Project) -> dict[str, Any]:
    estimates = weak_analysis.sources_estimates(project=project)
    rated = sum(1 for estimate in estimates if estimate.accuracy is not None)
    return {
        "estimates": [
            {"estimate": e, "accuracy": _percent(e.accuracy), "coverage": _percent(e.coverage)} for e in estimates
        ],
        "sources_chart_json": json.dumps(sources_chart(estimates)),
        # One fit writes every estimate; the newest says when the figures were computed.
        "sources_computed_at": max((e.computed_at for e in estimates), default=None),
        # Room for every bar: about 28 px a source, plus the axis and the legend.
        "chart_height": max(160, 28 * rated + 80),
    }


def _functions_context(project: Project, **extra: Any) -> dict[str, Any]:
    application = weak_analysis.application_latest(project=project)
    return {
        "project": project,
        "supported": project.task_type != TaskType.MULTI_LABEL,
        "rows": _table_rows(project, application),
        "application": application,
        "active": application is not None and application.is_active,
        "import_form": FunctionsImportForm(),
        **_sources_context(project),
        **extra,
    }


@login_required
@require_GET
def functions(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The analysis table of every function, the last application, the sources panel. With
    ``part=application`` (htmx, polled while it runs): the application's progress only."""
    project = _project(request, project_id, REVIEW)
    if request.htmx and request.GET.get("part") == "application":
        application = weak_analysis.application_latest(project=project)
        context = {
            "project": project,
            "application": application,
            "active": bool(application and application.is_active),
        }
        return render(request, f"{FUNCTIONS_PAGE}#application", context)
    return render(request, FUNCTIONS_PAGE, _functions_context(project))


@login_required
@require_GET
def sources(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """Every source's estimated accuracy: a fragment the reports page loads with htmx."""
    project = _project(request, project_id, REVIEW)
    return render(request, f"{FUNCTIONS_PAGE}#sources", {"project": project, **_sources_context(project)})


@login_required
@require_POST
def functions_apply(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id, MANAGE)
    try:
        weak.rules_apply_request(project=project, user=request.user)
    except ValidationError as error:
        messages.error(request, refusal_message(error))
    else:
        messages.success(request, "The functions are being applied to every item; progress shows below.")
    return redirect("learning:functions", project_id=project.pk)


@login_required
@require_GET
def functions_export(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id, MANAGE)
    document = json.dumps(weak.functions_export(project=project), indent=2, ensure_ascii=False)
    response = HttpResponse(document + "\n", content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.pk}-labelling-functions.json"'
    return response


@login_required
@require_GET
def weak_labels_export(request: AuthenticatedRequest, project_id: int) -> StreamingHttpResponse:
    project = _project(request, project_id, MANAGE)
    response = StreamingHttpResponse(weak_analysis.weak_labels_jsonl(project=project), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{project.pk}-weak-labels.jsonl"'
    return response


@login_required
@require_POST
def functions_import(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """A whole file or nothing: a refused file is shown beside the form and changes nothing."""
    project = _project(request, project_id, MANAGE)
    form = FunctionsImportForm(request.POST, request.FILES)
    if form.is_valid():
        # One byte over the limit is enough for the service to refuse the size.
        raw = form.cleaned_data["file"].read(rules.MAX_FILE_BYTES + 1)
        try:
            counts = weak.functions_import(project=project, raw=raw, user=request.user)
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(
                request,
                f"Imported: {counts['created']} new, {counts['updated']} changed, {counts['unchanged']} unchanged. "
                "Apply the functions to see their votes.",
            )
            return redirect("learning:functions", project_id=project.pk)
    return render(request, FUNCTIONS_PAGE, _functions_context(project, import_form=form))


def _after_row_change(request: AuthenticatedRequest, project: Project, message: str) -> HttpResponse:
    """htmx: the table again (the row changed in place); a plain form: back to the page."""
    if request.htmx:
        return render_page(request, FUNCTIONS_PAGE, _functions_context(project), partial="functions-table")
    messages.success(request, message)
    return redirect("learning:functions", project_id=project.pk)


@login_required
@require_POST
def function_enable(request: AuthenticatedRequest, project_id: int, function_id: int) -> HttpResponse:
    project = _project(request, project_id, MANAGE)
    function = weak_analysis.function_get(project=project, function_id=function_id)
    enabled = request.POST.get("enabled") == "on"
    weak.function_enable(function=function, enabled=enabled)
    state = "on: it votes at the next application" if enabled else "off: it stops voting at the next application"
    return _after_row_change(request, project, f"“{function.name}” is {state}.")


@login_required
@require_POST
def function_delete(request: AuthenticatedRequest, project_id: int, function_id: int) -> HttpResponse:
    project = _project(request, project_id, MANAGE)
    function = weak_analysis.function_get(project=project, function_id=function_id)
    name = function.name
    weak.function_delete(function=function)
    return _after_row_change(request, project, f"“{name}” is deleted, with its votes.")


def _editor(request: AuthenticatedRequest, project: Project, function: LabellingFunction | None) -> HttpResponse:
    """New (``function`` None) or edit: GET shows the form, POST saves (a new version when
    the definition changed) and goes back to the table."""
    if request.method == "POST":
        form = LabellingFunctionForm(request.POST, project=project)
        if form.is_valid():
            try:
                saved = weak.function_save(
                    project=project, data=form.definition(), user=request.user, function=function
                )
            except ValidationError as error:
                form_add_service_error(form, error)
            else:
                verb = "saved" if function is None else f"saved as version {saved.version}"
                messages.success(request, f"“{saved.name}” is {verb}. Apply the functions to update the analysis.")
                return redirect("learning:functions", project_id=project.pk)
    elif function is not None:
        form = LabellingFunctionForm(initial=LabellingFunctionForm.initial_for(function.definition), project=project)
    else:
        form = LabellingFunctionForm(project=project)
    versions = weak_analysis.function_versions(function=function) if function is not None else []
    context = {
        "project": project,
        "form": form,
        "function": function,
        "kind_fields": form.kind_fields(),
        "kind_keys": KIND_FIELDS,
        "versions": [(version, json.dumps(version.definition, indent=2, ensure_ascii=False)) for version in versions],
        "supported": project.task_type != TaskType.MULTI_LABEL,
    }
    return render(request, EDITOR_PAGE, context)


@login_required
@require_http_methods(["GET", "POST"])
def function_new(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    return _editor(request, _project(request, project_id, MANAGE), None)


@login_required
@require_http_methods(["GET", "POST"])
def function_edit(request: AuthenticatedRequest, project_id: int, function_id: int) -> HttpResponse:
    project = _project(request, project_id, MANAGE)
    return _editor(request, project, weak_analysis.function_get(project=project, function_id=function_id))


@login_required
@require_POST
def function_preview(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The editor's live preview of the function as written (not saved): what it fires on in
    a sample, with its figures; a mistake in it is shown in place of the results."""
    project = _project(request, project_id, MANAGE)
    # Editing: the function's own stored votes do not count as another's overlap.
    function = None
    if request.POST.get("function"):
        function = weak_analysis.function_get(project=project, function_id=request.POST["function"])
    form = LabellingFunctionForm(request.POST, project=project, preview=True)
    context: dict[str, Any] = {"project": project, "form": form}
    if form.is_valid():
        try:
            preview = weak_analysis.function_preview(project=project, data=form.definition(), function=function)
            context["preview"] = preview
            figures = ("coverage", "overlaps", "conflicts", "accuracy")
            context["percent"] = {key: _percent(getattr(preview, key)) for key in figures}
        except ValidationError as error:
            context["error"] = refusal_message(error)
    return render(request, f"{EDITOR_PAGE}#preview", context)
