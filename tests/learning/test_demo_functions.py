"""The labelling functions the demo ships for its topics project (news_functions.json):
they import into a project built like the demo's and, applied to the demo's texts, give
weak labels good enough to train the first model before anyone labels."""

import json

import pytest

from apps.learning import weak
from apps.learning.management.commands.demo_load import DEMO_DIR, TOPIC_LABELS, TOPICS_FUNCTIONS
from apps.learning.models import LabellingFunction, RuleVote, TrainingRun, WeakLabel
from apps.projects.jobs import JobState
from apps.projects.models import Item, TaskType
from apps.projects.services import project_create
from tests.factories import UserFactory

from .conftest import news

SHIPPED = DEMO_DIR / TOPICS_FUNCTIONS


@pytest.fixture
def demo_topics(db):
    """The demo's topics project (its labels and their descriptions, which the similarity
    function compares with) holding every demo text, with no gold and no human label."""
    manager = UserFactory(username="manager")
    project = project_create(user=manager, name="Newsroom topics", task_type=TaskType.SINGLE_LABEL, labels=TOPIC_LABELS)
    rows = news(320)
    items = [Item.objects.create(project=project, text=row["text"], external_id=row["id"]) for row in rows]
    truth = {item.pk: row["topic"] for item, row in zip(items, rows, strict=True)}
    return project, manager, truth


def test_the_shipped_functions_import_whole(demo_topics):
    project, manager, _ = demo_topics
    shipped = json.loads(SHIPPED.read_text())["labelling_functions"]

    counts = weak.functions_import(project=project, raw=SHIPPED.read_bytes(), user=manager)

    assert counts == {"created": len(shipped), "updated": 0, "unchanged": 0}
    assert 12 <= len(shipped) <= 20
    kinds = set(LabellingFunction.objects.filter(project=project).values_list("kind", flat=True))
    assert {"keywords", "regex"} <= kinds
    # Every topic has functions of its own.
    assert {function["label"] for function in shipped} == {label["name"] for label in TOPIC_LABELS}


def test_on_the_demo_texts_they_cover_half_and_their_weak_labels_are_right(demo_topics):
    project, manager, truth = demo_topics
    weak.functions_import(project=project, raw=SHIPPED.read_bytes(), user=manager)

    application = weak.rules_apply_here(project=project, user=manager)

    assert application.state == JobState.SUCCEEDED
    assert application.summary["timeouts"] == {}
    # Every function votes on some demo text.
    voting = set(RuleVote.objects.filter(project=project).values_list("function__name", flat=True))
    assert voting == set(LabellingFunction.objects.filter(project=project).values_list("name", flat=True))

    names = {label.pk: label.name for label in project.labels.all()}
    weak_labels = list(WeakLabel.objects.filter(project=project))
    right = sum(names[label.answer.label_id] == truth[label.item_id] for label in weak_labels)
    coverage, accuracy = len(weak_labels) / len(truth), right / len(weak_labels)
    assert coverage >= 0.5, f"weak labels cover {coverage:.0%} of the demo texts"
    assert accuracy >= 0.8, f"weak labels are {accuracy:.0%} right"
    # With no human label, the application asks for the first model, on weak labels alone.
    assert application.summary["train"] is True
    assert TrainingRun.objects.filter(project=project, trigger="weak").exists()
