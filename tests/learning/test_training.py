"""Training runs, the registry, ranking, pre-labels, auto-labels, predictions, exports."""

import json
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from apps.annotation.models import ItemConsensus, Suggestion
from apps.learning import modelling, services, serving, store, training, training_sets
from apps.learning.models import ModelVersion, TrainingRun, VersionStatus
from apps.learning.ranking import pool_rank
from apps.projects.jobs import JobState
from apps.projects.models import Item, Project
from apps.projects.services import project_update
from tests.helpers import api_for, client_for
from tests.learning.conftest import DEMO, news


def train(project):
    run = services.training_request(project=project)
    return training.training_run_execute(run_id=run.pk)


def test_a_head_trained_on_a_small_set_learns(labelled_project):
    run = train(labelled_project)

    assert run.state == JobState.SUCCEEDED, run.error
    assert run.progress == 100 and run.promoted
    version = ModelVersion.objects.get(project=labelled_project)
    assert version.status == VersionStatus.CHAMPION and version.train_size == 160
    assert version.evaluation == {"source": "gold", "size": 40, "items_hash": version.evaluation["items_hash"]}
    # Four topics: chance is 25%.
    assert version.metrics["accuracy"] > 0.75 and version.metrics["macro_f1"] > 0.7
    assert set(version.metrics["per_class_f1"]) == {"World", "Sports", "Business", "Science"}
    artifact = store.artifact_path(version)
    assert (artifact / "head.safetensors").exists() and not list(artifact.glob("*.pkl"))
    assert json.loads((artifact / "config.json").read_text())["mode"] == "head"


def test_promotion_ranks_the_pool_and_writes_suggestions(labelled_project):
    train(labelled_project)

    open_items = Item.objects.filter(project=labelled_project, is_gold=False, consensus__isnull=True)
    priorities = list(open_items.values_list("priority", flat=True))
    assert len(priorities) == 80 and len(set(priorities)) > 40 and max(priorities) > 1.0  # the first batch is lifted
    suggestion = Suggestion.objects.filter(item__project=labelled_project).first()
    assert suggestion.source == "model v1" and 0.25 < suggestion.confidence <= 1
    assert Suggestion.objects.filter(item__project=labelled_project).count() == 80


def test_a_worse_challenger_is_not_promoted(labelled_project):
    train(labelled_project)
    # Scramble the training labels: the next model learns noise.
    labels = list(labelled_project.labels.values_list("pk", flat=True))
    for n, consensus in enumerate(ItemConsensus.objects.filter(project=labelled_project)):
        consensus.parts = [{"start": None, "end": None, "label_id": labels[n % 4]}]
        consensus.save()

    run = train(labelled_project)

    assert run.state == JobState.SUCCEEDED and not run.promoted
    assert run.metrics["macro_f1"] < run.metrics["champion_on_same_set"]["macro_f1"]
    statuses = dict(ModelVersion.objects.filter(project=labelled_project).values_list("number", "status"))
    assert statuses == {1: "champion", 2: "challenger"}


def test_a_pinned_champion_stays(labelled_project):
    train(labelled_project)
    services.version_pin(version=ModelVersion.objects.get(number=1), pinned=True)

    run = train(labelled_project)

    assert not run.promoted
    assert ModelVersion.objects.get(number=1).status == VersionStatus.CHAMPION


def test_rollback_makes_an_older_version_champion(labelled_project, django_capture_on_commit_callbacks):
    train(labelled_project)
    train(labelled_project)  # equal, so kept as challenger
    with django_capture_on_commit_callbacks(execute=True):
        services.version_promote(version=ModelVersion.objects.get(number=2))

    assert dict(ModelVersion.objects.values_list("number", "status")) == {1: "retired", 2: "champion"}


def test_claiming_a_run_is_idempotent(labelled_project):
    run = services.training_request(project=labelled_project)
    assert services.training_request(project=labelled_project).pk == run.pk  # one active run per project

    first = training.training_run_execute(run_id=run.pk)
    again = training.training_run_execute(run_id=run.pk)  # a redelivered task

    assert first.state == again.state == JobState.SUCCEEDED
    assert ModelVersion.objects.count() == 1


