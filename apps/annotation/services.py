"""Task distribution and answers: leasing the next item, submitting, skipping, editing.

The promises kept here, under concurrency:
- no item gets more than k (the project's overlap) annotations;
- no annotator is given, or answers, the same item twice;
- an answer the server acknowledged is committed before the acknowledgement;
- a repeated submit (same submission id, or a second click on a submitted item)
  creates nothing and returns the first answer; a submission id already used for
  another item is refused (409), never answered with that other item's answer;
- a change to an answer names the version it started from, so a stale change cannot
  overwrite a newer one (409);
- a submit that fails half-way (a database error) leaves nothing behind: it is one
  transaction, and retrying it with the same submission id is safe.
Every writer locks an item before any of its assignments, so no two transactions
can deadlock on each other.

How ``task_next_for_annotator`` picks:
1. Leases past their time are expired in bulk (their items get the room back), at
   most every few seconds per project, and again whenever no item is free.
2. The annotator's own live lease is handed back first (they reloaded the page).
3. With probability ``gold_ratio`` a gold item they have not seen (nor practised on)
   is tried first; gold items look like any other item and have no annotator limit.
4. Otherwise the highest-priority open item they have not seen whose annotations
   plus live leases are below k, locked with ``FOR UPDATE SKIP LOCKED`` so that
   concurrent annotators each take a different row. (SQLite has no row locks;
   there every write transaction takes the database lock at BEGIN, see settings,
   so the same code runs one request at a time.)
5. In a project with a budget, the project row is locked and spent plus live paid
   leases are counted against the budget first; when it is spent, nothing is leased.
   Before that, in a project with a per-person limit (``max_items_per_annotator``), the
   annotator's membership row is locked and their answers plus live leases are counted
   against it: one person's concurrent requests count one at a time, so they never hold
   more than the limit (a late answer on a lapsed lease is checked the same way).
Steps 2 to 5 run in one transaction. Before step 1, a newcomer who must first pass the
qualification test or practise gets no item, only the reason (qualification.py).
"""

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone

from apps.projects.answers import Answer, InvalidValue, LabelIndex, value_parse
from apps.projects.models import Item, ItemState, Membership, Project
from platform.errors import Conflict

from . import events
from .consensus import consensus_provisional, consolidation_request
from .models import Annotation, AnnotationLabel, Assignment, AssignmentState, PracticeAnswer
from .qualification import Stage, crowd_stage
from .quality import annotator_quality_check
from .selectors import annotation_answer, assignment_get

# How many of their latest answers an annotator may still change.
EDITABLE_RECENT = 5
# Expired leases are swept at most this often per project and process (and whenever no
# item is found), so that a busy project does not pay for a sweep on every request.
SWEEP_EVERY_SECONDS = 5.0
_last_sweep: dict[int, float] = {}
# Client-reported times above this are not believed (a tab left open overnight).
MAX_BELIEVABLE_DURATION_MS = 6 * 3600 * 1000


class NoTask:
    """Why there is no item for an annotator right now."""

    BLOCKED = "blocked"
    BUDGET = "budget"
    DONE = "done"
    BUSY = "busy"
    NO_LABELS = "no_labels"
    LIMIT = "limit"
    # Before real work (qualification.py): the test, failed for good, or training.
    QUALIFICATION = Stage.TEST
    NOT_QUALIFIED = Stage.NOT_QUALIFIED
    TRAINING = Stage.TRAINING

    MESSAGES = {
        QUALIFICATION: "Pass this project's qualification test first: open the labelling page to take it.",
        NOT_QUALIFIED: "You did not pass this project's qualification test, so no items are given to you.",
        TRAINING: "Finish your practice items first: open the labelling page to go on.",
        BLOCKED: "You are blocked from this project, so no new items are given to you.",
        BUDGET: "The project's budget is used up: no paid items are handed out until a manager raises it.",
        DONE: "There is nothing left for you to label in this project. Thank you!",
        BUSY: "Every remaining item is being labelled by others right now. Try again in a few minutes.",
        NO_LABELS: "This project has no labels yet; a manager must add them before labelling starts.",
        LIMIT: "You have labelled as many items as one person may in this project. Thank you!",
    }


