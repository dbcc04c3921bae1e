"""The learning page (runs, versions, learning curve, settings) and "try the model"."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import selectors as project_selectors
from apps.projects import services as project_services
from apps.projects.forms import LEARNING_FIELDS
from apps.projects.selectors import MANAGE, REVIEW
from platform.html import AuthenticatedRequest, form_add_service_error, refusal_message

from . import presentation, selectors, services, serving
from .forms import LearningSettingsForm

DOWNLOADS = ("folder", "onnx")


@login_required
@require_http_methods(["GET", "POST"])
def learning(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    roles = MANAGE if request.method == "POST" else REVIEW
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=roles)
    form = None
    if request.method == "POST":
        form = LearningSettingsForm(request.POST, instance=project_selectors.project_get(project_id=project.pk))
        if form.is_valid():
            try:
                project_services.project_update(
                    project=project, data={f: form.cleaned_data[f] for f in LEARNING_FIELDS}
                )
            except ValidationError as error:
                form_add_service_error(form, error)
            else:
                messages.success(request, "Learning settings saved.")
                return redirect("learning:learning", project_id=project.pk)
    if request.htmx and request.GET.get("part") == "runs":
        # Polled while something runs: the runs, and what a finished run changed (presentation.runs_poll).
        context = presentation.runs_poll(
            project=project, shown=request.GET.get("shown"), banner=request.GET.get("banner") == "1"
        )
        return render(request, "learning/learning.html#poll", context)
    return render(request, "learning/learning.html", presentation.learning_page(project=project, form=form))


@login_required
@require_POST
def train(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    services.training_request(project=project, trigger="manual", user=request.user)
    messages.success(request, "Training is queued; progress shows below.")
    return redirect("learning:learning", project_id=project.pk)


@login_required
@require_POST
def version_action(request: AuthenticatedRequest, project_id: int, number: int) -> HttpResponse:
    """Promote (roll back to) a version, or pin/unpin the champion."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    version = selectors.version_get(project=project, number=number)
    action = request.POST.get("action")
    try:
        if action == "promote":
            services.version_promote(version=version, pin=bool(request.POST.get("pin")))
            messages.success(request, f"v{version.number} is the champion now; the pool is being re-ranked.")
        elif action in ("pin", "unpin"):
            services.version_pin(version=version, pinned=action == "pin")
            messages.success(request, f"v{version.number} is {'pinned' if action == 'pin' else 'no longer pinned'}.")
    except ValidationError as error:
        messages.error(request, refusal_message(error))
    return redirect("learning:learning", project_id=project.pk)


@login_required
@require_GET
def download(request: AuthenticatedRequest, project_id: int, number: int, kind: str) -> HttpResponse | FileResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    if kind not in DOWNLOADS:
        raise Http404("No such download.")
    version = selectors.version_get(project=project, number=number, servable=True)
    path = serving.export_ready(version, kind)
    if path is None:
        services.export_request(version=version)
        messages.info(request, "The download is being prepared; try again in a minute.")
        return redirect("learning:learning", project_id=project.pk)
    name = f"{project.pk}-v{version.number}-{'model' if kind == 'folder' else 'onnx'}.zip"
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


@login_required
@require_http_methods(["GET", "POST"])
def try_model(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    context: dict[str, Any] = {"project": project, "champion": selectors.champion(project=project), "text": ""}
    if request.method == "POST":
        context["text"] = request.POST.get("text", "")
        try:
            outcome = serving.predict(project=project, texts=[context["text"]])
        except ValidationError as error:
            context["error"] = refusal_message(error)
        else:
            context["result"] = presentation.try_result(project, context["text"], outcome["results"][0])
            context["version_used"] = outcome["version"]
    template = "learning/try.html#result" if request.htmx else "learning/try.html"
    return render(request, template, context)
