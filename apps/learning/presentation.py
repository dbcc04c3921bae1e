"""Learning's data shaped for templates and charts: the learning page, the learning curve,
a prediction on the try-the-model page."""

from typing import Any

from apps.projects.models import Project

from . import selectors, serving
from .forms import LearningSettingsForm
from .models import ModelVersion, VersionStatus


def learning_page(*, project: Project, form: LearningSettingsForm | None = None) -> dict[str, Any]:
    """Runs, the latest ranking, versions with their curve, the settings form, downloads."""
    versions = list(selectors.versions(project=project))
    runs = list(selectors.training_runs(project=project)[:10])
    ranking = selectors.ranking_latest(project=project)
    champion = next((v for v in versions if v.status == VersionStatus.CHAMPION), None)
    return {
        "project": project,
        "runs": runs,
        "ranking": ranking,
        "active": any(run.is_active for run in runs) or (ranking is not None and ranking.is_active),
        "versions": versions,
        "champion": champion,
        "curve": curve(versions),
        "form": form or LearningSettingsForm(instance=project),
        "downloads": {
            "folder": champion is not None and serving.export_ready(champion, "folder") is not None,
            "onnx": champion is not None and serving.export_ready(champion, "onnx") is not None,
        },
    }


def curve(versions: list[ModelVersion]) -> dict[str, Any]:
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
