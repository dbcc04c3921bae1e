"""Writes for projects, their labels and memberships. Every rule about what may change
lives here; views and API views only translate requests into these calls."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from platform.backbones import backbone_check

from . import events, selectors
from .models import LABEL_PALETTE, GoldLabel, Item, Label, Membership, Project, Role

PROJECT_EDITABLE_FIELDS = (
    "name",
    "instructions",
    "task_type",
    "allow_overlapping_spans",
    "overlap",
    "budget_max_annotations",
    "price_per_annotation",
    "currency",
    "lease_minutes",
    "gold_ratio",
    "quality_threshold",
    "consolidation_method",
    "consolidate_every",
    "confidence_threshold",
    "max_overlap",
    "quality_min_gold",
    "blocked_answers",
    "sampling_strategy",
    "strategy_weights",
    "backbone",
    "training_mode",
    "train_every",
    "train_weight_by_confidence",
    "label_model",
    "prelabel_mode",
    "auto_label_threshold",
    "max_items_per_annotator",
    "qualification_size",
    "qualification_pass_mark",
    "qualification_attempts",
    "training_items",
    "suggestion_min_confidence",
    "bonus_gold_accuracy",
    "bonus_per_answer",
)
LABEL_EDITABLE_FIELDS = ("name", "color", "key", "description", "order")


def _answer_counts(project: Project, label: Label | None) -> dict[str, int]:
    """Answers that the apps above keep (annotations), counted by their receivers."""
    counts: dict[str, int] = {}
    for answer in events.responses(events.answers_counted, project=project, label=label):
        for noun, count in answer.items():
            counts[noun] = counts.get(noun, 0) + count
    return counts


def _project_has_answers(project: Project) -> bool:
    return Item.objects.filter(project=project, is_gold=True).exists() or any(_answer_counts(project, None).values())


@transaction.atomic
def project_create(*, user: User, name: str, labels: Iterable[Mapping[str, Any]] = (), **fields: Any) -> Project:
    """Create a project with its creator as manager and, optionally, its first labels."""
    unknown = set(fields) - set(PROJECT_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown project settings: {', '.join(sorted(unknown))}.")
    project = Project(name=name, created_by=user, **fields)
    project.full_clean()
    backbone_check(project.backbone)
    project.save()
    Membership.objects.create(project=project, user=user, role=Role.MANAGER)
    for spec in labels:
        label_create(project=project, **spec)
    return project


@transaction.atomic
def project_update(*, project: Project, data: Mapping[str, Any]) -> Project:
    """Change project settings. The task type is fixed once answers exist, because the
    answers of one task type mean nothing under another."""
    changed = [name for name in PROJECT_EDITABLE_FIELDS if name in data and getattr(project, name) != data[name]]
    if "task_type" in changed and _project_has_answers(project):
        raise ValidationError(
            {"task_type": "The task type cannot change once the project has gold items or annotations."}
        )
    if not changed:
        return project
    for name in changed:
        setattr(project, name, data[name])
    project.full_clean()
    if "backbone" in changed:
        backbone_check(project.backbone)
    if "strategy_weights" in changed:
        _strategy_weights_check(project.strategy_weights)
    if project.max_overlap is not None and project.max_overlap < project.overlap:
        raise ValidationError({"max_overlap": "The most annotators per item cannot be fewer than k."})
    project.save(update_fields=[*changed, "updated_at"])
    return project


STRATEGY_NAMES = {
    "random", "least_confidence", "margin", "entropy", "committee", "committee_kl", "bald",
    "expected_model_change", "diversity", "core_set", "boundary",
}  # fmt: skip


def _strategy_weights_check(weights: Any) -> None:
    if not isinstance(weights, dict) or not all(
        name in STRATEGY_NAMES and isinstance(w, int | float) and w >= 0 for name, w in weights.items()
    ):
        raise ValidationError(
            {"strategy_weights": f"Use non-negative weights of: {', '.join(sorted(STRATEGY_NAMES))}."}
        )


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete a project with everything in it. Answers protect their labels against
    deletion one label at a time, so they go first, in one statement each."""
    events.project_deleting.send(sender=None, project=project)
    GoldLabel.objects.filter(item__project=project).delete()
    project.delete()


def _next_free_key(project: Project, taken: set[str]) -> str:
    for key in "1234567890abcdefghijklmnopqrstuvwxyz":
        if key not in taken:
            return key
    return ""


@transaction.atomic
def label_create(
    *,
    project: Project,
    name: str,
    color: str | None = None,
    key: str | None = None,
    description: str = "",
    order: int | None = None,
) -> Label:
    """Add a label. Colour and keyboard key are chosen when not given (``key=""`` means
    no key); the new label goes last unless an order is given."""
    existing = list(Label.objects.select_for_update().filter(project=project))
    if len(existing) >= settings.QUORUM_LABELS_MAX:
        raise ValidationError(f"A project can have at most {settings.QUORUM_LABELS_MAX} labels.")
    if color is None:
        color = LABEL_PALETTE[len(existing) % len(LABEL_PALETTE)]
    if key is None:
        key = _next_free_key(project, {label.key for label in existing})
    if order is None:
        order = max((label.order for label in existing), default=-1) + 1
    label = Label(
        project=project,
        name=name.strip(),
        color=color.lower(),
        key=key.strip().lower(),
        description=description,
        order=order,
    )
    label.full_clean()
    label.save()
    return label