def test_a_run_that_dies_leaves_the_registry_unchanged(labelled_project, monkeypatch, caplog):
    train(labelled_project)
    champion_before = ModelVersion.objects.get()

    def killed(*args, **kwargs):
        raise RuntimeError("worker lost mid-training")

    monkeypatch.setattr(modelling, "train", killed)
    run = train(labelled_project)

    # People read a reference; the log holds the error under it.
    assert run.state == JobState.FAILED and "stopped on an internal error (reference" in run.error
    reference = run.error.split("reference ")[1][:8]
    assert any(reference in r.getMessage() and "worker lost mid-training" in str(r.exc_info) for r in caplog.records)
    assert list(ModelVersion.objects.values_list("pk", "status")) == [(champion_before.pk, "champion")]


def test_items_labelled_while_the_others_were_embedded_are_trained_on(labelled_project, monkeypatch):
    """An import labelled during the embedding stage (found by bench/soak.py: the training
    set named items the features did not hold, and the run failed with an IndexError)."""
    real_sets_build = training.sets_build
    topic = labelled_project.labels.get(name="Sports")

    def sets_after_an_import(*, project):
        for row in news(300)[280:]:
            item = Item.objects.create(project=project, text=row["text"], external_id=f"late-{row['id']}")
            ItemConsensus.objects.create(
                project=project, item=item, parts=[{"start": None, "end": None, "label_id": topic.pk}],
                confidence=1.0, method="majority_vote", is_provisional=False,
            )  # fmt: skip
        return real_sets_build(project=project)

    monkeypatch.setattr(training, "sets_build", sets_after_an_import)
    run = train(labelled_project)

    assert run.state == JobState.SUCCEEDED, run.error
    assert ModelVersion.objects.get(project=labelled_project).train_size == 180


