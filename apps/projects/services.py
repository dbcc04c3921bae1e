"""Writes for projects, their labels and memberships. Every rule about what may change
lives here; views and API views only translate requests into these calls."""

import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from platform.backbones import backbone_check
from platform.errors import Conflict
from platform.tasks import task_send_on_commit

from . import events, selectors
from .models import LABEL_PALETTE, GoldLabel, Item, JoinLink, Label, Membership, Project, Role

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
    if any(label_usage(label=label).values()):
        raise ValidationError(_in_use_message(label))
    label.delete()


def _in_use_message(label: Label) -> str:
    """Why a used label cannot be deleted: what uses it, and how many."""
    usage = label_usage(label=label)
    uses = []
    if usage["annotations"]:
        uses.append(f"{usage['annotations']} annotation{'s' if usage['annotations'] != 1 else ''}")
    if usage["gold"]:
        uses.append(f"{usage['gold']} gold item{'s' if usage['gold'] != 1 else ''}")
    for noun, count in usage.items():
        if count and noun not in ("annotations", "gold"):
            uses.append(f"{count} {noun[:-1] if count == 1 and noun.endswith('s') else noun}")
    return (
        f"The label “{label.name}” is used by {' and '.join(uses)}, so it cannot be deleted. "
        "Rename it instead, or keep it."
    )


@dataclass(frozen=True)
class LabelRow:
    """One row of the ontology editor: an existing label (``label_id``) or a new one. A new
    label with an empty key gets the next free key; an existing one with an empty key has none."""

    label_id: int | None
    name: str
    color: str
    key: str = ""
    description: str = ""
    delete: bool = False


class LabelRowsRefused(ValidationError):
    """Rows of the ontology editor that cannot be saved, so nothing was. ``rows`` maps a
    row's position in the list given to its problems, by field ("__all__": the row)."""

    def __init__(self, rows: dict[int, dict[str, list[str]]]) -> None:
        self.rows = rows
        problems = [f"Row {i + 1}: {m}" for i, fields in sorted(rows.items()) for ms in fields.values() for m in ms]
        super().__init__(problems)


def _row_label(project: Project, row: LabelRow, existing: dict[int, Label]) -> Label:
    """The label as the row would leave it (unsaved), to check."""
    base = existing.get(row.label_id) if row.label_id is not None else None
    label = Label(pk=base.pk if base else None, project=project, order=base.order if base else 0)
    label.name, label.color = row.name.strip(), row.color.strip().lower()
    label.key, label.description = row.key.strip().lower(), row.description
    return label


