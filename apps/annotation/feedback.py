"""What annotators say about an item beside answering or skipping it (ambiguous, offensive,
broken text, other, with an optional note), for the reviewers who read the item and review
pages. A person has one note of each kind per item: sending the same kind again replaces
its text, so a double click or a resend leaves one row."""

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.projects.models import Item, Project

from .models import Assignment, FeedbackKind, ItemFeedback
from .selectors import assignment_get

FEEDBACK_MAX_CHARS = 2000


@transaction.atomic
def item_feedback_send(
    *, project: Project, annotator: User, assignment_id: Any, kind: str, text: str = ""
) -> ItemFeedback:
    """Record the annotator's note on the item of one of their assignments (held, answered
    or skipped); Http404 for an assignment that is not theirs in this project."""
    if kind not in FeedbackKind.values:
        choices = ", ".join(str(label).lower() for label in FeedbackKind.labels)
        raise ValidationError({"kind": f"Say what is wrong with the item: {choices}."})
    text = text.strip()
    if len(text) > FEEDBACK_MAX_CHARS:
        raise ValidationError({"text": f"Keep the note under {FEEDBACK_MAX_CHARS:,} characters."})
    assignment = assignment_get(project=project, annotator=annotator, assignment_id=assignment_id)
    # The person's assignment row, locked: their concurrent sends on this item come one
    # after the other, so the second finds the first's row (no unique constraint to lean on).
    Assignment.objects.select_for_update().filter(pk=assignment.pk).values_list("pk", flat=True).get()
    feedback, _ = ItemFeedback.objects.update_or_create(
        project=project,
        item_id=assignment.item_id,
        annotator=annotator,
        kind=kind,
        defaults={"text": text, "resolved_at": None},
    )
    return feedback


def item_feedback_list(*, item: Item) -> list[ItemFeedback]:
    """Every note on the item, newest first, with who sent it."""
    return list(ItemFeedback.objects.filter(item=item).select_related("annotator").order_by("-created_at", "-id"))
