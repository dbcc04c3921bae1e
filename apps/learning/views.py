"""The learning page (runs, versions, learning curve, settings) and "try the model"."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import forms as project_forms
from apps.projects import selectors as project_selectors
from apps.projects import services as project_services
from apps.projects.models import JobState, Project
from apps.projects.selectors import MANAGE, REVIEW
from apps.projects.views import form_add_service_error

from . import services, serving
from .models import ModelVersion, PoolRanking, TrainingRun

LEARNING_FIELDS = list(project_forms.LEARNING_FIELDS)


class LearningSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = LEARNING_FIELDS
        widgets = {
            "strategy_weights": forms.TextInput(
                attrs={"placeholder": '{"margin": 0.7, "diversity": 0.2, "random": 0.1}'}
            )
        }


def _curve(versions: list[ModelVersion]) -> dict[str, Any]:
    points = sorted((v for v in versions if v.metrics.get("accuracy") is not None), key=lambda v: v.number)
    return {
        "data": {
            "labels": [v.train_size for v in points],
            "datasets": [
                {"label": "Macro-F1", "data": [round(100 * (v.metrics.get("macro_f1") or 0), 1) for v in points],
                 "borderColor": "#6366f1", "backgroundColor": "#6366f1", "tension": 0.25, "clip": False},
                {"label": "Accuracy", "data": [round(100 * (v.metrics.get("accuracy") or 0), 1) for v in points],
                 "borderColor": "#22c55e", "backgroundColor": "#22c55e", "tension": 0.25, "clip": False},
            ],
        },
        "options": {"scales": {"x": {"offset": True, "title": {"display": True, "text": "labels trained on"}},
                               "y": {"title": {"display": True, "text": "%"}, "max": 100}}},
    }  # fmt: skip


def _context(project: Project, form: LearningSettingsForm | None = None) -> dict[str, Any]:
    versions = list(ModelVersion.objects.filter(project=project))
    runs = list(TrainingRun.objects.filter(project=project)[:10])
    ranking = PoolRanking.objects.filter(project=project).select_related("version").first()
    champion = next((v for v in versions if v.status == "champion"), None)
    return {
        "project": project,
        "runs": runs,
        "ranking": ranking,
        "active": any(run.is_active for run in runs) or (ranking is not None and ranking.state == JobState.RUNNING),
        "versions": versions,
        "champion": champion,
        "curve": _curve(versions),
        "form": form or LearningSettingsForm(instance=project),
        "downloads": {
            "folder": champion is not None and serving.export_ready(champion, "folder") is not None,
            "onnx": champion is not None and serving.export_ready(champion, "onnx") is not None,
        },
    }


@login_required
@require_http_methods(["GET", "POST"])
def learning(request: HttpRequest, project_id: int) -> HttpResponse:
    roles = MANAGE if request.method == "POST" else REVIEW
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=roles)
    form = None
    if request.method == "POST":
        form = LearningSettingsForm(request.POST, instance=Project.objects.get(pk=project.pk))
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
        return render(request, "learning/learning.html#runs", _context(project))
    return render(request, "learning/learning.html", _context(project, form))


@login_required
@require_POST
def train(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    services.training_request(project=project, trigger="manual", user=request.user)
    messages.success(request, "Training is queued; progress shows below.")
    return redirect("learning:learning", project_id=project.pk)


@login_required
@require_POST
def version_action(request: HttpRequest, project_id: int, number: int) -> HttpResponse:
    """Promote (roll back to) a version, or pin/unpin the champion."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    version = ModelVersion.objects.filter(project=project, number=number).first()
    if version is None:
        raise Http404("No such model version in this project.")
    action = request.POST.get("action")
    try:
        if action == "promote":
            services.version_promote(version=version, pin=bool(request.POST.get("pin")))
            messages.success(request, f"v{version.number} is the champion now; the pool is being re-ranked.")
        elif action in ("pin", "unpin"):
            services.version_pin(version=version, pinned=action == "pin")
            messages.success(request, f"v{version.number} is {'pinned' if action == 'pin' else 'no longer pinned'}.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("learning:learning", project_id=project.pk)


@login_required
@require_GET
def download(request: HttpRequest, project_id: int, number: int, kind: str) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    version = ModelVersion.objects.filter(project=project, number=number, pruned_at__isnull=True).first()
    if version is None or kind not in ("folder", "onnx"):
        raise Http404("No such download.")
    path = serving.export_ready(version, kind)
    if path is None:
        from .tasks import export_build_task

        export_build_task.delay(version.pk)
        messages.info(request, "The download is being prepared; try again in a minute.")
        return redirect("learning:learning", project_id=project.pk)
    name = f"{project.pk}-v{version.number}-{'model' if kind == 'folder' else 'onnx'}.zip"
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


@login_required
@require_http_methods(["GET", "POST"])
def try_model(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    context: dict[str, Any] = {"project": project, "champion": services.champion(project), "text": ""}
    if request.method == "POST":
        context["text"] = request.POST.get("text", "")
        try:
            outcome = serving.predict(project=project, texts=[context["text"]])
        except ValidationError as error:
            context["error"] = " ".join(error.messages)
        else:
            context["result"] = _try_result(project, context["text"], outcome["results"][0])
            context["version_used"] = outcome["version"]
    template = "learning/try.html#result" if request.htmx else "learning/try.html"
    return render(request, template, context)


def _try_result(project: Project, text: str, result: dict[str, Any]) -> dict[str, Any]:
    colours = {label.name: label.color for label in project.labels.all()}
    if "entities" in result:
        segments, position = [], 0
        for entity in sorted(result["entities"], key=lambda e: e["start"]):
            if entity["start"] < position:
                continue
            segments.append({"text": text[position : entity["start"]], "label": None})
            segments.append(
                {
                    "text": text[entity["start"] : entity["end"]],
                    "label": entity["label"],
                    "color": colours.get(entity["label"]),
                }
            )
            position = entity["end"]
        segments.append({"text": text[position:], "label": None})
        kinds = sorted({e["label"] for e in result["entities"]})
        return {"segments": segments, "kinds": [{"name": k, "color": colours.get(k)} for k in kinds]}
    bars = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])
    return {
        "bars": [
            {"name": name, "p": p, "percent": round(100 * p, 1), "color": colours.get(name, "#6366f1")}
            for name, p in bars
        ],
        "label": result.get("label") or ", ".join(result.get("labels", [])),
    }