def _rows_check(
    project: Project, rows: Sequence[LabelRow], existing: dict[int, Label]
) -> dict[int, dict[str, list[str]]]:
    """Every row alone (the model's validators), then all together: names and keys once
    each among the labels kept (and those added since the page was opened), no deleted
    label in use, no more labels than the site allows."""
    errors: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    seen_ids: set[int] = set()
    for i, row in enumerate(rows):
        if row.label_id is not None and (row.label_id not in existing or row.label_id in seen_ids):
            errors[i]["__all__"].append("This label is no longer in the project (deleted meanwhile?); reload the page.")
            continue
        if row.label_id is not None:
            seen_ids.add(row.label_id)
        if row.delete:
            if row.label_id is not None and any(label_usage(label=existing[row.label_id]).values()):
                errors[i]["__all__"].append(_in_use_message(existing[row.label_id]))
            continue
        try:
            _row_label(project, row, existing).full_clean(
                exclude=["project", "order"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as problem:
            for field, messages in problem.message_dict.items():
                errors[i][field].extend(messages)
    kept = [(i, _row_label(project, row, existing)) for i, row in enumerate(rows) if not row.delete]
    others = [label for pk, label in existing.items() if pk not in seen_ids]
    for field, fold in (("name", str.casefold), ("key", str.lower)):
        taken = {fold(getattr(label, field)) for label in others if getattr(label, field)}
        owners: dict[str, list[int]] = defaultdict(list)
        for i, label in kept:
            if getattr(label, field):
                owners[fold(getattr(label, field))].append(i)
        for value, positions in owners.items():
            if len(positions) > 1 or value in taken:
                for i in positions:
                    errors[i][field].append(f"Another label already has the {field} “{value}”.")
    if len(kept) + len(others) > settings.QUORUM_LABELS_MAX:
        errors[len(rows) - 1]["__all__"].append(f"A project can have at most {settings.QUORUM_LABELS_MAX} labels.")
    return {i: dict(fields) for i, fields in errors.items() if fields}


@transaction.atomic
def labels_save(*, project: Project, rows: Sequence[LabelRow], instructions: str | None = None) -> list[Label]:
    """Save the ontology editor in one go: names, colours, keys, descriptions, the order
    of the rows, new labels and deletions, and the instructions beside them. Every row is
    checked first, alone and against the others; when one is wrong nothing is saved and
    LabelRowsRefused says which rows and why.

    1. The project's labels are locked, so a concurrent save waits for this one.
    2. Deleted labels go first, so a kept label may take a deleted one's name or key.
    3. Labels whose name or key changes step aside (a placeholder name, no key) before any
       takes its new one: two labels may swap names or keys in one save.
    4. Each kept label then takes its values and position through ``label_update`` (a
       rename still tells the apps above), new labels are created in place, and labels
       added since the page was opened keep their order after the rest."""
    existing = {label.pk: label for label in Label.objects.select_for_update().filter(project=project)}
    problems = _rows_check(project, rows, existing)
    if problems:
        raise LabelRowsRefused(problems)
    for row in rows:
        if row.delete and row.label_id is not None:
            label_delete(label=existing.pop(row.label_id))
    kept = [row for row in rows if not row.delete]
    # Step aside: a placeholder name for labels being renamed, no key for those rekeyed.
    for row in kept:
        label = existing.get(row.label_id) if row.label_id is not None else None
        if label is not None and label.name != row.name.strip():
            Label.objects.filter(pk=label.pk).update(name=f"…{uuid.uuid4().hex}")
        if label is not None and label.key != row.key.strip().lower():
            Label.objects.filter(pk=label.pk).update(key="")
    saved = []
    for order, row in enumerate(kept):
        values = {"name": row.name, "color": row.color, "description": row.description, "order": order}
        if row.label_id is not None:
            saved.append(label_update(label=existing[row.label_id], data={**values, "key": row.key}))
        else:
            saved.append(
                label_create(
                    project=project,
                    name=row.name,
                    color=row.color,
                    key=row.key or None,
                    description=row.description,
                    order=order,
                )
            )
    placed = {label.pk for label in saved}
    later = [label for label in existing.values() if label.pk not in placed]
    for order, label in enumerate(later, start=len(saved)):
        label_update(label=label, data={"order": order})
    if instructions is not None and instructions != project.instructions:
        project_update(project=project, data={"instructions": instructions})
    return [*saved, *later]


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


# --- joining by link, and invitations (docs/crowd.md) ------------------------------------------
#
# Under concurrency: a use is counted by one conditional UPDATE that checks the link is still
# open (not revoked, not expired, uses below max_uses) in the same statement, so no number of
# simultaneous sign-ups takes a link past its maximum; the membership is created in the same
# transaction, so a refused join leaves nothing behind. Worker accounts of one link are made
# under a lock on the link row, so a double-clicked study URL makes one account, not two.

# What an external platform's worker id may look like: letters, digits and . _ @ + -, as in
# Prolific's, Mechanical Turk's and Toloka's ids; it becomes part of a username.
WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}")
# How long a personal invitation sent by e-mail stays open.
INVITATION_DAYS = 14
# The most entries one bulk invitation takes.
INVITE_MAX_ENTRIES = 200


class JoinClosed(Conflict):
    """A join link that no longer lets people in; ``reason`` is a ``selectors.LinkState``."""

    def __init__(self, reason: str) -> None:
        super().__init__(selectors.LinkState.MESSAGES.get(reason, "This join link is closed."))
        self.reason = reason


@dataclass
class Joined:
    membership: Membership
    # False when the person was a member already: nothing changed, no use was counted.
    created: bool


@transaction.atomic
def join_link_create(
    *,
    project: Project,
    by: User | None,
    name: str = "",
    expires_at: datetime | None = None,
    max_uses: int | None = None,
    worker_id_param: str = "",
) -> JoinLink:
    """A new link to the project for annotators (role annotator: a link is for the crowd)."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "Choose an expiry in the future, or none."})
    link = JoinLink(
        project=project,
        created_by=by,
        name=name.strip(),
        role=Role.ANNOTATOR,
        expires_at=expires_at,
        max_uses=max_uses,
        worker_id_param=worker_id_param.strip(),
    )
    link.full_clean()
    link.save()
    return link


def join_link_revoke(*, link: JoinLink) -> JoinLink:
    """Turn a link off for good; members who joined through it stay. Revoking twice keeps
    the first time."""
    JoinLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    link.refresh_from_db(fields=["revoked_at"])
    return link


def _use_counted(link: JoinLink, now: datetime) -> bool:
    """Count one use if the link is open at this instant: the check and the count are one
    statement, so concurrent joins cannot pass ``max_uses`` together."""
    open_now = (
        Q(revoked_at__isnull=True)
        & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        & (Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses")))
    )
    return bool(JoinLink.objects.filter(open_now, pk=link.pk).update(uses=F("uses") + 1))


def _join(link: JoinLink, user: User, worker_id: str = "") -> Joined:
    existing = Membership.objects.filter(project_id=link.project_id, user=user).first()
    if existing is not None:
        return Joined(existing, created=False)
    now = timezone.now()
    if not _use_counted(link, now):
        link.refresh_from_db()
        raise JoinClosed(selectors.join_link_state(link, now))
    membership = Membership.objects.create(
        project_id=link.project_id, user=user, role=link.role, join_link=link, external_worker_id=worker_id
    )
    link.uses += 1
    return Joined(membership, created=True)


def join_link_use(*, link: JoinLink, user: User) -> Joined:
    """Join the link's project as ``user``. A member already stays as they are (no use is
    counted); a closed link raises JoinClosed and changes nothing."""
    try:
        with transaction.atomic():
            return _join(link, user)
    except IntegrityError:
        # The same person joined in a parallel request a moment ago (one membership each).
        existing = Membership.objects.filter(project_id=link.project_id, user=user).first()
        if existing is None:
            raise
        return Joined(existing, created=False)


def _username_check(username: str) -> str:
    username = User.normalize_username(username.strip())
    try:
        # The model field's own rules: required, at most 150 characters, letters, digits and @.+-_.
        User._meta.get_field("username").clean(username, User())
    except ValidationError as error:
        raise ValidationError({"username": error.messages}) from None
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "That username is taken; choose another, or log in if it is yours."})
    return username


def _email_check(email: str) -> str:
    email = User.objects.normalize_email(email.strip())
    if not email:
        return ""
    try:
        validate_email(email)
    except ValidationError as error:
        raise ValidationError({"email": error.messages}) from None
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "An account already uses this e-mail address: log in with it instead."})
    return email


@transaction.atomic
def account_create_by_link(*, link: JoinLink, username: str, password: str, email: str = "") -> Joined:
    """Sign up through a join link: a new account and its membership, in one transaction,
    so a link that closed meanwhile leaves no account behind. The password goes through the
    site's validators (AUTH_PASSWORD_VALIDATORS)."""
    username = _username_check(username)
    email = _email_check(email)
    user = User(username=username, email=email)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ValidationError({"username": "That username is taken; choose another."}) from None
    return _join(link, user)


