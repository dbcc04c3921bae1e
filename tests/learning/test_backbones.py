"""Backbones come from the site's list, by name (issue 10, finding 5): a manager cannot point
the model loader at a server folder, a failing backbone's error names no path, the API
shows no server path, and weights load from safetensors only (pickles are never opened)."""

import json
import logging
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured, ValidationError

from apps.learning import embeddings, services, serving, training
from apps.learning.models import ModelVersion, TrainingRun
from apps.projects.jobs import JobState
from apps.projects.models import Project
from apps.projects.services import project_update
from platform.backbones import BackboneUnavailable, backbone_folder, backbones_installed
from platform.env import env_backbones
from tests.helpers import api_for, client_for

DEFAULT = "all-minilm-l6-v2"
PACKAGED = Path(django_settings.QUORUM_BACKBONES[DEFAULT])
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _server_paths() -> list[str]:
    return [str(django_settings.VAR_DIR), str(django_settings.BASE_DIR), "site-packages", str(PACKAGED)]


def _assert_no_server_path(text: str, *more: str) -> None:
    for path in [*_server_paths(), *more]:
        assert path not in text, f"{path} appears in: {text[:500]}"


def _offer(settings, name: str, folder: Path) -> None:
    settings.QUORUM_BACKBONES = {**settings.QUORUM_BACKBONES, name: str(folder)}


def _train(project):
    run = services.training_request(project=project)
    return training.training_run_execute(run_id=run.pk)


class _Payload:
    """Unpickling this creates a file: the proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_backbone(folder: Path, marker: Path) -> Path:
    """A model folder whose only weights are a pickle (pytorch_model.bin) that runs code."""
    folder.mkdir(parents=True)
    for name in ("config.json", *TOKENIZER_FILES):
        shutil.copy(PACKAGED / name, folder / name)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    return folder


def _broken_backbone(folder: Path) -> Path:
    """A folder that passes the name check but breaks inside transformers, whose error
    message names the file it choked on."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{not json")
    shutil.copy(PACKAGED / "model.safetensors", folder / "model.safetensors")
    return folder


# --- choosing a backbone ----------------------------------------------------------------------------


def test_the_api_refuses_a_server_folder_and_names_the_backbones(cast):
    response = api_for(cast.manager).patch(
        f"/api/projects/{cast.project.pk}/", {"backbone": "/var/lib/quorum/media/imports/1"}, format="json"
    )

    assert response.status_code == 400
    assert f"choose one of: {DEFAULT}" in response.json()["backbone"][0]
    assert Project.objects.get(pk=cast.project.pk).backbone == DEFAULT


def test_a_huge_backbone_value_gets_a_short_refusal(cast):
    response = api_for(cast.manager).patch(
        f"/api/projects/{cast.project.pk}/", {"backbone": "/" + "a" * 200_000}, format="json"
    )

    assert response.status_code == 400 and len(response.content) < 500
    assert Project.objects.get(pk=cast.project.pk).backbone == DEFAULT


def test_the_api_refuses_a_folder_when_a_project_is_created(cast):
    cast.manager.user_permissions.add(Permission.objects.get(codename="add_project"))
    response = api_for(cast.manager).post("/api/projects/", {"name": "Pointed", "backbone": "../../etc"}, format="json")

    assert response.status_code == 400 and DEFAULT in response.json()["backbone"][0]
    assert not Project.objects.filter(name="Pointed").exists()


def test_a_configured_backbone_is_chosen_by_name(cast, settings, tmp_path):
    _offer(settings, "bigger", tmp_path / "bigger")

    response = api_for(cast.manager).patch(f"/api/projects/{cast.project.pk}/", {"backbone": "bigger"}, format="json")

    assert response.status_code == 200 and response.json()["backbone"] == "bigger"
    assert Project.objects.get(pk=cast.project.pk).backbone == "bigger"
    _assert_no_server_path(response.content.decode(), str(tmp_path))


