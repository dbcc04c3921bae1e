"""Using a trained model: predictions for texts, and the champion exported to run
outside Quorum (a self-contained folder, and ONNX)."""

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from safetensors.numpy import load_file

from apps.projects.models import Project, TrainingMode

from .modelling import predictor_load
from .models import ModelVersion, VersionStatus
from .selectors import versions
from .store import artifact_config, artifact_path, backbone_resolve, embedding_cache


def _version_for(project: Project, number: int | None = None) -> ModelVersion:
    """The version that serves: a named one, or the champion; ValidationError when there is none."""
    servable = versions(project=project).filter(pruned_at__isnull=True)
    version = (
        servable.filter(number=number).first() if number else servable.filter(status=VersionStatus.CHAMPION).first()
    )
    if version is None:
        raise ValidationError(
            "No such model version." if number else "This project has no champion model yet; train one first."
        )
    return version


def _texts_check(texts: Any) -> list[str]:
    limit = settings.QUORUM_PREDICT_MAX_TEXTS
    if not isinstance(texts, list) or not texts:
        raise ValidationError({"texts": "Send a non-empty list of texts."})
    if len(texts) > limit:
        raise ValidationError({"texts": f"At most {limit} texts per request; send {len(texts)} in several requests."})
    for position, text in enumerate(texts, start=1):
        if not isinstance(text, str) or not text.strip():
            raise ValidationError({"texts": f"Text {position} is empty or not a string."})
        if len(text) > settings.QUORUM_TEXT_MAX_CHARS:
            raise ValidationError(
                {"texts": f"Text {position} is longer than {settings.QUORUM_TEXT_MAX_CHARS:,} characters."}
            )
    return texts


def predict(*, project: Project, texts: list[str], number: int | None = None) -> dict[str, Any]:
    """Labels and probabilities (classification) or entities (spans) for up to 64 texts."""
    texts = _texts_check(texts)
    version = _version_for(project, number)
    features = embedding_cache(project, backbone_resolve(artifact_config(version)["backbone"])).features()
    predictor = predictor_load(version, features)
    names = {label.pk: label.name for label in project.labels.all()}
    results: list[dict[str, Any]] = []
    if predictor.kind == "spans":
        for text, (answer, _) in zip(texts, predictor.spans_texts(texts), strict=True):
            results.append(
                {
                    "entities": [
                        {
                            "start": p.start,
                            "end": p.end,
                            "label": names.get(p.label_id, str(p.label_id)),
                            "text": text[p.start : p.end],
                        }
                        for p in answer
                    ]
                }
            )
    else:
        probs = predictor.probs_texts(texts)
        for row in probs:
            probabilities = {
                names.get(label, str(label)): round(float(p), 4)
                for label, p in zip(predictor.classes, row, strict=True)
            }
            if predictor.kind == "multi":
                results.append(
                    {"labels": [name for name, p in probabilities.items() if p >= 0.5], "probabilities": probabilities}
                )
            else:
                best = max(probabilities, key=lambda name: probabilities[name])
                results.append({"label": best, "probabilities": probabilities})
    return {"version": version.number, "results": results}


# --- export -------------------------------------------------------------------------------------

README = """# Quorum model v{number} of "{project}"

Trained by Quorum on {train} labels; evaluated on {evaluation} ({metrics}).

Pipeline (task: {task}):
1. tokenise with `backbone/` (a Hugging Face model folder), at most 256 tokens;
2. mean-pool the last hidden state over the attention mask, L2-normalise;
3. (head models) mix with the mean of the 10 most similar rows of `neighbour_base.npy`
   (cosine), weight 0.7, and L2-normalise again;
4. multiply by `head.safetensors` (`coef`, `intercept`); softmax (single-label) or
   sigmoid per label (multi-label). Classes are label ids; `label_map.json` names them.

`model.onnx` does all of this in one graph: inputs `input_ids` and `attention_mask`
(int64, batch x tokens), output `probabilities`.
"""