@dataclass
class NextTask:
    assignment: Assignment | None
    reason: str = ""

    @property
    def message(self) -> str:
        return NoTask.MESSAGES.get(self.reason, "")


@dataclass
class SubmitResult:
    annotation: Annotation
    created: bool
    answer: Answer


class SubmitRefused(Conflict):
    """A submit (or skip, or change) that cannot be taken; nothing was changed. The message
    says why."""


def _is_blocked(project: Project, user: User) -> bool:
    """From the permission gate when the caller went through it (for this user)."""
    if project.user_blocked is not None:
        return project.user_blocked
    return Membership.objects.filter(project=project, user=user, is_blocked=True).exists()


def leases_expire(*, project: Project, now: Any = None) -> int:
    """Expire the project's leases whose time is up and give their items the room back.

    Locks follow the order every writer here uses, item then assignment, so no two
    transactions can wait on each other; items another transaction holds are skipped
    and swept next time."""
    now = now or timezone.now()
    _last_sweep[project.pk] = time.monotonic()
    stale = Assignment.objects.filter(project=project, state=AssignmentState.LEASED, expires_at__lte=now)
    with transaction.atomic():
        items = list(
            Item.objects.filter(pk__in=stale.values("item_id"))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        if not items:
            return 0
        expired = list(stale.filter(item_id__in=items).select_for_update().values_list("pk", "item_id"))
        Assignment.objects.filter(pk__in=[pk for pk, _ in expired]).update(
            state=AssignmentState.EXPIRED, finished_at=now
        )
        for item_id, count in Counter(item_id for _, item_id in expired).items():
            Item.objects.filter(pk=item_id).update(lease_count=F("lease_count") - count)
    return len(expired)


def _unseen_by(annotator: User) -> Exists:
    """Items this annotator holds, answered or skipped (an expired lease does not count)."""
    return Exists(
        Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator).exclude(state=AssignmentState.EXPIRED)
    )


def _regular_candidates(project: Project, annotator: User) -> QuerySet[Item]:
    return (
        Item.objects.filter(project=project, is_gold=False)
        .exclude(state=ItemState.COMPLETE)
        .alias(taken=F("annotation_count") + F("lease_count"))
        .filter(taken__lt=F("extra_annotations") + project.overlap)
        .exclude(_unseen_by(annotator))
        .order_by("-priority", "random_key")
    )


def _gold_candidates(project: Project, annotator: User) -> QuerySet[Item]:
    # A gold item they practised on showed them its answer: it cannot check them.
    practised = Exists(PracticeAnswer.objects.filter(item=OuterRef("pk"), annotator=annotator))
    return (
        Item.objects.filter(project=project, is_gold=True)
        .exclude(_unseen_by(annotator))
        .exclude(practised)
        .order_by("?")
    )


def _lock_first(items: QuerySet[Item]) -> Item | None:
    return items.select_related("suggestion").select_for_update(skip_locked=True, of=("self",)).first()


def _budget_allows_paid_lease(project: Project, now: Any) -> bool:
    if project.budget_max_annotations is None:
        return True
    locked = Project.objects.select_for_update().get(pk=project.pk)
    live_paid = Assignment.objects.filter(
        project=project, state=AssignmentState.LEASED, is_gold=False, expires_at__gt=now
    ).count()
    return locked.budget_spent + live_paid < (locked.budget_max_annotations or 0)


def _within_personal_limit(project: Project, annotator: User, now: Any) -> bool:
    """Below the per-person limit, counting answers and live leases. The membership row is
    locked first (a manager acting as a site admin may have none: nothing to lock then), so
    a person's concurrent requests count one after the other, each seeing the lease the one
    before took (PostgreSQL reads committed rows afresh in each statement)."""
    limit = project.max_items_per_annotator
    if limit is None:
        return True
    list(Membership.objects.select_for_update().filter(project=project, user=annotator).values_list("pk", flat=True))
    answered = Annotation.objects.filter(project=project, annotator=annotator).count()
    leased = Assignment.objects.filter(
        project=project, annotator=annotator, state=AssignmentState.LEASED, expires_at__gt=now
    ).count()
    return answered + leased < limit


