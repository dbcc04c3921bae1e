"""What a model learns from and is judged by: consolidated human labels and weak labels to
train on, and held-out items to evaluate on.

The evaluation set is the gold items when there are at least ``MIN_GOLD_FOR_EVALUATION``,
else a fixed fifth of the consolidated items (chosen by a hash of the item id, so every
run is judged on the same ones), never trained on; with neither, it is empty and the model
says "no evaluation yet". Model labels are never training data. Weak labels (the label
model's, apps/learning/weak.py) train on the items no person's label covers, marked as weak
and weighted by their confidence; a person's label replaces the weak one on the same item.
"""

import hashlib
from dataclasses import dataclass, field

from apps.annotation.selectors import consensus_for_training
from apps.projects.answers import Answer
from apps.projects.models import Project, TaskType
from apps.projects.selectors import gold_answers

from .models import WeakLabel

MIN_GOLD_FOR_EVALUATION = 20


@dataclass
class LabelledSet:
    item_ids: list[int] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    # Per item: True for a weak label, and its label model posteriors (label id -> p), if any.
    weak: list[bool] = field(default_factory=list)
    posteriors: list[dict[int, float] | None] = field(default_factory=list)

    def add(
        self, item_id: int, answer: Answer, weight: float = 1.0, *, weak: bool = False,
        posteriors: dict[int, float] | None = None,
    ) -> None:  # fmt: skip
        self.item_ids.append(item_id)
        self.answers.append(answer)
        self.weights.append(weight)
        self.weak.append(weak)
        self.posteriors.append(posteriors)

    @property
    def weak_count(self) -> int:
        return sum(self.weak)


@dataclass
class Sets:
    train: LabelledSet
    evaluation: LabelledSet
    source: str  # "gold" or "holdout"

    @property
    def evaluation_hash(self) -> str:
        return hashlib.sha256(",".join(map(str, sorted(self.evaluation.item_ids))).encode()).hexdigest()[:16]


def _held_out(item_id: int) -> bool:
    return int(hashlib.sha256(str(item_id).encode()).hexdigest(), 16) % 5 == 0


def sets_build(*, project: Project) -> Sets:
    """Consolidated human labels to train on, and the held-out items to judge by."""
    single = project.task_type == TaskType.SINGLE_LABEL
    labelled = [row for row in consensus_for_training(project=project) if not single or len(row[1]) == 1]
    gold = gold_answers(project=project)
    train, evaluation = LabelledSet(), LabelledSet()
    if len(gold) >= MIN_GOLD_FOR_EVALUATION:
        source, chosen = "gold", labelled
        for item_id, answer in sorted(gold.items()):
            if not single or len(answer) == 1:
                evaluation.add(item_id, answer)
    else:
        source, chosen = "holdout", []
        for row in labelled:
            if _held_out(row[0]):
                evaluation.add(row[0], row[1])
            else:
                chosen.append(row)
    for item_id, answer, confidence in chosen:
        train.add(item_id, answer, float(confidence) if project.train_weight_by_confidence else 1.0)
    _weak_add(project, train, taken={row[0] for row in labelled} | set(gold))
    return Sets(train, evaluation, source)


def _weak_add(project: Project, train: LabelledSet, taken: set[int]) -> None:
    """Weak labels of the items no person's label (nor gold) covers, weighted by confidence."""
    rows = WeakLabel.objects.filter(project=project).order_by("item_id")
    for item_id, answer, confidence, posteriors in rows.values_list("item_id", "answer", "confidence", "posteriors"):
        if item_id in taken or not answer:
            continue
        soft = {int(label): float(p) for label, p in (posteriors or {}).items()} or None
        train.add(item_id, answer, float(confidence), weak=True, posteriors=soft)