def test_the_settings_form_offers_names_and_refuses_a_folder(cast):
    url = f"/projects/{cast.project.pk}/learning/"
    form = {
        "sampling_strategy": "margin", "strategy_weights": "{}", "training_mode": "head", "train_every": 50,
        "prelabel_mode": "show", "auto_label_threshold": "", "backbone": str(PACKAGED),
    }  # fmt: skip

    page = client_for(cast.manager).get(url)
    refused = client_for(cast.manager).post(url, form)

    assert page.status_code == 200 and f'value="{DEFAULT}"'.encode() in page.content
    _assert_no_server_path(page.content.decode())
    assert refused.status_code == 200
    assert f"Not a backbone this site offers; choose one of: {DEFAULT}.".encode() in refused.content


def test_the_service_refuses_a_name_the_site_does_not_offer(cast):
    with pytest.raises(ValidationError) as refused:
        project_update(project=cast.project, data={"backbone": "/tmp"})

    assert DEFAULT in str(refused.value)


# --- failing backbones: a reference, not a path --------------------------------------------------------


def test_a_backbone_that_fails_to_load_shows_a_reference_not_its_folder(labelled_project, settings, tmp_path, caplog):
    broken = _broken_backbone(tmp_path / "broken-model")
    _offer(settings, "broken", broken)
    project_update(project=labelled_project, data={"backbone": "broken"})

    with caplog.at_level(logging.ERROR):
        run = _train(labelled_project)

    assert run.state == JobState.FAILED
    assert "stopped on an internal error (reference " in run.error
    _assert_no_server_path(run.error, str(tmp_path))
    reference = run.error.split("(reference ")[1].split(")")[0]
    logged = [record for record in caplog.records if reference in record.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log, under the reference
    assert str(broken) in caplog.text  # the library's own message names the folder: only the log has it
    assert not ModelVersion.objects.filter(project=labelled_project).exists()


def test_a_backbone_with_only_pickled_weights_is_refused_by_name(labelled_project, settings, tmp_path):
    marker = tmp_path / "unpickled"
    _offer(settings, "pickled", _pickled_backbone(tmp_path / "pickled-model", marker))
    project_update(project=labelled_project, data={"backbone": "pickled"})

    run = _train(labelled_project)

    assert run.state == JobState.FAILED
    assert "The backbone 'pickled' is not installed correctly" in run.error and "safetensors" in run.error
    _assert_no_server_path(run.error, str(tmp_path))
    assert not marker.exists()


def test_the_loader_refuses_a_folder_with_only_pytorch_model_bin(tmp_path, monkeypatch):
    """Below the name check too: transformers is told to use safetensors, so a folder with
    only pickled weights fails to load and the pickle is never opened."""
    marker = tmp_path / "unpickled"
    folder = _pickled_backbone(tmp_path / "pickled-model", marker)
    opened = []
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: opened.append(args) or {})

    with pytest.raises(OSError, match="safetensors"):
        embeddings.backbone_load(str(folder))

    assert not opened and not marker.exists()
    with pytest.raises(BackboneUnavailable):
        backbone_folder("pickled")  # not offered at all


def test_an_unknown_backbone_name_is_refused_without_a_path(settings):
    with pytest.raises(BackboneUnavailable) as refused:
        backbone_folder("elsewhere")

    _assert_no_server_path(" ".join(refused.value.messages))


# --- no server path in the API ---------------------------------------------------------------------------


def test_project_and_model_endpoints_show_no_server_path(labelled_project, cast, settings, tmp_path):
    assert _train(labelled_project).state == JobState.SUCCEEDED
    _offer(settings, "broken", _broken_backbone(tmp_path / "broken-model"))
    project_update(project=labelled_project, data={"backbone": "broken"})
    assert _train(labelled_project).state == JobState.FAILED
    failed = TrainingRun.objects.filter(project=labelled_project, state=JobState.FAILED).get()
    base = f"/api/projects/{labelled_project.pk}"
    urls = [
        "/api/projects/", f"{base}/", f"{base}/versions/", f"{base}/versions/1/", f"{base}/training-runs/",
        f"{base}/training-runs/{failed.pk}/",
    ]  # fmt: skip

    for url in urls:
        response = api_for(cast.manager).get(url)
        assert response.status_code == 200, url
        _assert_no_server_path(response.content.decode(), str(tmp_path))
    version = api_for(cast.manager).get(f"{base}/versions/1/").json()
    assert version["backbone"] == DEFAULT
    page = client_for(cast.manager).get(f"/projects/{labelled_project.pk}/learning/")
    assert page.status_code == 200 and b"reference" in page.content
    _assert_no_server_path(page.content.decode(), str(tmp_path))