def export_folder(version: ModelVersion) -> Path:
    """Build (once) the self-contained folder for a version and return it."""
    config = artifact_config(version)
    target = artifact_path(version) / "export"
    if (target / "config.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    source = artifact_path(version)
    if (source / "model").is_dir():
        shutil.copytree(source / "model", target / "model", dirs_exist_ok=True)
    else:
        shutil.copy(source / "head.safetensors", target / "head.safetensors")
        folder = backbone_resolve(config["backbone"])
        shutil.copytree(folder, target / "backbone", dirs_exist_ok=True)
        features = embedding_cache(version.project, folder).features()
        np.save(target / "neighbour_base.npy", features.base.astype(np.float16))
    (target / "label_map.json").write_text(json.dumps(config["labels"], indent=2))
    # The backbone by name: the download carries no server path.
    exported = {**config, "backbone": version.backbone, "version": version.number}
    (target / "config.json").write_text(json.dumps(exported, indent=2))
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in version.metrics.items() if isinstance(v, float))
    (target / "README.md").write_text(
        README.format(
            number=version.number,
            project=version.project.name,
            train=version.train_size,
            evaluation=f"{version.evaluation.get('size')} {version.evaluation.get('source')} items",
            metrics=metrics,
            task=config["task_type"],
        )  # fmt: skip
    )
    if config["mode"] == TrainingMode.HEAD:
        onnx_export(version, target)
    return target


def onnx_export(version: ModelVersion, target: Path) -> Path:
    """The whole head pipeline (backbone, pooling, smoothing, head) as one ONNX graph."""
    import torch  # deferred: torch loads only where a model runs
    from transformers import AutoModel  # deferred, as torch

    config = artifact_config(version)
    tensors = load_file(str(artifact_path(version) / "head.safetensors"))
    base = torch.tensor(np.load(target / "neighbour_base.npy").astype(np.float32))
    multi = "multi_label" in tensors

    coef = torch.tensor(tensors["coef"])
    intercept = torch.tensor(tensors["intercept"])
    neighbours = min(10, int(base.shape[0]))

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = AutoModel.from_pretrained(  # nosec B615 # local_files_only: a folder on this machine, never the Hub
                backbone_resolve(config["backbone"]), local_files_only=True, use_safetensors=True
            )

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1)
            nearest = (pooled @ base.T).topk(neighbours, dim=1).indices
            mixed = torch.nn.functional.normalize(0.3 * pooled + 0.7 * base[nearest].mean(dim=1), dim=1)
            logits = mixed @ coef.T + intercept
            if multi:
                return torch.sigmoid(logits)
            if coef.shape[0] == 1:
                positive = torch.sigmoid(logits[:, 0])
                return torch.stack([1 - positive, positive], dim=1)
            return torch.softmax(logits, dim=1)

    model = Pipeline().eval()
    example = (torch.ones(1, 8, dtype=torch.long), torch.ones(1, 8, dtype=torch.long))
    path = target / "model.onnx"
    torch.onnx.export(
        model, example, str(path), dynamo=False, input_names=["input_ids", "attention_mask"],
        output_names=["probabilities"], opset_version=17,
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "probabilities": {0: "batch"},
        },
    )  # fmt: skip
    return path


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def export_build(version: ModelVersion) -> dict[str, Path]:
    """In a worker: the export folder and its two downloads, ``model.zip`` (everything)
    and ``onnx.zip`` (the ONNX graph, tokenizer and label map)."""
    folder = export_folder(version)
    archives = {"folder": folder.parent / "model.zip", "onnx": folder.parent / "onnx.zip"}
    for kind, path in archives.items():
        if path.exists() or (kind == "onnx" and not (folder / "model.onnx").exists()):
            continue
        temporary = path.with_suffix(".tmp")
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
            for file in sorted(folder.rglob("*")):
                keep = kind == "folder" or file.name in ("model.onnx", "label_map.json", "README.md", *TOKENIZER_FILES)
                if file.is_file() and keep:
                    archive.write(file, file.relative_to(folder))
        temporary.replace(path)
    return {kind: path for kind, path in archives.items() if path.exists()}


def export_ready(version: ModelVersion, kind: str) -> Path | None:
    path = artifact_path(version) / ("model.zip" if kind == "folder" else "onnx.zip")
    return path if path.exists() else None