def _lease(project: Project, annotator: User, item: Item, now: Any) -> Assignment | None:
    """Lease the item, or take up the annotator's expired lease on it again (one row per
    pair), in one statement. Returns None when the pair already has a live row: another
    request of the same annotator took the item a moment ago, which the candidate query
    could not see yet. ``ON CONFLICT ... WHERE`` is what keeps that race from counting one
    lease twice."""
    table = Assignment._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    expires = now + timedelta(minutes=project.lease_minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (project_id, item_id, annotator_id, state, is_gold, leased_at, expires_at, skip_reason)
            VALUES (%s, %s, %s, %s, %s, %s, %s, '')
            ON CONFLICT (item_id, annotator_id) DO UPDATE
                SET state = excluded.state, leased_at = excluded.leased_at,
                    expires_at = excluded.expires_at, finished_at = NULL
                WHERE {table}.state = %s
            RETURNING id
            """,  # nosec B608 # the table name is the model's own; every value is a bound parameter
            [
                project.pk, item.pk, annotator.pk, AssignmentState.LEASED, item.is_gold,
                adapt(now), adapt(expires), AssignmentState.EXPIRED,
            ],
        )  # fmt: skip
        row = cursor.fetchone()
    if row is None:
        return None
    Item.objects.filter(pk=item.pk).update(lease_count=F("lease_count") + 1)
    assignment = Assignment(
        pk=row[0],
        project=project,
        item=item,
        annotator=annotator,
        state=AssignmentState.LEASED,
        is_gold=item.is_gold,
        leased_at=now,
        expires_at=expires,
    )
    return assignment


def task_next_for_annotator(
    *,
    project: Project,
    annotator: User,
    exclude_assignment_ids: tuple[int, ...] = (),
    labels: LabelIndex | None = None,
) -> NextTask:
    """Lease the next item for an annotator, or say why there is none.

    ``exclude_assignment_ids``: leases the annotator's screen already shows (the current
    item while the next one is fetched ahead); they are not handed back again.
    ``labels``: the project's labels when the caller has loaded them already."""
    if _is_blocked(project, annotator):
        return NextTask(None, NoTask.BLOCKED)
    if not (labels.labels if labels is not None else project.labels.exists()):
        return NextTask(None, NoTask.NO_LABELS)
    stage = crowd_stage(project=project, annotator=annotator)
    if stage != Stage.WORK:
        return NextTask(None, stage)
    if time.monotonic() - _last_sweep.get(project.pk, 0.0) > SWEEP_EVERY_SECONDS:
        leases_expire(project=project)
    outcome = _lease_next(project, annotator, exclude_assignment_ids)
    # Nothing free may only mean that leases ran out since the last sweep.
    nothing_free = outcome.assignment is None and outcome.reason in (NoTask.BUSY, NoTask.DONE)
    if nothing_free and leases_expire(project=project):
        outcome = _lease_next(project, annotator, exclude_assignment_ids)
    return outcome