def test_a_version_records_its_backbone_by_name_and_serves(labelled_project):
    _train(labelled_project)
    version = ModelVersion.objects.get(project=labelled_project)
    config = json.loads((Path(django_settings.VAR_DIR) / "models" / version.artifact / "config.json").read_text())

    assert version.backbone == config["backbone"] == DEFAULT
    predicted = api_for(labelled_project.created_by).post(
        f"/api/projects/{labelled_project.pk}/predict/", {"texts": ["Stocks fell on Monday."]}, format="json"
    )
    assert predicted.status_code == 200 and predicted.json()["version"] == 1


def test_an_artifact_of_a_folder_the_site_no_longer_offers_is_not_loaded(labelled_project):
    """Older artifacts recorded a folder: it is used only if the site still offers it."""
    _train(labelled_project)
    version = ModelVersion.objects.get(project=labelled_project)
    path = Path(django_settings.VAR_DIR) / "models" / version.artifact / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "backbone": str(PACKAGED)}))  # as older code wrote it
    served = api_for(labelled_project.created_by).post(
        f"/api/projects/{labelled_project.pk}/predict/", {"texts": ["Stocks fell."]}, format="json"
    )
    path.write_text(json.dumps({**config, "backbone": "/srv/uploads/import-7"}))
    refused = api_for(labelled_project.created_by).post(
        f"/api/projects/{labelled_project.pk}/predict/", {"texts": ["Stocks fell."]}, format="json"
    )

    assert served.status_code == 200
    assert refused.status_code == 400 and "no longer offers" in refused.content.decode()
    _assert_no_server_path(refused.content.decode(), "/srv/uploads")


def test_the_exported_model_names_its_backbone_not_its_folder(labelled_project):
    _train(labelled_project)
    downloads = serving.export_build(ModelVersion.objects.get(project=labelled_project))

    with zipfile.ZipFile(downloads["folder"]) as archive:
        config = json.loads(archive.read("config.json"))
        texts = {name: archive.read(name).decode(errors="replace") for name in archive.namelist()
                 if name.endswith((".json", ".md", ".txt"))}  # fmt: skip

    assert config["backbone"] == DEFAULT and "backbone/config.json" in texts
    for text in texts.values():
        _assert_no_server_path(text)


# --- the operator's list ---------------------------------------------------------------------------------


def test_the_operator_adds_backbones_as_json_or_pairs(monkeypatch):
    builtin = {DEFAULT: str(PACKAGED)}
    monkeypatch.setenv("QUORUM_BACKBONES", '{"e5-base": "/srv/models/e5"}')
    as_json = env_backbones("QUORUM_BACKBONES", builtin)
    monkeypatch.setenv("QUORUM_BACKBONES", "e5-base=/srv/models/e5, bge=/srv/models/bge")
    as_pairs = env_backbones("QUORUM_BACKBONES", builtin)

    assert as_json == {DEFAULT: str(PACKAGED), "e5-base": "/srv/models/e5"}
    assert as_pairs == {DEFAULT: str(PACKAGED), "e5-base": "/srv/models/e5", "bge": "/srv/models/bge"}


@pytest.mark.parametrize("value", ["e5=models/e5", "E5 Base=/srv/models/e5", '{"e5": 3}', "{not json", "e5"], ids=str)
def test_a_wrong_backbone_list_stops_the_site_at_start(monkeypatch, value):
    monkeypatch.setenv("QUORUM_BACKBONES", value)

    with pytest.raises(ImproperlyConfigured, match="QUORUM_BACKBONES"):
        env_backbones("QUORUM_BACKBONES", {DEFAULT: str(PACKAGED)})


def test_check_warns_of_a_backbone_that_cannot_load(settings, tmp_path):
    _offer(settings, "pickled", _pickled_backbone(tmp_path / "pickled-model", tmp_path / "unpickled"))

    warnings = backbones_installed()

    assert [(w.id, "'pickled'" in w.msg) for w in warnings] == [("quorum.W001", True)]
    settings.QUORUM_BACKBONES = {DEFAULT: str(PACKAGED)}
    assert backbones_installed() == []
