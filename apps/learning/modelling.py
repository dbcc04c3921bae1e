"""Training, evaluating and loading models of every kind behind one small interface.

- ``head``: logistic regression on neighbour-smoothed cached embeddings (single-label:
  softmax; multi-label: one sigmoid per label), regularisation chosen on held-out folds.
- ``finetune``: the whole transformer, for sequence classification.
- Entity spans always train a token-classification model (BIO tags) on the backbone,
  since cached sentence embeddings say nothing about single tokens.

Artifacts: ``config.json`` (mode, task type, backbone, labels, smoothing), and either
``head.safetensors`` plus ``train_set.npz`` (item ids and labels, to refit committees
for ranking) or a Hugging Face model folder saved as safetensors.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.metrics import accuracy_score, f1_score

from apps.projects.answers import Answer, LabelPart
from apps.projects.models import Item, Project, TaskType, TrainingMode

from . import embeddings
from .cache import Features
from .features import NEIGHBOURS, WEIGHT, smooth
from .finetune import finetune_sequence, finetune_tokens, predict_sequence, predict_tokens
from .heads import (
    LinearHead,
    MultiLabelHead,
    head_fit,
    head_from_tensors,
    multilabel_fit,
    self_train,
    soft_head_fit,
)
from .models import ModelVersion
from .store import artifact_path, backbone_resolve
from .training_sets import LabelledSet, Sets


@dataclass
class HeadPredictor:
    head: LinearHead | MultiLabelHead
    features: Features
    backbone: str
    kind: str

    @property
    def classes(self) -> list[int]:
        return self.head.classes

    def probs_items(self, item_ids: Sequence[int]) -> np.ndarray:
        return self.head.predict_proba(self.features.smoothed[self.features.rows(item_ids)])

    def probs_texts(self, texts: Sequence[str]) -> np.ndarray:
        vectors = embeddings.embed(embeddings.backbone_load(self.backbone), list(texts))
        return self.head.predict_proba(smooth(vectors, self.features.base))


@dataclass
class SequencePredictor:
    model_dir: Path
    classes: list[int]
    kind: str = "single"

    def probs_items(self, item_ids: Sequence[int]) -> np.ndarray:
        texts = dict(Item.objects.filter(pk__in=list(item_ids)).values_list("pk", "text"))
        return self.probs_texts([texts[pk] for pk in item_ids])

    def probs_texts(self, texts: Sequence[str]) -> np.ndarray:
        return predict_sequence(self.model_dir, texts)


@dataclass
class TokenPredictor:
    model_dir: Path
    classes: list[int]  # entity label ids, in type-index order
    kind: str = "spans"

    def spans_texts(self, texts: Sequence[str]) -> list[tuple[Answer, np.ndarray]]:
        """Per text: the entities found, and the token tag probabilities (for MNLP)."""
        return [
            (Answer(LabelPart(s, e, self.classes[kind]) for s, e, kind in spans), probs)
            for spans, probs in predict_tokens(self.model_dir, texts)
        ]

    def spans_items(self, item_ids: Sequence[int]) -> list[tuple[Answer, np.ndarray]]:
        texts = dict(Item.objects.filter(pk__in=list(item_ids)).values_list("pk", "text"))
        return self.spans_texts([texts[pk] for pk in item_ids])

    def probs_items(self, item_ids: Sequence[int]) -> np.ndarray:  # token models rank with MNLP instead
        raise NotImplementedError("Entity-span models give token probabilities; use spans_items.")

    def probs_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("Entity-span models give token probabilities; use spans_texts.")


@dataclass
class Trained:
    predictor: Any
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _config(artifact: Path, **values: Any) -> None:
    artifact.mkdir(parents=True, exist_ok=True)
    (artifact / "config.json").write_text(json.dumps(values, indent=2))


def train(project: Project, mode: str, sets: Sets, features: Features, backbone: str, artifact: Path,
          progress: Callable[[float], None]) -> Trained:  # fmt: skip
    # The artifact records the backbone's name; only this worker sees its folder.
    labels = [label.pk for label in project.labels.all()]
    names = {str(label.pk): label.name for label in project.labels.all()}
    common = {"task_type": project.task_type, "backbone": backbone, "labels": names}
    folder = backbone_resolve(backbone)
    if project.task_type == TaskType.SPANS:
        texts = dict(Item.objects.filter(pk__in=sets.train.item_ids).values_list("pk", "text"))
        index = {label: i for i, label in enumerate(labels)}
        spans = [
            [(p.start, p.end, index[p.label_id]) for p in answer if p.start is not None and p.end is not None]
            for answer in sets.train.answers
        ]
        finetune_tokens(
            folder,
            [texts[pk] for pk in sets.train.item_ids],
            spans,
            len(labels),
            artifact / "model",
            progress=progress,
        )
        _config(artifact, mode="token-classification", classes=labels, **common)
        return Trained(TokenPredictor(artifact / "model", labels), {"learning_rate": 1e-4, "min_steps": 150})
    rows = features.rows(sets.train.item_ids)
    if project.task_type == TaskType.MULTI_LABEL:
        targets = np.array([[int(answer.has(label)) for label in labels] for answer in sets.train.answers])
        head: LinearHead | MultiLabelHead = multilabel_fit(features.smoothed[rows], targets, labels)
        progress(1.0)
        artifact.mkdir(parents=True, exist_ok=True)
        save_file(head.tensors(), str(artifact / "head.safetensors"))
        _config(
            artifact,
            mode=TrainingMode.HEAD,
            classes=labels,
            smoothing={"neighbours": NEIGHBOURS, "weight": WEIGHT},
            c=head.c,
            **common,
        )
        return Trained(HeadPredictor(head, features, folder, "multi"), {"C": head.c})
    answers = np.array([answer.label_id for answer in sets.train.answers])
    if mode == TrainingMode.FINETUNE:
        texts = dict(Item.objects.filter(pk__in=sets.train.item_ids).values_list("pk", "text"))
        present = sorted(set(answers.tolist()))
        finetune_sequence(folder, [texts[pk] for pk in sets.train.item_ids], [present.index(a) for a in answers],
                          len(present), artifact / "model", progress=progress)  # fmt: skip
        _config(artifact, mode=TrainingMode.FINETUNE, classes=present, **common)
        return Trained(SequencePredictor(artifact / "model", present), {"learning_rate": 5e-5, "min_steps": 150})
    if sets.train.weak_count:
        head = _weak_head(sets, features, labels)
    else:
        head = head_fit(features.smoothed[rows], answers, weights=np.array(sets.train.weights))
    progress(1.0)
    artifact.mkdir(parents=True, exist_ok=True)
    save_file(head.tensors(), str(artifact / "head.safetensors"))
    np.savez(artifact / "train_set.npz", ids=np.array(sets.train.item_ids, dtype=np.int64), labels=answers)
    smoothing = {"neighbours": NEIGHBOURS, "weight": WEIGHT}
    _config(artifact, mode=TrainingMode.HEAD, classes=head.classes, smoothing=smoothing, c=head.c, c_search=head.search,
            **common)  # fmt: skip
    return Trained(HeadPredictor(head, features, folder, "single"), {"C": head.c, "C_search": head.search})


def _weak_head(sets: Sets, features: Features, labels: list[int]) -> LinearHead:
    """A head for a training set with weak labels: fitted on soft labels (the label model's
    posteriors; people's labels one-hot), each item weighted by its confidence, then
    self-trained on the items it is surest of. Evaluation items are never pseudo-labelled."""
    targets = np.zeros((len(sets.train.item_ids), len(labels)))
    for row, (answer, posteriors) in enumerate(zip(sets.train.answers, sets.train.posteriors, strict=True)):
        if posteriors:
            for label, probability in posteriors.items():
                if label in labels:
                    targets[row, labels.index(label)] = probability
        if targets[row].sum() == 0 and answer.label_id in labels:
            targets[row, labels.index(answer.label_id)] = 1.0
    known = targets.sum(axis=1) > 0
    targets = targets[known] / targets[known].sum(axis=1, keepdims=True)
    weights = np.array(sets.train.weights)[known]
    train_rows = features.rows(np.array(sets.train.item_ids)[known])
    head = soft_head_fit(features.smoothed[train_rows], targets, labels, weights)
    # Self-training sees every item but the evaluation set: positions into that pool.
    held_out = set(features.rows(sets.evaluation.item_ids).tolist()) if sets.evaluation.item_ids else set()
    pool_rows = np.array([row for row in range(len(features.ids)) if row not in held_out], dtype=np.int64)
    labelled = np.searchsorted(pool_rows, train_rows)
    return self_train(head, features.smoothed[pool_rows], labelled, targets, labels, weights)


def predictor_load(version: ModelVersion, features: Features) -> Any:
    artifact = artifact_path(version)
    config = json.loads((artifact / "config.json").read_text())
    if config["mode"] == "token-classification":
        return TokenPredictor(artifact / "model", config["classes"])
    if config["mode"] == TrainingMode.FINETUNE:
        return SequencePredictor(artifact / "model", config["classes"])
    head = head_from_tensors(load_file(str(artifact / "head.safetensors")), config.get("c", 1.0))
    kind = "multi" if isinstance(head, MultiLabelHead) else "single"
    return HeadPredictor(head, features, backbone_resolve(config["backbone"]), kind)


def entity_f1(predicted: Sequence[set[LabelPart]], truth: Sequence[set[LabelPart]]) -> dict[str, float]:
    matched = sum(len(p & t) for p, t in zip(predicted, truth, strict=True))
    found, wanted = sum(map(len, predicted)), sum(map(len, truth))
    precision = matched / found if found else (1.0 if not wanted else 0.0)
    recall = matched / wanted if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(project: Project, predictor: Any, evaluation: LabelledSet, features: Features) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class F1 (classification); entity-level F1 (spans)."""
    names = {label.pk: label.name for label in project.labels.all()}
    if not evaluation.item_ids:
        return {"size": 0, "accuracy": None, "macro_f1": None}
    if predictor.kind == "spans":
        found = [set(spans) for spans, _ in predictor.spans_items(evaluation.item_ids)]
        wanted = [{part for part in answer if part.is_span} for answer in evaluation.answers]
        scores = entity_f1(found, wanted)
        return {"size": len(wanted), "entity_f1": scores["f1"], "precision": scores["precision"],
                "recall": scores["recall"], "macro_f1": scores["f1"], "accuracy": scores["f1"]}  # fmt: skip
    probs = predictor.probs_items(evaluation.item_ids)
    classes = predictor.classes
    if predictor.kind == "multi":
        predicted = probs >= 0.5
        truth = np.array([[answer.has(label) for label in classes] for answer in evaluation.answers])
        return {
            "size": len(truth),
            "accuracy": float((predicted == truth).all(axis=1).mean()),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        }
    predicted_labels = np.array(classes)[probs.argmax(axis=1)]
    truth_labels = np.array([answer.label_id for answer in evaluation.answers])
    present = sorted(set(truth_labels.tolist()) | set(predicted_labels.tolist()))
    per_class = f1_score(truth_labels, predicted_labels, labels=present, average=None, zero_division=0)
    return {
        "size": len(truth_labels),
        "accuracy": float(accuracy_score(truth_labels, predicted_labels)),
        "macro_f1": float(f1_score(truth_labels, predicted_labels, average="macro", zero_division=0)),
        "per_class_f1": {
            names.get(label, str(label)): round(float(score), 4)
            for label, score in zip(present, per_class, strict=True)
        },
    }