def _worker_id_check(worker_id: str) -> str:
    """An external platform's worker id as it may be stored, or a ValidationError saying why not."""
    if not WORKER_ID.fullmatch(worker_id):
        raise ValidationError(
            "The worker id in this address is not one Quorum accepts: up to 200 letters, digits and . _ @ + -, "
            "starting with a letter or digit. Open the study from your crowd platform's page again."
        )
    return worker_id


def _worker_username(link: JoinLink, worker_id: str) -> str:
    """A username for a worker account: the parameter's name and the id (both in Django's
    username characters already), made unique with a random suffix when taken."""
    base = f"{link.worker_id_param.lower()}-{worker_id}"[:140]
    username = base
    while User.objects.filter(username__iexact=username).exists():
        username = f"{base}-{secrets.token_hex(3)}"
    return username


@transaction.atomic
def worker_account_for_link(*, link: JoinLink, worker_id: str) -> Joined:
    """The account an external platform's worker has in the link's project, made on their
    first visit (no password: they come back through the platform's link). The link row is
    locked first, so two requests of one worker at once make one account."""
    worker_id = _worker_id_check(worker_id)
    if not link.worker_id_param:
        raise ValidationError("This join link takes no worker id.")
    list(JoinLink.objects.select_for_update().filter(pk=link.pk).values_list("pk", flat=True))
    existing = selectors.membership_of_worker(project=link.project, worker_id=worker_id)
    if existing is not None:
        account = existing.user
        # Only a plain worker account signs in by its worker id: one an administrator gave a
        # password, staff rights or turned off must sign in (or stay out) the usual way.
        if account.has_usable_password() or account.is_staff or account.is_superuser or not account.is_active:
            raise Conflict("This worker's account signs in with a password: log in with it instead.")
        return Joined(existing, created=False)
    try:
        with transaction.atomic():
            user = User(username=_worker_username(link, worker_id))
            user.set_unusable_password()
            user.save()
            return _join(link, user, worker_id=worker_id)
    except IntegrityError:
        # The same worker arrived through another link of the project at the same instant:
        # the database kept one account (one_account_per_worker_id); this visit uses it.
        existing = selectors.membership_of_worker(project=link.project, worker_id=worker_id)
        if existing is None:
            raise
        return Joined(existing, created=False)