@transaction.atomic
def _lease_next(project: Project, annotator: User, exclude_assignment_ids: tuple[int, ...]) -> NextTask:
    now = timezone.now()
    own = (
        Assignment.objects.filter(
            project=project, annotator=annotator, state=AssignmentState.LEASED, expires_at__gt=now
        )
        .exclude(pk__in=exclude_assignment_ids)
        .select_related("item", "item__suggestion")
        .first()
    )
    if own is not None:
        return NextTask(own)
    if not _within_personal_limit(project, annotator, now):
        return NextTask(None, NoTask.LIMIT)
    # Gold items are free, but they only make sense mixed into paid work: once the
    # budget is spent nothing is handed out.
    if not _budget_allows_paid_lease(project, now):
        return NextTask(None, NoTask.BUDGET)
    want_gold = project.gold_ratio > 0 and random.random() < project.gold_ratio  # nosec B311 # a sample, not a secret
    for _ in range(3):  # a lost race with the annotator's own other request: look again
        item = _lock_first(_gold_candidates(project, annotator)) if want_gold else None
        if item is None:
            item = _lock_first(_regular_candidates(project, annotator))
        if item is None:
            waiting = (
                Item.objects.filter(project=project, is_gold=False)
                .exclude(state=ItemState.COMPLETE)
                .exclude(_unseen_by(annotator))
                .exists()
            )
            return NextTask(None, NoTask.BUSY if waiting else NoTask.DONE)
        assignment = _lease(project, annotator, item, now)
        if assignment is not None:
            return NextTask(assignment)
    return NextTask(None, NoTask.BUSY)


def _assignment_lock(project: Project, annotator: User, assignment_id: Any) -> tuple[Assignment, Item]:
    """Lock one of this annotator's assignments in this project, and its item; anything
    else is a 404. The item is locked first: every writer here locks item, then
    assignment, so no two transactions wait on each other."""
    assignment = assignment_get(project=project, annotator=annotator, assignment_id=assignment_id)
    item = Item.objects.select_for_update().get(pk=assignment.item_id)
    return Assignment.objects.select_for_update().get(pk=assignment.pk), item


def _believable_duration(duration_ms: Any, assignment: Assignment, now: Any) -> int:
    """The client's measure of time spent when plausible, else the lease's age."""
    lease_age = int((now - assignment.leased_at).total_seconds() * 1000)
    try:
        reported = int(duration_ms)
    except (TypeError, ValueError):
        return lease_age
    if 0 < reported <= min(MAX_BELIEVABLE_DURATION_MS, lease_age + 60_000):
        return reported
    return min(lease_age, MAX_BELIEVABLE_DURATION_MS)


def _answer(project: Project, item: Item, value: Any, labels: LabelIndex | None = None) -> Answer:
    try:
        labels = labels if labels is not None else LabelIndex.for_project(project)
        return value_parse(project=project, labels=labels, raw=value, text=item.text)
    except InvalidValue as problem:
        raise ValidationError({"value": str(problem)}) from None


def _item_has_room(project: Project, item: Item, assignment: Assignment) -> bool:
    """For a late submit: is there still room for this answer on the item?"""
    if item.is_gold:
        return True
    own_lease = 1 if assignment.state == AssignmentState.LEASED else 0
    return item.annotation_count + item.lease_count - own_lease < project.overlap + item.extra_annotations


def _existing_answer(annotator: User, submission_id: uuid.UUID) -> Annotation | None:
    return Annotation.objects.filter(annotator=annotator, submission_id=submission_id).first()


def _repeated(annotation: Annotation) -> SubmitResult:
    return SubmitResult(annotation, created=False, answer=annotation_answer(annotation))


def _submission_reused(annotation: Annotation) -> SubmitRefused:
    """A client that sends one submission id for two items has a bug (or replays the
    wrong request): answering with the other item's answer would hide that, so refuse."""
    return SubmitRefused(
        f"This submission id was already used for your answer on item {annotation.item_id}; "
        "each answer needs its own submission id. Nothing was saved."
    )


