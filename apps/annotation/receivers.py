"""The annotation app's part in what projects asks of the apps above it
(``apps/projects/events.py``). Imported at start-up by Django's autodiscovery (apps/projects/apps.py); each receiver
calls one service, selector or presentation helper."""

from typing import Any

from django.db.models import Q
from django.dispatch import receiver

from apps.projects import events
from apps.projects.answers import LabelIndex
from apps.projects.models import Item, Label, Project
from apps.projects.presentation import answer_display
from apps.projects.selectors import AnswerFilters

from . import presentation, selectors, services
from .feedback import item_feedback_list


@receiver(events.project_deleting)
def _answers_delete(sender: Any, *, project: Project, **kwargs: Any) -> None:
    services.project_answers_delete(project=project)


@receiver(events.answers_counted)
def _answers_count(sender: Any, *, project: Project, label: Label | None, **kwargs: Any) -> dict[str, int]:
    return {"annotations": selectors.answers_count(project=project, label=label)}


@receiver(events.overview_shown)
def _overview_sections(sender: Any, *, project: Project, user: Any, **kwargs: Any) -> dict[str, Any]:
    return presentation.overview_sections(project=project, user=user)


@receiver(events.members_shown)
def _members_tests(sender: Any, *, project: Project, **kwargs: Any) -> dict[str, Any]:
    return presentation.members_sections(project=project)


@receiver(events.home_shown)
def _annotator_home(sender: Any, *, user: Any, projects: list[Project], **kwargs: Any) -> dict[str, Any]:
    return presentation.annotator_home(user=user, projects=projects)


@receiver(events.item_shown)
def _item_annotations(
    sender: Any, *, project: Project, item: Item, labels: LabelIndex, **kwargs: Any
) -> dict[str, Any]:
    annotations = selectors.item_annotations(item=item)
    for row in annotations:
        row["display"] = answer_display(project, labels, row["answer"], item.text)
    return {"annotations": annotations, **presentation.item_consensus(project=project, item=item, labels=labels)}


@receiver(events.item_shown)
def _item_feedback(sender: Any, *, item: Item, **kwargs: Any) -> dict[str, Any]:
    return {"feedback": item_feedback_list(item=item)}


@receiver(events.items_filtering)
def _items_filter(sender: Any, *, project: Project, filters: AnswerFilters, **kwargs: Any) -> Q:
    return selectors.items_answer_filter(project=project, filters=filters)


@receiver(events.items_listed)
def _items_consensus(
    sender: Any, *, project: Project, items: list[Item], labels: LabelIndex, **kwargs: Any
) -> dict[int, dict[str, Any]]:
    return presentation.items_consensus(project=project, items=items, labels=labels)