@dataclass
class InviteReport:
    added: list[str] = field(default_factory=list)
    invited: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def invite_entries(*, raw: str) -> list[str]:
    """The usernames and e-mail addresses of a pasted list (commas, semicolons, spaces or
    lines between them), each once, in their order."""
    entries = [entry.strip() for entry in re.split(r"[\s,;]+", raw) if entry.strip()]
    unique = list(dict.fromkeys(entry.casefold() for entry in entries))
    first = {entry.casefold(): entry for entry in reversed(entries)}
    if len(unique) > INVITE_MAX_ENTRIES:
        raise ValidationError(f"Invite at most {INVITE_MAX_ENTRIES} people at a time.")
    return [first[key] for key in unique]


def _is_email(entry: str) -> bool:
    try:
        validate_email(entry)
    except ValidationError:
        return False
    return True


def invitation_send(*, link_id: int, inviter_id: int, address: str, url: str) -> None:
    """Send one personal invitation (a worker runs this: SMTP may be slow). A link revoked or
    deleted before it went out is not sent."""
    link = JoinLink.objects.select_related("project").filter(pk=link_id, revoked_at__isnull=True).first()
    if link is None:
        return
    inviter = User.objects.filter(pk=inviter_id).first()
    name = (inviter.get_full_name() or inviter.get_username()) if inviter else "A project manager"
    until = f", until {link.expires_at:%d %B %Y}" if link.expires_at else ""
    body = (
        f"{name} invites you to label texts in the project “{link.project.name}” on Quorum.\n\n"
        f"Open this link to sign up (or log in) and join:\n{url}\n\n"
        f"The link is yours alone: it works once{until}.\n"
    )
    send_mail(f"Join “{link.project.name}” on Quorum", body, None, [address])


@transaction.atomic
def members_invite(
    *, project: Project, by: User, entries: list[str], join_url: Callable[[JoinLink], str]
) -> InviteReport:
    """Add people by username or e-mail: accounts the manager may find (``account_find``,
    which finds only people who share a project with them) join as annotators; other
    e-mail addresses get a personal join link (one use, ``INVITATION_DAYS`` days) by e-mail,
    which a worker sends after commit. An unknown username is reported, never guessed at."""
    report = InviteReport()
    expires_at = timezone.now() + timedelta(days=INVITATION_DAYS)
    for entry in entries:
        user = selectors.account_find(identifier=entry, by=by)
        if user is not None:
            _, created = Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
            (report.added if created else report.already).append(entry)
        elif _is_email(entry):
            link = join_link_create(
                project=project, by=by, name=f"Invitation: {entry}"[:100], max_uses=1, expires_at=expires_at
            )
            task_send_on_commit("projects.invitation_send", link.pk, by.pk, entry, join_url(link))
            report.invited.append(entry)
        else:
            report.unknown.append(entry)
    return report
