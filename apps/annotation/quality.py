"""Annotator quality from gold items, and the rule that blocks annotators below the bar.

After ``quality_min_gold`` gold answers, an annotator whose mean gold score is below the
project's ``quality_threshold`` is blocked: they get no new items, and their answers are
excluded from consolidation or down-weighted (``blocked_answers``). A reviewer sees the
reason and can unblock; gold answers given before the unblock no longer count.
"""

from collections import defaultdict
from typing import Any

from django.contrib.auth.models import User

from apps.projects.answers import Answer, answer_score
from apps.projects.models import Membership, Project, Role
from apps.projects.selectors import gold_answers
from apps.projects.services import membership_block

from .models import Annotation
from .selectors import answers_of


def gold_scores(*, project: Project, annotator_ids: list[int] | None = None) -> dict[int, list[tuple[Any, float]]]:
    """Per annotator, (answered at, score) for each of their gold answers."""
    answers = Annotation.objects.filter(project=project, is_gold=True)
    if annotator_ids is not None:
        answers = answers.filter(annotator_id__in=annotator_ids)
    meta = {
        pk: (annotator, item, at)
        for pk, annotator, item, at in answers.values_list("pk", "annotator_id", "item_id", "created_at")
    }
    given = answers_of(answers)
    truth = gold_answers(project=project, item_ids={item for _, item, _ in meta.values()})
    scores: dict[int, list[tuple[Any, float]]] = defaultdict(list)
    for pk, (annotator, item, at) in meta.items():
        score = answer_score(project.task_type, given.get(pk, Answer()), truth.get(item, Answer()))
        scores[annotator].append((at, score))
    return scores


def gold_accuracy(scores: list[tuple[Any, float]]) -> float | None:
    return sum(score for _, score in scores) / len(scores) if scores else None


def annotator_quality_check(*, project: Project, annotator: User) -> Membership | None:
    return _check(project, [annotator.pk]).get(annotator.pk)


def annotators_check(*, project: Project) -> dict[int, Membership]:
    return _check(project, None)


def _check(project: Project, annotator_ids: list[int] | None) -> dict[int, Membership]:
    memberships = Membership.objects.filter(project=project, role=Role.ANNOTATOR, is_blocked=False)
    if annotator_ids is not None:
        memberships = memberships.filter(user_id__in=annotator_ids)
    memberships_by_user = {m.user_id: m for m in memberships}
    if not memberships_by_user:
        return {}
    blocked = {}
    for user_id, scores in gold_scores(project=project, annotator_ids=list(memberships_by_user)).items():
        membership = memberships_by_user[user_id]
        counted = [s for s in scores if membership.unblocked_at is None or s[0] > membership.unblocked_at]
        accuracy = gold_accuracy(counted)
        if accuracy is None or len(counted) < project.quality_min_gold or accuracy >= project.quality_threshold:
            continue
        reason = (
            f"Gold accuracy {accuracy:.0%} on {len(counted)} gold items, below the project's "
            f"threshold of {project.quality_threshold:.0%}."
        )
        blocked[user_id] = membership_block(membership=membership, reason=reason)
    return blocked
