"""The restructuring's migrations keep the data a database made by the earlier code holds:
pre-labels move from learning to annotation with their rows, imports keep how they ended,
and pool rankings join the one job lifecycle."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.annotation.models import ConsolidationRun, Suggestion
from apps.learning.models import ModelVersion, PoolRanking, TrainingRun
from apps.projects.answers import Answer, LabelPart
from apps.projects.jobs import JobState
from apps.projects.models import ImportJob
from apps.projects.models import Project as ProjectNow

BEFORE = [("projects", "0005_item_search_table"), ("annotation", "0003_learning"), ("learning", "0003_pool_ranking")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_data_of_the_earlier_code_survives_the_restructuring():
    old = _migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="manager")
    project = old.get_model("projects", "Project").objects.create(name="News", created_by=user)
    label = old.get_model("projects", "Label").objects.create(project=project, name="World")
    item = old.get_model("projects", "Item").objects.create(project=project, text="A story.")
    ImportJobThen = old.get_model("projects", "ImportJob")
    ImportJobThen.objects.create(project=project, original_name="ok.csv", format="csv", state="succeeded",
                                 message="Imported 1 item.")  # fmt: skip
    ImportJobThen.objects.create(project=project, original_name="bad.csv", format="csv", state="failed",
                                 message="Nothing was imported: 1 row of 1 needs fixing.")  # fmt: skip
    old.get_model("learning", "Suggestion").objects.create(
        item=item, parts=[{"start": None, "end": None, "label_id": label.pk}], confidence=0.8, source="model v1"
    )
    version = old.get_model("learning", "ModelVersion").objects.create(project=project, number=1, mode="head")
    Ranking = old.get_model("learning", "PoolRanking")
    older = Ranking.objects.create(project=project, version=version, chunks_total=4, chunks_done=[0, 1])
    newer = Ranking.objects.create(project=project, version=version, chunks_total=2, chunks_done=[])
    superseded = Ranking.objects.create(project=project, version=version, state="failed",
                                        error="Superseded by a newer ranking.")  # fmt: skip

    _migrate(_migrate_to_latest())

    suggestion = Suggestion.objects.get()
    assert suggestion.item_id == item.pk and suggestion.source == "model v1" and suggestion.confidence == 0.8
    assert suggestion.parts == Answer([LabelPart(None, None, label.pk)])
    assert "annotation_suggestion" in connection.introspection.table_names()
    assert "learning_suggestion" not in connection.introspection.table_names()
    jobs = {job.original_name: job for job in ImportJob.objects.all()}
    assert jobs["ok.csv"].message == "Imported 1 item." and jobs["ok.csv"].progress == 100
    assert jobs["bad.csv"].error == jobs["bad.csv"].message == "Nothing was imported: 1 row of 1 needs fixing."
    rankings = {ranking.pk: ranking for ranking in PoolRanking.objects.all()}
    assert rankings[newer.pk].state == JobState.RUNNING  # the newest running ranking stands
    assert rankings[older.pk].state == JobState.CANCELLED and rankings[older.pk].progress == 50
    assert rankings[superseded.pk].state == JobState.CANCELLED


def _migrate_to_latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_backbone_folders_become_names(settings, tmp_path, caplog):
    """Projects named a server folder; now they name a backbone of the site's list. A folder
    the site offers becomes its name; an empty one (the packaged model) or any other folder
    becomes the default, logged. Versions record a name too ('unlisted' for other folders)."""
    bigger = tmp_path / "bigger-model"
    bigger.mkdir()
    settings.QUORUM_BACKBONES = {**settings.QUORUM_BACKBONES, "bigger": str(bigger)}
    packaged = settings.QUORUM_BACKBONES["all-minilm-l6-v2"]
    old = _migrate([("projects", "0008_remove_importjob_message"), ("learning", "0007_one_active_ranking_per_project")])
    user = old.get_model("auth", "User").objects.create(username="manager")
    Project = old.get_model("projects", "Project")
    folders = {"empty": "", "packaged": packaged, "bigger": f"{bigger}/", "upload": "/srv/quorum/media/imports/7"}
    projects = {key: Project.objects.create(name=key, created_by=user, backbone_path=f) for key, f in folders.items()}
    Version = old.get_model("learning", "ModelVersion")
    for number, folder in enumerate([packaged, str(bigger), "/srv/quorum/media/imports/7"], start=1):
        Version.objects.create(project=projects["packaged"], number=number, mode="head", backbone=folder)

    with caplog.at_level("WARNING"):
        _migrate(_migrate_to_latest())

    names = {project.name: project.backbone for project in ProjectNow.objects.filter(name__in=folders)}
    assert names == {"empty": "all-minilm-l6-v2", "packaged": "all-minilm-l6-v2", "bigger": "bigger",
                     "upload": "all-minilm-l6-v2"}  # fmt: skip
    assert "/srv/quorum/media/imports/7" in caplog.text and f"project {projects['upload'].pk}" in caplog.text
    versions = dict(ModelVersion.objects.values_list("number", "backbone"))
    assert versions == {1: "all-minilm-l6-v2", 2: "bigger", 3: "unlisted"}


@pytest.mark.django_db(transaction=True)
def test_failed_runs_of_the_earlier_code_lose_the_paths_in_their_errors():
    old = _migrate([("learning", "0009_embedding_jobs_and_job_attempts"), ("annotation", "0008_job_attempts_and_sent")])
    user = old.get_model("auth", "User").objects.create(username="manager")
    project = old.get_model("projects", "Project").objects.create(name="News", created_by=user)
    raw = "OSError: It looks like the config file at '/srv/models/x/config.json' is not a valid JSON file."
    Run = old.get_model("learning", "TrainingRun")
    crashed = Run.objects.create(project=project, mode="head", state="failed",
                                 error=f"{raw}\n\nTraceback (most recent call last):\n  File \"/srv/quorum/x.py\"")  # fmt: skip
    refused = Run.objects.create(project=project, mode="head", state="failed", error="Only 3 labels; at least 4.")
    version = old.get_model("learning", "ModelVersion").objects.create(project=project, number=1, mode="head")
    chunk = old.get_model("learning", "PoolRanking").objects.create(
        project=project, version=version, state="failed", error=f"Chunk 2: {raw}"
    )
    Consolidation = old.get_model("annotation", "ConsolidationRun")
    consolidation = Consolidation.objects.create(project=project, requested_method="auto", state="failed", error=raw)

    _migrate(_migrate_to_latest())

    plain = "Failed on an internal error; the server log of that day has the details."
    assert TrainingRun.objects.get(pk=crashed.pk).error == plain
    assert TrainingRun.objects.get(pk=refused.pk).error == "Only 3 labels; at least 4."
    assert PoolRanking.objects.get(pk=chunk.pk).error == plain
    assert ConsolidationRun.objects.get(pk=consolidation.pk).error == plain
