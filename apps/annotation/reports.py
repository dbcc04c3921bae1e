"""The agreement report a consolidation run computes and stores, and each annotator's gold
record. The heavy figures (alpha, kappas) are computed once per run in a worker; pages read
the stored report (``selectors.consolidation_latest``) and add what the database answers
cheaply."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model

from apps.projects.models import Project, TaskType

from . import agreement
from .models import AnnotatorQuality
from .quality import gold_accuracy, gold_scores
from .selectors import GivenAnswer

HEATMAP_ANNOTATORS = 15


def _units(project: Project, answers: Sequence[GivenAnswer]) -> tuple[dict, dict]:
    """Agreement units (item -> values) and each annotator's values per unit."""
    units: dict[Any, list[Any]] = defaultdict(list)
    by_annotator: dict[int, dict[Any, Any]] = defaultdict(dict)
    label_ids = list(project.labels.values_list("pk", flat=True))
    for given in answers:
        values: list[tuple[Any, Any]]
        if project.task_type == TaskType.SINGLE_LABEL:
            values = [(given.item_id, given.answer.label_id)]
        elif project.task_type == TaskType.MULTI_LABEL:
            values = [((given.item_id, label), given.answer.has(label)) for label in label_ids]
        else:
            values = [(given.item_id, frozenset(given.answer))]
        for unit, value in values:
            units[unit].append(value)
            by_annotator[given.annotator_id][unit] = value
    return units, by_annotator


def report_compute(*, project: Project, answers: Sequence[GivenAnswer], choice: dict[str, Any]) -> dict[str, Any]:
    """The figures a consolidation run stores for the report pages and the API; ``choice``
    says which method the run used and why."""
    units, by_annotator = _units(project, answers)
    names = dict(get_user_model().objects.filter(pk__in=list(by_annotator)).values_list("pk", "username"))
    report: dict[str, Any] = {"task_type": project.task_type, "answers": len(answers)}
    if project.task_type == TaskType.SPANS:
        report["span_f1"] = agreement.span_agreement({unit: list(values) for unit, values in units.items()})
        report["items_compared"] = sum(1 for values in units.values() if len(values) >= 2)
    else:
        report["alpha"] = agreement.krippendorff_alpha(units)
        report["fleiss"] = agreement.fleiss_kappa(units)
        report["percent"] = agreement.percent_agreement(units)
        report["items_compared"] = sum(1 for values in units.values() if len(values) >= 2)
        busiest = sorted(by_annotator, key=lambda a: -len(by_annotator[a]))[:HEATMAP_ANNOTATORS]
        pairs = agreement.cohen_kappa_pairs({a: by_annotator[a] for a in busiest})
        report["heatmap"] = {
            "annotators": [names.get(a, str(a)) for a in busiest],
            "kappa": [
                [1.0 if a == b else (pairs.get((a, b)) or pairs.get((b, a)) or (None, 0))[0] for b in busiest]
                for a in busiest
            ],
            "shared": [
                [
                    len(by_annotator[a]) if a == b else (pairs.get((a, b)) or pairs.get((b, a)) or (None, 0))[1]
                    for b in busiest
                ]
                for a in busiest
            ],
        }
    report["choice"] = dict(choice)
    return report


def quality_gold_write(*, project: Project) -> None:
    """Store each annotator's gold record (all time) beside the estimated skill."""
    for annotator_id, scores in gold_scores(project=project).items():
        AnnotatorQuality.objects.update_or_create(
            project=project,
            annotator_id=annotator_id,
            defaults={"gold_answered": len(scores), "gold_accuracy": gold_accuracy(scores)},
        )
