"""Full fine-tuning of the backbone: sequence classification, and token classification
with BIO tags for entity spans. Slower than a head on cached embeddings (meant for a
GPU, or for small sets on a CPU), but it adapts the whole transformer to the task.

Models are saved with ``save_pretrained(safe_serialization=True)`` and loaded with
``use_safetensors=True``: safetensors both ways, no pickle.
"""

import os
import random
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .embeddings import quiet

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MAX_LENGTH = 256
# Small sets need several passes: train for at least this many optimiser steps.
MIN_STEPS = 150
MAX_EPOCHS = 40
Progress = Callable[[float], None]


def epochs_for(items: int, batch_size: int, at_least: int) -> int:
    steps_per_epoch = max(1, -(-items // batch_size))
    return max(at_least, min(MAX_EPOCHS, -(-MIN_STEPS // steps_per_epoch)))


def _seed(seed: int) -> None:
    import torch  # deferred: torch loads only where a model trains or predicts

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _train_and_save(  # noqa: PLR0913
    model,  # noqa: ANN001
    tokenizer,  # noqa: ANN001
    encode: Callable[[list[int]], Any],
    size: int,
    *,
    batch_size: int,
    epochs: int,
    lr: float,
    progress: Progress | None,
    out_dir: Path,
) -> Path:
    """Train on shuffled batches of the ``size`` examples (``encode`` turns example indices
    into a model input with labels), then save model and tokenizer as safetensors."""
    import torch  # deferred: torch loads only where a model trains or predicts

    def batches() -> list:
        order = list(range(size))
        random.shuffle(order)
        return [encode(order[start : start + batch_size]) for start in range(0, size, batch_size)]

    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    plan = [batches() for _ in range(epochs)]
    total = sum(len(epoch) for epoch in plan) or 1
    done = 0
    for epoch in plan:
        for batch in epoch:
            loss = model(**batch).loss
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
            done += 1
            if progress:
                progress(done / total)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def finetune_sequence(
    backbone: str,
    texts: Sequence[str],
    targets: Sequence[int],
    num_labels: int,
    out_dir: Path,
    *,
    epochs: int = 3,
    lr: float = 5e-5,
    batch_size: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    import torch  # deferred: torch loads only where a model trains or predicts
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # deferred, as torch

    _seed(seed)
    quiet()
    epochs = epochs_for(len(texts), batch_size, epochs)
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)  # nosec B615 # local_files_only: a folder on this machine, never the Hub
    model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615 # local_files_only: a folder on this machine, never the Hub
        backbone, num_labels=num_labels, local_files_only=True, use_safetensors=True
    )

    def encode(chunk: list[int]) -> Any:
        encoded = tokenizer(
            [texts[i] for i in chunk], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        encoded["labels"] = torch.tensor([targets[i] for i in chunk])
        return encoded

    return _train_and_save(model, tokenizer, encode, len(texts), batch_size=batch_size, epochs=epochs, lr=lr,
                           progress=progress, out_dir=out_dir)  # fmt: skip


@lru_cache(maxsize=2)
def _loaded(model_dir: str, kind: str):  # noqa: ANN202
    # deferred: transformers loads only where a model trains or predicts
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    quiet()
    loader = AutoModelForSequenceClassification if kind == "sequence" else AutoModelForTokenClassification
    model = loader.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    model.eval()
    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True), model  # nosec B615 # local_files_only: a folder on this machine, never the Hub


def predict_sequence(model_dir: Path, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    import torch  # deferred: torch loads only where a model trains or predicts

    tokenizer, model = _loaded(str(model_dir), "sequence")
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            rows.append(torch.softmax(model(**encoded).logits, dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.num_labels))


# --- entity spans: token classification with BIO tags ----------------------------------------
# Tag ids: 0 = O, 1 + 2k = B-<type k>, 2 + 2k = I-<type k>.


def _token_targets(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int, int]]) -> list[int]:
    targets = []
    for start, end in offsets:
        if start == end:  # special tokens
            targets.append(-100)
            continue
        tag = 0
        for span_start, span_end, kind in spans:
            if start < span_end and span_start < end:
                tag = 1 + 2 * kind if start <= span_start else 2 + 2 * kind
                break
        targets.append(tag)
    return targets


def finetune_tokens(
    backbone: str,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple[int, int, int]]],
    num_types: int,
    out_dir: Path,
    *,
    epochs: int = 4,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    import torch  # deferred: torch loads only where a model trains or predicts
    from transformers import AutoModelForTokenClassification, AutoTokenizer  # deferred, as torch

    _seed(seed)
    quiet()
    epochs = epochs_for(len(texts), batch_size, epochs)
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)  # nosec B615 # local_files_only: a folder on this machine, never the Hub
    model = AutoModelForTokenClassification.from_pretrained(  # nosec B615 # local_files_only: a folder on this machine, never the Hub
        backbone, num_labels=1 + 2 * num_types, local_files_only=True, use_safetensors=True
    )

    def encode(chunk: list[int]) -> Any:
        encoded = tokenizer(
            [texts[i] for i in chunk], padding=True, truncation=True, max_length=MAX_LENGTH,
            return_offsets_mapping=True, return_tensors="pt",
        )  # fmt: skip
        offsets = encoded.pop("offset_mapping").tolist()
        encoded["labels"] = torch.tensor([_token_targets(o, spans[i]) for o, i in zip(offsets, chunk, strict=True)])
        return encoded

    return _train_and_save(model, tokenizer, encode, len(texts), batch_size=batch_size, epochs=epochs, lr=lr,
                           progress=progress, out_dir=out_dir)  # fmt: skip


def predict_tokens(model_dir: Path, texts: Sequence[str]) -> list[tuple[list[tuple[int, int, int]], np.ndarray]]:
    """Per text: spans (start, end, type index) decoded from BIO tags, and the token tag
    probabilities (for MNLP ranking)."""
    import torch  # deferred: torch loads only where a model trains or predicts

    tokenizer, model = _loaded(str(model_dir), "token")
    out = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(
                text, truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True, return_tensors="pt"
            )
            offsets = encoded.pop("offset_mapping")[0].tolist()
            probs = torch.softmax(model(**encoded).logits[0], dim=-1).numpy()
            keep = [i for i, (s, e) in enumerate(offsets) if s != e]
            tags = probs[keep].argmax(axis=1)
            spans: list[tuple[int, int, int]] = []
            open_kind = None
            for position, tag in zip(keep, tags, strict=True):
                start, end = offsets[position]
                if tag == 0:
                    open_kind = None
                    continue
                kind, inside = (tag - 1) // 2, (tag - 1) % 2 == 1
                if inside and open_kind == kind and spans:
                    spans[-1] = (spans[-1][0], end, kind)
                elif inside and open_kind == kind:
                    spans.append((start, end, kind))
                elif open_kind == kind and spans and text[spans[-1][1] : start] == "":
                    spans[-1] = (spans[-1][0], end, kind)  # a B- on a word piece continues the word
                else:
                    spans.append((start, end, kind))
                open_kind = kind
            out.append((spans, probs[keep]))
    return out