def test_a_run_whose_worker_vanished_is_taken_over_by_the_redelivery(labelled_project):
    run = services.training_request(project=labelled_project)
    TrainingRun.objects.filter(pk=run.pk).update(
        state=JobState.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    finished = training.training_run_execute(run_id=run.pk)

    assert finished.state == JobState.SUCCEEDED and ModelVersion.objects.count() == 1


def test_a_live_run_is_not_taken_over(labelled_project):
    run = services.training_request(project=labelled_project)
    TrainingRun.objects.filter(pk=run.pk).update(state=JobState.RUNNING, heartbeat_at=timezone.now())

    training.training_run_execute(run_id=run.pk)

    assert not ModelVersion.objects.exists()


def test_too_few_labels_fail_with_a_reason(cast):
    run = train(Project.objects.get(pk=cast.project.pk))

    assert run.state == JobState.FAILED and "labels (consolidated or weak) to train on" in run.error


def test_training_starts_after_every_n_new_labels(labelled_project, django_capture_on_commit_callbacks):
    project_update(project=labelled_project, data={"train_every": 2})
    project = Project.objects.get(pk=labelled_project.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.labels_counted(project=project, new=1)
    assert not callbacks
    project.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.labels_counted(project=project, new=1)
    assert len(callbacks) == 1


def test_auto_labelling_marks_model_labels(labelled_project):
    project_update(project=labelled_project, data={"auto_label_threshold": 0.5})
    train(labelled_project)

    model_labels = ItemConsensus.objects.filter(project=labelled_project, is_model_label=True)
    assert model_labels.exists()
    assert all(c.method == "model v1" and c.confidence >= 0.5 for c in model_labels)
    assert all(item.state == "complete" for item in Item.objects.filter(consensus__is_model_label=True))
    # They never train the next model: model labels are not human consensus.
    assert training_sets.sets_build(project=labelled_project).train.item_ids == list(
        ItemConsensus.objects.filter(project=labelled_project, is_model_label=False, item__is_gold=False)
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )


def test_predict_returns_probabilities(labelled_project):
    train(labelled_project)

    outcome = serving.predict(
        project=labelled_project, texts=["The striker scored twice as the club won the cup final."]
    )

    result = outcome["results"][0]
    assert outcome["version"] == 1 and result["label"] == "Sports"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_predict_api_permissions_and_limits(labelled_project, cast, settings):
    train(labelled_project)
    url = f"/api/projects/{labelled_project.pk}/predict/"
    settings.QUORUM_PREDICT_MAX_TEXTS = 3

    ok = api_for(cast.reviewer).post(url, {"texts": ["Markets fell sharply."]}, format="json")
    annotator = api_for(cast.annotator).post(url, {"texts": ["x"]}, format="json")
    outsider = api_for(cast.outsider).post(url, {"texts": ["x"]}, format="json")
    too_many = api_for(cast.manager).post(url, {"texts": ["a", "b", "c", "d"]}, format="json")
    empty = api_for(cast.manager).post(url, {"texts": ["   "]}, format="json")
    too_long = api_for(cast.manager).post(url, {"texts": ["x" * (settings.QUORUM_TEXT_MAX_CHARS + 1)]}, format="json")

    assert ok.status_code == 200 and ok.json()["results"][0]["label"] in {"World", "Sports", "Business", "Science"}
    assert (annotator.status_code, outsider.status_code) == (403, 404)
    assert too_many.status_code == 400 and "At most 3 texts" in json.dumps(too_many.json())
    assert empty.status_code == 400 and too_long.status_code == 400


def test_predict_without_a_model_says_so(cast):
    response = api_for(cast.manager).post(
        f"/api/projects/{cast.project.pk}/predict/", {"texts": ["hello"]}, format="json"
    )

    assert response.status_code == 400 and "no champion" in json.dumps(response.json())


def test_streamed_items_are_scored_on_arrival(labelled_project, cast, django_capture_on_commit_callbacks):
    train(labelled_project)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(cast.manager).post(
            f"/api/projects/{labelled_project.pk}/stream/",
            {
                "items": [
                    {"text": "Shares of the chip maker rose after strong quarterly earnings."},
                    {"text": "A goal in stoppage time won the derby."},
                ]
            },
            format="json",
        )
    bad = api_for(cast.manager).post(
        f"/api/projects/{labelled_project.pk}/stream/", {"items": [{"text": ""}]}, format="json"
    )

    assert response.status_code == 202
    items = Item.objects.filter(pk__in=response.json()["item_ids"])
    assert all(item.priority != 0 for item in items)
    assert bad.status_code == 400 and not Item.objects.filter(project=labelled_project, text="").exists()


def test_the_exported_onnx_model_runs_and_agrees(labelled_project):
    import onnxruntime
    from transformers import AutoTokenizer

    train(labelled_project)
    version = ModelVersion.objects.get()
    downloads = serving.export_build(version)
    text = "Shares of the chip maker rose after strong quarterly earnings."

    with zipfile.ZipFile(downloads["onnx"]) as archive:
        assert {"model.onnx", "label_map.json", "backbone/tokenizer.json"} <= set(archive.namelist())
    folder = serving.export_folder(version)
    assert (folder / "backbone" / "config.json").exists() and (folder / "head.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(folder / "backbone")
    encoded = tokenizer([text], return_tensors="np", truncation=True, max_length=256)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    onnx_probs = session.run(
        None,
        {
            "input_ids": encoded["input_ids"].astype(np.int64),
            "attention_mask": encoded["attention_mask"].astype(np.int64),
        },
    )[0][0]
    quorum_probs = serving.predict(project=labelled_project, texts=[text])["results"][0]["probabilities"]

    names = json.loads((folder / "label_map.json").read_text())
    classes = json.loads((folder / "config.json").read_text())["classes"]
    assert np.allclose(onnx_probs, [quorum_probs[names[str(c)]] for c in classes], atol=2e-3)


def test_learning_pages_render(labelled_project, cast):
    train(labelled_project)

    page = client_for(cast.manager).get(f"/projects/{labelled_project.pk}/learning/")
    tried = client_for(cast.reviewer).post(
        f"/projects/{labelled_project.pk}/learning/try/", {"text": "The central bank raised rates."}
    )

    assert page.status_code == 200 and b'id="curve-chart"' in page.content and b"v1" in page.content
    assert tried.status_code == 200 and b'role="progressbar"' not in tried.content and b"Business" in tried.content


def test_pool_rank_without_a_champion_does_nothing(labelled_project):
    assert pool_rank(project=labelled_project) == {"ranked": 0}


def test_learning_settings_are_saved_and_checked(labelled_project, cast):
    url = f"/projects/{labelled_project.pk}/learning/"
    base = {
        "sampling_strategy": "mix", "training_mode": "head", "train_every": 25, "train_weight_by_confidence": "on",
        "prelabel_mode": "after", "label_model": "majority_vote", "auto_label_threshold": "", "backbone": "all-minilm-l6-v2",
    }  # fmt: skip

    saved = client_for(cast.manager).post(url, {**base, "weight_margin": "0.8", "weight_random": "0.2"})
    refused = client_for(cast.manager).post(url, {**base, "weight_margin": "-1"})
    missing = client_for(cast.manager).post(url, {**base, "backbone": "/no/such/model"})

    project = Project.objects.get(pk=labelled_project.pk)
    assert saved.status_code == 302
    assert (project.sampling_strategy, project.train_every, project.prelabel_mode) == ("mix", 25, "after")
    assert project.label_model == "majority_vote"
    assert project.strategy_weights == {"margin": 0.8, "random": 0.2}
    assert refused.status_code == 200 and b"A weight cannot be negative." in refused.content
    assert missing.status_code == 200 and b"Not a backbone this site offers" in missing.content
    assert project.backbone == "all-minilm-l6-v2"


def test_fine_tuning_a_sequence_classifier_runs_and_serves(labelled_project, monkeypatch):
    from apps.learning import finetune

    monkeypatch.setattr(finetune, "MIN_STEPS", 4)  # the path, not the accuracy, is under test here
    project_update(project=labelled_project, data={"training_mode": "finetune"})

    run = train(Project.objects.get(pk=labelled_project.pk))

    assert run.state == JobState.SUCCEEDED, run.error
    version = ModelVersion.objects.get()
    model_dir = store.artifact_path(version) / "model"
    assert (model_dir / "model.safetensors").exists() and not list(model_dir.glob("*.bin"))
    result = serving.predict(project=labelled_project, texts=["The striker scored twice."])["results"][0]
    assert set(result["probabilities"]) == {"World", "Sports", "Business", "Science"}


def test_an_entity_project_trains_a_token_model_that_finds_entities(spans_cast):
    """Entity spans train a BIO token classifier (fine-tuning), judged by entity-level F1
    on a held-out slice, and the predict API returns character spans."""
    project = spans_cast.project
    labels = {label.name: label.pk for label in project.labels.all()}
    rows = [json.loads(line) for line in (DEMO.parent / "entities.jsonl").read_text().splitlines()]
    for row in rows:
        item = Item.objects.create(project=project, text=row["text"], external_id=row["id"])
        parts = [{"start": s["start"], "end": s["end"], "label_id": labels[s["label"]]} for s in row["gold_spans"]]
        ItemConsensus.objects.create(
            project=project, item=item, parts=parts, confidence=1.0, method="token_dawid_skene", is_provisional=False
        )

    run = train(project)

    assert run.state == JobState.SUCCEEDED, run.error
    version = ModelVersion.objects.get(project=project)
    assert version.evaluation["source"] == "holdout" and version.evaluation["size"] > 0
    assert json.loads((store.artifact_path(version) / "config.json").read_text())["mode"] == "token-classification"
    # Ninety sentences are few, yet names and dates are regular enough to be found.
    assert version.metrics["entity_f1"] > 0.2, version.metrics
    text = "Maria Okafor flew to Lisbon on 3 May."
    entities = serving.predict(project=project, texts=[text])["results"][0]["entities"]
    assert entities and all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    assert {e["label"] for e in entities} <= set(labels)