def annotation_submit(
    *,
    project: Project,
    annotator: User,
    assignment_id: Any,
    value: Any,
    submission_id: Any,
    duration_ms: Any = None,
    labels: LabelIndex | None = None,
) -> SubmitResult:
    """Record an annotator's answer for a leased item.

    Refused (SubmitRefused or ValidationError, nothing changed): an invalid answer, a
    skipped item, or a lease that ran out after the item went to someone else. A lease
    that ran out while the item still has room is honoured, so slow annotators do not
    lose work for nothing. Raises Http404 for an assignment that is not theirs."""
    try:
        submission = uuid.UUID(str(submission_id))
    except ValueError:
        raise ValidationError({"submission_id": "The submission id must be a UUID."}) from None
    # A repeated submit finds its assignment SUBMITTED and gets the first answer back;
    # the same submission id on another assignment breaks a unique constraint, below.
    now = timezone.now()
    try:
        with transaction.atomic():
            return _submit(project, annotator, assignment_id, value, submission, duration_ms, now, labels)
    except IntegrityError:
        # Either the same submit raced itself (two requests at once: the first one won),
        # or the submission id belongs to another assignment's answer.
        existing = _existing_answer(annotator, submission)
        if existing is None:
            raise
        assignment = assignment_get(project=project, annotator=annotator, assignment_id=assignment_id)
        if existing.assignment_id != assignment.pk:
            raise _submission_reused(existing) from None
        return _repeated(existing)


def _submit(
    project: Project,
    annotator: User,
    assignment_id: Any,
    value: Any,
    submission: uuid.UUID,
    duration_ms: Any,
    now: Any,
    labels: LabelIndex | None,
) -> SubmitResult:
    assignment, item = _assignment_lock(project, annotator, assignment_id)
    if assignment.state == AssignmentState.SUBMITTED:
        # A replay, or a second click that made a new submission id: the item is answered
        # already. A new id that another item's answer holds is still a reuse.
        annotation = Annotation.objects.get(assignment=assignment)
        if annotation.submission_id != submission:
            reused = _existing_answer(annotator, submission)
            if reused is not None:
                raise _submission_reused(reused)
        return _repeated(annotation)
    if assignment.state == AssignmentState.SKIPPED:
        raise SubmitRefused("You skipped this item, so it cannot take an answer from you now.")
    answer = _answer(project, item, value, labels)
    lease_live = assignment.state == AssignmentState.LEASED and assignment.expires_at > now
    if not lease_live:
        room = _item_has_room(project, item, assignment) and (
            item.is_gold or assignment.state == AssignmentState.LEASED or _budget_allows_paid_lease(project, now)
        )
        if not room:
            raise SubmitRefused(
                f"Your time on this item ran out ({project.lease_minutes} minutes) and it went to other "
                "annotators, so this answer was not saved."
            )
        if not _within_personal_limit(project, annotator, now):
            raise SubmitRefused(
                f"Your time on this item ran out ({project.lease_minutes} minutes), and meanwhile you reached "
                "the most items one person may label in this project, so this answer was not saved."
            )
    annotation = Annotation.objects.create(
        project=project,
        item=item,
        annotator=annotator,
        assignment=assignment,
        submission_id=submission,
        is_gold=item.is_gold,
        duration_ms=_believable_duration(duration_ms, assignment, now),
    )
    _parts_write(annotation, answer)
    held_lease = assignment.state == AssignmentState.LEASED
    assignment.state, assignment.finished_at = AssignmentState.SUBMITTED, now
    assignment.save(update_fields=["state", "finished_at"])
    item.annotation_count += 1
    item.lease_count -= 1 if held_lease else 0
    item.state = ItemState.IN_PROGRESS
    item.save(update_fields=["annotation_count", "lease_count", "state"])
    if item.is_gold:
        annotator_quality_check(project=project, annotator=annotator)
    elif item.annotation_count >= project.overlap + item.extra_annotations:
        item_on_complete(project=project, item=item)
    # Last in the transaction: the project row stays locked for the shortest time.
    Project.objects.filter(pk=project.pk).update(
        budget_spent=F("budget_spent") + (0 if item.is_gold else 1),
        pending_consolidation=F("pending_consolidation") + 1,
    )
    if project.pending_consolidation + 1 >= project.consolidate_every:
        transaction.on_commit(lambda: consolidation_request(project=project))
    return SubmitResult(annotation, created=True, answer=answer)


def _parts_write(annotation: Annotation, answer: Answer) -> None:
    AnnotationLabel.objects.bulk_create(
        AnnotationLabel(annotation=annotation, label_id=part.label_id, start=part.start, end=part.end)
        for part in answer
    )


