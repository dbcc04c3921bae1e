"""Learning's data shaped for templates and charts: the learning page, the learning curve,
a prediction on the try-the-model page."""

import json
import math
from typing import Any

from apps.projects.jobs import JobState
from apps.projects.models import Project

from . import selectors, serving
from .forms import EXPLAINED, LearningSettingsForm
from .models import ModelVersion, PoolRanking, TrainingRun, VersionStatus


def learning_page(*, project: Project, form: LearningSettingsForm | None = None) -> dict[str, Any]:
    """Runs, the latest ranking, versions with their curve, the settings form, downloads."""
    form = form or LearningSettingsForm(instance=project)
    return {
        **runs_part(project=project),
        **versions_part(project=project),
        "form": form,
        "choices": {name: form.explained(name) for name in EXPLAINED},
    }


def runs_part(*, project: Project) -> dict[str, Any]:
    """What the polled part shows: the last runs and the pool ranking, and whether any runs."""
    runs = list(selectors.training_runs(project=project)[:10])
    ranking = selectors.ranking_latest(project=project)
    return {
        "project": project,
        "runs": runs,
        "ranking": ranking,
        "active": any(run.is_active for run in runs) or (ranking is not None and ranking.is_active),
    }


def versions_part(*, project: Project) -> dict[str, Any]:
    """What a finished run changes: the champion, the versions, the curve, the downloads."""
    versions = list(selectors.versions(project=project))
    champion = next((v for v in versions if v.status == VersionStatus.CHAMPION), None)
    shape = curve(versions)
    return {
        "project": project,
        "versions": versions,
        "newest": versions[0].number if versions else 0,
        "champion": champion,
        "curve": shape,
        # A hidden element's text, not json_script: htmx drops <script> elements it swaps in.
        "curve_json": json.dumps(shape),
        "downloads": {
            "folder": champion is not None and serving.export_ready(champion, "folder") is not None,
            "onnx": champion is not None and serving.export_ready(champion, "onnx") is not None,
        },
    }


def runs_poll(*, project: Project, shown: str | None, banner: bool) -> dict[str, Any]:
    """The polled part, and with it the champion, versions and curve when they changed: when
    nothing runs any more (the poll's last answer, so a finished run shows without a reload)
    or when a version newer than the page's ``shown`` appeared. ``banner``: the page shows a
    message (such as "Training is queued"), which the last answer replaces with the outcome."""
    context = runs_part(project=project)
    context["newest"] = selectors.versions(project=project).values_list("number", flat=True).first() or 0
    context["banner"] = banner
    if context["active"] and str(context["newest"]) == (shown or "0"):
        return context
    context.update(versions_part(project=project), refresh=True)
    if banner and not context["active"]:
        context["outcome"] = job_outcome(context["runs"][0] if context["runs"] else None, context["ranking"])
    return context


def job_outcome(run: TrainingRun | None, ranking: PoolRanking | None) -> dict[str, str] | None:
    """The message that replaces "Training is queued" (or "the pool is being re-ranked") once
    the work has ended: about whichever of the newest run and the ranking ended last."""
    ended = [(job.finished_at, job) for job in (run, ranking) if job is not None and job.finished_at is not None]
    if not ended:
        return None
    last = max(ended, key=lambda pair: pair[0])[1]
    if isinstance(last, PoolRanking):
        if last.state == JobState.SUCCEEDED:
            return {"tags": "success", "text": f"The open items are ranked by v{last.version.number} now."}
        return {"tags": "error", "text": f"Ranking the open items {last.get_state_display().lower()}: see below."}
    if last.state == JobState.SUCCEEDED and last.version is not None:
        number = last.version.number
        if last.promoted:
            return {"tags": "success", "text": f"Training finished: v{number} is the champion now."}
        return {
            "tags": "info",
            "text": f"Training finished: v{number} did not beat the champion on the same items; it stays a challenger.",
        }
    if last.state == JobState.SUCCEEDED:
        return {"tags": "info", "text": "Training finished without a new version; the runs table says why."}
    return {"tags": "error", "text": f"Training {last.get_state_display().lower()}: the runs table shows the error."}


def curve(versions: list[ModelVersion]) -> dict[str, Any]:
    """Each version's scores on its evaluation items, in version order. The y axis runs to
    100% from ten points below the lowest score, rounded down to a tenth (never below 0), so
    a few points' change shows without suggesting the scale starts at zero."""
    points = sorted((v for v in versions if v.metrics.get("accuracy") is not None), key=lambda v: v.number)
    f1 = [round(100 * (v.metrics.get("macro_f1") or 0), 1) for v in points]
    accuracy = [round(100 * (v.metrics.get("accuracy") or 0), 1) for v in points]
    floor = max(0, 10 * math.floor(min(f1 + accuracy, default=0) / 10) - 10)
    return {
        "points": len(points),
        "floor": floor,
        "data": {
            # Two lines per tick: the version, then how many labels it learnt from.
            "labels": [[f"v{v.number}", f"{v.train_size:,} labels"] for v in points],
            "datasets": [
                {"label": "Macro-F1", "data": f1,
                 "borderColor": "#6366f1", "backgroundColor": "#6366f1", "tension": 0.25, "clip": False},
                {"label": "Accuracy", "data": accuracy,
                 "borderColor": "#22c55e", "backgroundColor": "#22c55e", "tension": 0.25, "clip": False},
            ],
        },
        "options": {"scales": {
            "x": {"offset": True, "title": {"display": True, "text": "version (labels trained on)"}},
            "y": {"min": floor, "max": 100, "ticks": {"stepSize": 10},
                  "title": {"display": True, "text": "score, %"}},
        }},
    }  # fmt: skip


def try_result(project: Project, text: str, result: dict[str, Any]) -> dict[str, Any]:
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
