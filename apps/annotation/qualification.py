"""The qualification test and training mode: what a newcomer does before real work.

1. The test (``Project.qualification_size`` > 0). An annotator whose membership has no
   ``qualified_at`` takes it before anything else. Starting an attempt draws its gold items
   at random (those of no earlier attempt first) and stores their ids on the
   ``QualificationAttempt``, so a reload shows the same items in the same order. The
   answers are stored on the attempt. When the last item is answered the attempt is scored
   against the gold answers with the project's own scoring (``answer_score``, averaged over
   the items); a score at or above the pass mark sets ``Membership.qualified_at``. After a
   failed attempt a person may start another while ``qualification_attempts`` allows.
   A project with fewer gold items than the test size tests on those it has.
2. Training (``Project.training_items`` = N > 0). Then a newcomer's first N items are gold
   items to practise on: each answer is a ``PracticeAnswer``, and the page shows the right
   answer at once. Fewer gold items than N: they practise on those there are.
3. People who have already answered an item of the project (before either was switched on)
   are never sent back: a test switched on mid-project leaves the working crowd at work.
   Only annotators take them; managers label without.

Test and practice answers are not Annotations: they never reach consolidation, agreement,
the budget, pay, or gold-based blocking. A gold item someone practised on is not used to
check that person later (they have seen its answer): task distribution leaves it out.
"""

import random
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from apps.projects.answers import Answer, InvalidValue, LabelIndex, answer_score, value_parse
from apps.projects.models import Item, Membership, Project, Role
from apps.projects.selectors import gold_answers
from platform.errors import Conflict

from .models import Annotation, Assignment, PracticeAnswer, QualificationAttempt

# A score this close below the pass mark passes: 4 of 5 is 0.8 however the mean is summed.
SCORE_TOLERANCE = 1e-9


class Stage:
    """What an annotator must do before real work. The names double as task distribution's
    reasons for handing out no item (``services.NoTask``)."""

    WORK = ""
    TEST = "qualification"
    NOT_QUALIFIED = "not_qualified"
    TRAINING = "training"


class QualificationRefused(Conflict):
    """A test or practice answer (or a new attempt) that cannot be taken; nothing changed."""


# --- who must do what --------------------------------------------------------------------------


def crowd_stage(*, project: Project, annotator: User) -> str:
    """Whether ``annotator`` may do real work in ``project``, or must first take the test
    (or has failed it for good), or practise. Costs no query in a project with neither a
    test nor training, one for a qualified annotator in a project without training."""
    if not project.qualification_size and not project.training_items:
        return Stage.WORK
    membership = Membership.objects.filter(project=project, user=annotator).only("role", "qualified_at").first()
    if membership is None or membership.role != Role.ANNOTATOR:
        return Stage.WORK
    test_due = bool(project.qualification_size) and membership.qualified_at is None
    if not test_due and not project.training_items:
        return Stage.WORK
    if Annotation.objects.filter(project=project, annotator=annotator).exists():
        return Stage.WORK
    if test_due:
        attempts = QualificationAttempt.objects.filter(project=project, annotator=annotator)
        used = attempts.filter(finished_at__isnull=False).count()
        return Stage.TEST if used < project.qualification_attempts else Stage.NOT_QUALIFIED
    return Stage.TRAINING if practice_item_next(project=project, annotator=annotator) else Stage.WORK


def _parse(project: Project, item: Item, value: Any, labels: LabelIndex | None) -> Answer:
    try:
        labels = labels if labels is not None else LabelIndex.for_project(project)
        return value_parse(project=project, labels=labels, raw=value, text=item.text)
    except InvalidValue as problem:
        raise ValidationError({"value": str(problem)}) from None


