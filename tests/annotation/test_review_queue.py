"""The review queue: "Save and review the next" moves on, and the list of items in
disagreement shows how the answers split and what the consensus is."""

import uuid

import pytest

from apps.annotation.models import ItemConsensus
from apps.annotation.presentation import answer_name
from apps.annotation.selectors import answer_splits, disagreements
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.answers import Answer, LabelIndex, LabelPart
from apps.projects.models import Project
from apps.projects.services import project_update
from tests.factories import ItemFactory, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def answer_all(project, user, values):
    for value in values:
        task = task_next_for_annotator(project=project, annotator=user).assignment
        annotation_submit(
            project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
        )


@pytest.fixture
def split(cast):
    """Three items, k = 3: the annotator and the manager say World everywhere, the other
    annotator says Sports on the first two, so those two split "World 2 · Sports 1"."""
    project_update(project=cast.project, data={"overlap": 3, "gold_ratio": 0.0, "consolidate_every": 1000})
    project = Project.objects.get(pk=cast.project.pk)
    for n in range(3):
        ItemFactory(project=project, text=f"Story {n}")
    answer_all(project, cast.annotator, ["World"] * 3)
    answer_all(project, cast.manager, ["World"] * 3)
    answer_all(project, cast.other_annotator, ["Sports", "Sports", "World"])
    return project


def test_save_and_review_the_next_goes_to_the_next_item_in_disagreement(cast, split):
    queue = [c.item_id for c in disagreements(project=split)]
    first, second = queue[0], queue[1]
    client = client_for(cast.reviewer)

    response = client.post(f"/projects/{split.pk}/review/{first}/", {"label": cast.labels["Sports"].pk, "then": "next"})

    assert response.status_code == 302 and response["Location"] == f"/projects/{split.pk}/review/{second}/"
    assert ItemConsensus.objects.get(item_id=first).is_reviewed
    assert first not in [c.item_id for c in disagreements(project=split)]


def test_save_alone_stays_on_the_item(cast, split):
    first = disagreements(project=split).first().item_id

    response = client_for(cast.reviewer).post(
        f"/projects/{split.pk}/review/{first}/", {"label": cast.labels["World"].pk}
    )

    assert response["Location"] == f"/projects/{split.pk}/review/{first}/"


def test_the_last_item_in_the_queue_has_no_next_button_and_stays(cast, split):
    *settled, last = [c.item_id for c in disagreements(project=split)]
    for item_id in settled:
        client_for(cast.reviewer).post(f"/projects/{split.pk}/review/{item_id}/", {"label": cast.labels["World"].pk})

    page = client_for(cast.reviewer).get(f"/projects/{split.pk}/review/{last}/")
    response = client_for(cast.reviewer).post(
        f"/projects/{split.pk}/review/{last}/", {"label": cast.labels["World"].pk, "then": "next"}
    )

    assert b"Save and review the next" not in page.content
    assert response["Location"] == f"/projects/{split.pk}/review/{last}/"


def test_the_split_counts_each_distinct_answer(cast, split):
    items = sorted(c.item_id for c in disagreements(project=split))
    world, sports = (Answer([LabelPart(None, None, cast.labels[name].pk)]) for name in ("World", "Sports"))

    splits = answer_splits(item_ids=items)

    assert sorted((splits[i][world], splits[i][sports], len(splits[i])) for i in items) == [
        (2, 1, 2),
        (2, 1, 2),
        (3, 0, 1),
    ]


def test_the_disagreement_list_shows_the_split_and_the_consensus(cast, split):
    html = client_for(cast.reviewer).get(f"/projects/{split.pk}/reports/").content.decode()

    table = html[html.index("Items in most disagreement") :]
    assert table.count("<strong>World</strong> 2</span> · <span") == 2 and table.count("Sports 1") == 2
    assert "<strong>World</strong> 3" in table  # everyone agreed: one group, the consensus


def test_answers_are_named_by_label_order_or_by_their_spans(cast, spans_cast):
    labels = LabelIndex.for_project(cast.project)
    both = Answer([LabelPart(None, None, cast.labels["Science"].pk), LabelPart(None, None, cast.labels["World"].pk)])
    people = LabelIndex.for_project(spans_cast.project)
    person = spans_cast.labels["Person"].pk

    assert answer_name(cast.project, labels, both, "") == "World + Science"
    assert answer_name(cast.project, labels, Answer(), "") == "No label"
    assert answer_name(spans_cast.project, people, Answer([LabelPart(0, 3, person)]), "Ada wrote") == "Person “Ada”"
    assert answer_name(spans_cast.project, people, Answer(), "Ada wrote") == "No entities"


def test_reviewers_only(cast, split):
    stranger = UserFactory(username="stranger")
    item_id = disagreements(project=split).first().item_id

    assert (
        client_for(cast.annotator).post(f"/projects/{split.pk}/review/{item_id}/", {"then": "next"}).status_code == 403
    )
    assert client_for(stranger).get(f"/projects/{split.pk}/review/{item_id}/").status_code == 404