def item_on_complete(*, project: Project, item: Item) -> None:
    """The one call point for an item that has reached its k answers, inside the submit's
    transaction: it gets a provisional label at once, and either leaves the queue or,
    when that label is too unsure and the project allows more annotators (dynamic
    overlap), asks for one more answer."""
    consensus = consensus_provisional(project=project, item=item)
    most = project.max_overlap or project.overlap
    unsure = (
        consensus is not None
        and not consensus.is_reviewed
        and (consensus.confidence or 0.0) < project.confidence_threshold
    )
    if unsure and project.overlap + item.extra_annotations < most:
        item.extra_annotations += 1
        item.save(update_fields=["extra_annotations"])
        return
    item.state = ItemState.COMPLETE
    item.save(update_fields=["state"])
    events.items_completed.send(sender=None, project=project, count=1)


@transaction.atomic
def assignment_skip(*, project: Project, annotator: User, assignment_id: Any, reason: str = "") -> Assignment:
    """Give an item back without answering it; the annotator will not get it again."""
    assignment, _item = _assignment_lock(project, annotator, assignment_id)
    if assignment.state == AssignmentState.SKIPPED:
        return assignment
    if assignment.state == AssignmentState.SUBMITTED:
        raise SubmitRefused("You answered this item already; go back to it to change your answer instead.")
    if assignment.state == AssignmentState.LEASED:
        Item.objects.filter(pk=assignment.item_id).update(lease_count=F("lease_count") - 1)
    assignment.state = AssignmentState.SKIPPED
    assignment.finished_at = timezone.now()
    assignment.skip_reason = reason.strip()[:300]
    assignment.save(update_fields=["state", "finished_at", "skip_reason"])
    return assignment


def annotation_is_editable(*, annotation: Annotation, recent_ids: set[int]) -> bool:
    return annotation.pk in recent_ids and annotation.item.consolidated_at is None


def recent_annotation_ids(*, project: Project, annotator: User) -> set[int]:
    return set(
        Annotation.objects.filter(project=project, annotator=annotator)
        .order_by("-id")
        .values_list("pk", flat=True)[:EDITABLE_RECENT]
    )


def _version(raw: Any) -> int:
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({"version": "Say which version of the answer you changed; reload the page."}) from None
    if version < 1:
        raise ValidationError({"version": "Versions start at 1."})
    return version


@transaction.atomic
def annotation_update(*, project: Project, annotator: User, annotation_id: Any, value: Any, version: Any) -> Annotation:
    """Change one of the annotator's latest answers, while its item is not consolidated.

    ``version`` is the answer's version the change started from: when the answer has
    changed since (another tab, a replayed request), the change is refused, so a stale
    edit never overwrites a newer one. The row lock makes the check and the write one step."""
    expected = _version(version)
    try:
        annotation = (
            Annotation.objects.select_for_update()
            .select_related("item")
            .get(pk=int(annotation_id), project=project, annotator=annotator)
        )
    except (Annotation.DoesNotExist, TypeError, ValueError):
        raise Http404("No such annotation of yours in this project.") from None
    recent_ids = recent_annotation_ids(project=project, annotator=annotator)
    if not annotation_is_editable(annotation=annotation, recent_ids=recent_ids):
        raise SubmitRefused(
            f"Only your last {EDITABLE_RECENT} answers can be changed, and only until their items are consolidated."
        )
    if annotation.version != expected:
        raise SubmitRefused(
            "This answer was changed since you opened it (in another tab or window), so your change was not "
            "saved. Reload to see the newer answer."
        )
    answer = _answer(project, annotation.item, value)
    annotation.labels.all().delete()
    _parts_write(annotation, answer)
    annotation.version += 1
    annotation.save(update_fields=["updated_at", "version"])
    return annotation


def project_answers_delete(*, project: Project) -> None:
    """Delete every annotation's parts in the project, in one statement: they protect the
    project's labels, which the project's deletion is about to take (projects sends
    ``project_deleting`` first)."""
    AnnotationLabel.objects.filter(annotation__project=project).delete()