@transaction.atomic
def label_update(*, label: Label, data: Mapping[str, Any]) -> Label:
    """Rename, recolour, rekey or reorder a label. Answers point at the label itself, so
    a rename carries every existing answer along."""
    changed = []
    old_name = label.name
    for name in LABEL_EDITABLE_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name in ("name", "key") and isinstance(value, str):
            value = value.strip().lower() if name == "key" else value.strip()
        if name == "color" and isinstance(value, str):
            value = value.lower()
        if getattr(label, name) != value:
            setattr(label, name, value)
            changed.append(name)
    if changed:
        label.full_clean()
        with transaction.atomic():
            label.save(update_fields=changed)
            if "name" in changed:
                events.label_renamed.send(sender=None, project=label.project, label=label, old_name=old_name)
    return label


def label_usage(*, label: Label) -> dict[str, int]:
    """How many answers of each kind use the label: annotations (counted by the annotation
    app) and gold items."""
    return {
        "annotations": 0,
        **_answer_counts(label.project, label),
        "gold": GoldLabel.objects.filter(label=label).values("item_id").distinct().count(),
    }


@transaction.atomic
def label_delete(*, label: Label) -> None:
    """Delete an unused label. A used one is refused: deleting it would change or empty
    the answers that chose it."""
    usage = label_usage(label=label)
    if any(usage.values()):
        uses = []
        if usage["annotations"]:
            uses.append(f"{usage['annotations']} annotation{'s' if usage['annotations'] != 1 else ''}")
        if usage["gold"]:
            uses.append(f"{usage['gold']} gold item{'s' if usage['gold'] != 1 else ''}")
        for noun, count in usage.items():
            if count and noun not in ("annotations", "gold"):
                uses.append(f"{count} {noun[:-1] if count == 1 and noun.endswith('s') else noun}")
        raise ValidationError(
            f"The label “{label.name}” is used by {' and '.join(uses)}, so it cannot be deleted. "
            "Rename it instead, or keep it."
        )
    label.delete()


@transaction.atomic
def labels_reorder(*, project: Project, label_ids: list[int]) -> None:
    """Put the project's labels in the given order (every label exactly once)."""
    labels = {label.pk: label for label in Label.objects.select_for_update().filter(project=project)}
    if sorted(label_ids) != sorted(labels):
        raise ValidationError("Give every label of the project exactly once to reorder them.")
    for order, label_id in enumerate(label_ids):
        labels[label_id].order = order
    Label.objects.bulk_update(labels.values(), ["order"])


@transaction.atomic
def membership_add(*, project: Project, user_identifier: str, role: str, by: User | None = None) -> Membership:
    """Give a user (found by username or e-mail) a role in the project. ``by``, the manager
    adding them, finds only people who share a project with them (``account_find``); the
    refusal reads the same for an account that does not exist."""
    user = selectors.account_find(identifier=user_identifier, by=by)
    if user is None:
        raise ValidationError(
            {
                "user": f"No one in your projects has the username or e-mail “{user_identifier.strip()}”. "
                "To add someone new, ask a site administrator (administrators can add any account)."
            }
        )
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role “{role}”."})
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"user": f"{user.get_username()} is already a member of this project."})
    return Membership.objects.create(project=project, user=user, role=role)


def _managers_left_after(project: Project, membership: Membership) -> int:
    return Membership.objects.filter(project=project, role=Role.MANAGER).exclude(pk=membership.pk).count()


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role “{role}”."})
    Project.objects.select_for_update().get(pk=membership.project_id)  # serialise last-manager checks
    if (
        membership.role == Role.MANAGER
        and role != Role.MANAGER
        and not _managers_left_after(membership.project, membership)
    ):
        raise ValidationError({"role": "A project needs at least one manager; make someone else manager first."})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    Project.objects.select_for_update().get(pk=membership.project_id)
    if membership.role == Role.MANAGER and not _managers_left_after(membership.project, membership):
        raise ValidationError("A project needs at least one manager; make someone else manager first.")
    membership.delete()


@transaction.atomic
def membership_block(*, membership: Membership, reason: str) -> Membership:
    """Stop handing items to a member; their live leases run out as usual."""
    membership.is_blocked, membership.blocked_reason, membership.blocked_at = True, reason.strip()[:300], timezone.now()
    membership.save(update_fields=["is_blocked", "blocked_reason", "blocked_at"])
    return membership


@transaction.atomic
def membership_unblock(*, membership: Membership) -> Membership:
    """Unblock a member; gold answers given so far no longer count toward blocking them."""
    membership.is_blocked, membership.blocked_reason, membership.blocked_at = False, "", None
    membership.unblocked_at = timezone.now()
    membership.save(update_fields=["is_blocked", "blocked_reason", "blocked_at", "unblocked_at"])
    return membership