def _item_id(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Http404("No such item.") from None


# --- the test ------------------------------------------------------------------------------------


@dataclass
class QualificationState:
    """One person's test, as its page shows it."""

    open: QualificationAttempt | None  # the attempt under way
    item: Item | None  # its next item to answer
    position: int  # that item's number, from 1
    size: int  # items in the attempt under way, or in a new one
    latest: QualificationAttempt | None  # the last finished attempt
    used: int  # finished attempts
    allowed: int  # attempts the project allows
    qualified: bool
    gold_available: int
    stage: str

    @property
    def attempts_left(self) -> int:
        return max(self.allowed - self.used, 0)

    @property
    def step(self) -> str:
        """What the test page shows: an item, the start (or a retry after a failed
        attempt), that they passed, that they failed for good, or nothing ("")."""
        if self.item is not None:
            return "item"
        if self.qualified:
            return "passed" if self.latest is not None else ""
        if self.stage == Stage.TEST:
            return "retry" if self.latest is not None else "start"
        return "failed" if self.stage == Stage.NOT_QUALIFIED else ""


def attempt_items(attempt: QualificationAttempt) -> list[Item]:
    """The attempt's items in their drawn order, without any that stopped being gold items
    of the project since (a manager edited them): those are neither shown nor scored."""
    found = Item.objects.filter(project_id=attempt.project_id, is_gold=True).in_bulk(attempt.item_ids)
    return [found[item_id] for item_id in attempt.item_ids if item_id in found]


def _next_unanswered(attempt: QualificationAttempt, items: list[Item]) -> tuple[Item | None, int]:
    for position, item in enumerate(items, start=1):
        if str(item.pk) not in attempt.answers:
            return item, position
    return None, len(items)


def qualification_state(*, project: Project, annotator: User) -> QualificationState:
    attempts = list(QualificationAttempt.objects.filter(project=project, annotator=annotator).order_by("number"))
    finished = [attempt for attempt in attempts if attempt.finished_at is not None]
    open_attempt = next((attempt for attempt in attempts if attempt.finished_at is None), None)
    gold_available = Item.objects.filter(project=project, is_gold=True).count()
    item, position, size = None, 0, min(project.qualification_size, gold_available)
    if open_attempt is not None:
        items = attempt_items(open_attempt)
        item, position = _next_unanswered(open_attempt, items)
        size = len(items)
    qualified = Membership.objects.filter(project=project, user=annotator, qualified_at__isnull=False).exists()
    return QualificationState(
        open=open_attempt,
        item=item,
        position=position,
        size=size,
        latest=finished[-1] if finished else None,
        used=len(finished),
        allowed=project.qualification_attempts,
        qualified=qualified,
        gold_available=gold_available,
        stage=crowd_stage(project=project, annotator=annotator),
    )


def _draw(gold_ids: list[int], seen: set[int], size: int) -> list[int]:
    """``size`` gold items (every one when there are fewer), preferring those no earlier
    attempt showed, in random order."""
    fresh = [item_id for item_id in gold_ids if item_id not in seen]
    shown = [item_id for item_id in gold_ids if item_id in seen]
    random.shuffle(fresh)  # nosec B311 # a sample of test items, not a secret
    random.shuffle(shown)  # nosec B311
    chosen = (fresh + shown)[:size]
    random.shuffle(chosen)  # nosec B311
    return chosen


@transaction.atomic
def qualification_start(*, project: Project, annotator: User) -> QualificationAttempt:
    """Start an attempt at the test, or return the one under way (a second click, another
    tab). Refused when the person needs no test, passed it, or used every attempt."""
    # The membership's row lock makes two starts at once one attempt.
    Membership.objects.select_for_update().filter(project=project, user=annotator).first()
    attempts = list(QualificationAttempt.objects.filter(project=project, annotator=annotator))
    open_attempt = next((attempt for attempt in attempts if attempt.finished_at is None), None)
    if open_attempt is not None and _settle_emptied(project, open_attempt):
        attempts = list(QualificationAttempt.objects.filter(project=project, annotator=annotator))
        open_attempt = None
    stage = crowd_stage(project=project, annotator=annotator)
    if stage == Stage.NOT_QUALIFIED:
        raise QualificationRefused(
            f"You have used all {project.qualification_attempts} attempts at this project's test."
        )
    if stage != Stage.TEST:
        raise QualificationRefused("You do not need to take this project's test.")
    if open_attempt is not None:
        return open_attempt
    gold_ids = list(Item.objects.filter(project=project, is_gold=True).order_by("pk").values_list("pk", flat=True))
    if not gold_ids:
        raise QualificationRefused(
            "The test is not ready: the project has no gold items yet. Ask the project's manager."
        )
    seen = {item_id for attempt in attempts for item_id in attempt.item_ids}
    return QualificationAttempt.objects.create(
        project=project,
        annotator=annotator,
        number=max((attempt.number for attempt in attempts), default=0) + 1,
        item_ids=_draw(gold_ids, seen, project.qualification_size),
    )


def _settle_emptied(project: Project, attempt: QualificationAttempt) -> bool:
    """An attempt under way with nothing left to answer, because a manager took its
    remaining items out of the gold set, ends: scored on what was answered, or, with
    nothing answered, deleted without counting. True when it ended."""
    items = attempt_items(attempt)
    if _next_unanswered(attempt, items)[0] is not None:
        return False
    answered = [item for item in items if str(item.pk) in attempt.answers]
    if not answered:
        attempt.delete()
        return True
    _finish(project, attempt, answered)
    attempt.save(update_fields=["score", "passed", "finished_at"])
    return True


def _score(project: Project, attempt: QualificationAttempt, items: list[Item]) -> float:
    """The mean score of the attempt's answers against the gold answers."""
    if not items:
        return 0.0
    truth = gold_answers(project=project, item_ids=[item.pk for item in items])
    scores = [
        answer_score(project.task_type, Answer.from_json(attempt.answers[str(item.pk)]), truth.get(item.pk, Answer()))
        for item in items
    ]
    return sum(scores) / len(scores)


def _finish(project: Project, attempt: QualificationAttempt, items: list[Item]) -> None:
    now = timezone.now()
    attempt.score = _score(project, attempt, items)
    attempt.passed = attempt.score >= project.qualification_pass_mark - SCORE_TOLERANCE
    attempt.finished_at = now
    if attempt.passed:
        # Projects keeps the membership; passing the test is annotation's to record.
        Membership.objects.filter(project=project, user=attempt.annotator_id, qualified_at__isnull=True).update(
            qualified_at=now
        )


@transaction.atomic
def qualification_answer(
    *, project: Project, annotator: User, item_id: Any, value: Any, labels: LabelIndex | None = None
) -> QualificationAttempt:
    """Record the answer to one item of the person's test; the last answer scores the
    attempt (and qualifies the person when it passes).

    A second answer to an item (a double click, a replayed form) keeps the first. Refused:
    an invalid answer (ValidationError), no attempt under way (QualificationRefused), an
    item that is not in it (Http404)."""
    wanted = _item_id(item_id)
    attempt = (
        QualificationAttempt.objects.select_for_update()
        .filter(project=project, annotator=annotator)
        .order_by("-number")
        .first()
    )
    if attempt is not None and str(wanted) in attempt.answers:
        return attempt
    if attempt is None or attempt.finished_at is not None:
        raise QualificationRefused("You have no test under way: start it from the test page.")
    items = attempt_items(attempt)
    item = next((each for each in items if each.pk == wanted), None)
    if item is None:
        raise Http404("No such item in your test.")
    attempt.answers[str(item.pk)] = _parse(project, item, value, labels).to_json()
    if all(str(each.pk) in attempt.answers for each in items):
        _finish(project, attempt, items)
    attempt.save(update_fields=["answers", "score", "passed", "finished_at"])
    return attempt


def qualification_results(*, project: Project) -> dict[int, dict[str, Any]]:
    """Per annotator who started the test: attempts finished, the best score, whether an
    attempt passed and whether one is under way; for the members page."""
    rows = (
        QualificationAttempt.objects.filter(project=project)
        .values("annotator_id")
        .annotate(
            finished=Count("id", filter=Q(finished_at__isnull=False)),
            under_way=Count("id", filter=Q(finished_at__isnull=True)),
            best=Max("score"),
            passes=Count("id", filter=Q(passed=True)),
        )
        .order_by()
    )
    return {
        row["annotator_id"]: {
            "attempts": row["finished"],
            "under_way": bool(row["under_way"]),
            "best": row["best"],
            "passed": bool(row["passes"]),
        }
        for row in rows
    }


def crowd_notices(*, project: Project) -> list[str]:
    """What a manager should know about the test and training settings: too few gold items
    for them, or none left to check newcomers with."""
    if not project.qualification_size and not project.training_items:
        return []
    gold = Item.objects.filter(project=project, is_gold=True).count()
    notices = []
    if project.qualification_size and not gold:
        notices.append(
            "The qualification test needs gold items and the project has none: newcomers who must take it get "
            "no work until you import items with a gold answer, or set the test's size to 0."
        )
    elif project.qualification_size > gold:
        notices.append(
            f"The qualification test is set to {project.qualification_size} items but the project has only "
            f"{gold} gold item{'s' if gold != 1 else ''}, so the test uses those {gold}."
        )
    if project.training_items and gold and project.training_items >= gold:
        notices.append(
            f"Training is set to {project.training_items} items and the project has {gold} gold "
            f"item{'s' if gold != 1 else ''}: newcomers practise on all of them, and since a gold item someone "
            "practised on does not check them later, none is left to check their real work with."
        )
    return notices


# --- training --------------------------------------------------------------------------------------


def _unpractised(project: Project, annotator: User) -> QuerySet[Item]:
    """Gold items this person has neither practised on nor met as real work."""
    practised = PracticeAnswer.objects.filter(item=OuterRef("pk"), annotator=annotator)
    met = Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator)
    return (
        Item.objects.filter(project=project, is_gold=True)
        .exclude(Exists(practised))
        .exclude(Exists(met))
        .order_by("random_key", "pk")
    )


