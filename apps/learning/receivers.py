"""Learning's part in what the apps below it announce (``apps/projects/events.py``,
``apps/annotation/events.py``). Imported at start-up by Django's autodiscovery (apps/projects/apps.py); each receiver
calls one service."""

from typing import Any

from django.conf import settings
from django.dispatch import receiver

from apps.annotation import events as annotation_events
from apps.projects import events as project_events
from apps.projects.models import Label, Project

from . import services, weak


@receiver(project_events.items_imported)
def _embed_new_items(sender: Any, *, project: Project, **kwargs: Any) -> None:
    """Embed imported items in the background right away, so training starts warm."""
    if settings.QUORUM_EMBED_ON_IMPORT:
        services.embeddings_refresh_request(project=project)


@receiver(annotation_events.items_completed)
def _count_new_labels(sender: Any, *, project: Project, count: int, **kwargs: Any) -> None:
    services.labels_counted(project=project, new=count)


@receiver(project_events.answers_counted)
def _functions_count(sender: Any, *, project: Project, label: Label | None, **kwargs: Any) -> dict[str, int]:
    """Labelling functions vote for a label by name: one in use is not deleted from under them."""
    return {"labelling functions": weak.functions_voting_for(project=project, label=label)}


@receiver(project_events.label_renamed)
def _functions_follow_rename(sender: Any, *, project: Project, label: Label, old_name: str, **kwargs: Any) -> None:
    weak.functions_label_renamed(project=project, old_name=old_name, new_name=label.name)