def practice_progress(*, project: Project, annotator: User) -> tuple[int, int]:
    """(items practised, items the training will have): N, or fewer when the project has
    fewer gold items left for this person."""
    done = PracticeAnswer.objects.filter(project=project, annotator=annotator).count()
    if done >= project.training_items:
        return done, done
    return done, done + min(project.training_items - done, _unpractised(project, annotator).count())


def practice_item_next(*, project: Project, annotator: User) -> Item | None:
    """The next gold item to practise on, or None when training is over (N answered, or
    no gold item left for them). It does not check that the person is in training: see
    ``crowd_stage``."""
    if not project.training_items:
        return None
    done = PracticeAnswer.objects.filter(project=project, annotator=annotator).count()
    if done >= project.training_items:
        return None
    return _unpractised(project, annotator).first()


def practice_answer(
    *, project: Project, annotator: User, item_id: Any, value: Any, labels: LabelIndex | None = None
) -> PracticeAnswer:
    """Record a practice answer to the person's current practice item, scored against its
    gold answer. A repeat returns the first answer. Refused: an invalid answer
    (ValidationError), someone not in training, or another item than the current one
    (QualificationRefused)."""
    wanted = _item_id(item_id)
    existing = PracticeAnswer.objects.filter(project=project, annotator=annotator, item_id=wanted).first()
    if existing is not None:
        return existing
    if crowd_stage(project=project, annotator=annotator) != Stage.TRAINING:
        raise QualificationRefused("Your training is over: go on to the real items.")
    item = practice_item_next(project=project, annotator=annotator)
    if item is None or item.pk != wanted:
        raise QualificationRefused("This is not your current practice item; reload the page.")
    answer = _parse(project, item, value, labels)
    truth = gold_answers(project=project, item_ids=[item.pk]).get(item.pk, Answer())
    try:
        with transaction.atomic():
            return PracticeAnswer.objects.create(
                project=project,
                item=item,
                annotator=annotator,
                parts=answer,
                score=answer_score(project.task_type, answer, truth),
            )
    except IntegrityError:
        # The same answer from another tab a moment ago: the first one stands.
        return PracticeAnswer.objects.get(project=project, annotator=annotator, item=item)


def practice_truth(*, project: Project, practice: PracticeAnswer) -> Answer:
    """The gold answer of a practice item (which the person sees once they answered it)."""
    return gold_answers(project=project, item_ids=[practice.item_id]).get(practice.item_id, Answer())


def practice_number(*, project: Project, practice: PracticeAnswer) -> int:
    """Which of the person's practice items this was, from 1."""
    return PracticeAnswer.objects.filter(project=project, annotator=practice.annotator_id, pk__lte=practice.pk).count()


def practice_answer_get(*, project: Project, annotator: User, item_id: Any) -> PracticeAnswer:
    """The person's own practice answer to an item, with its item; anyone else's is a 404."""
    try:
        return PracticeAnswer.objects.select_related("item").get(
            project=project, annotator=annotator, item_id=_item_id(item_id)
        )
    except PracticeAnswer.DoesNotExist:
        raise Http404("You have no practice answer to this item.") from None
