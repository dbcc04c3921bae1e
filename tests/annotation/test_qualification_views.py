"""The qualification test and practice pages: a newcomer's way to real work, what each page
shows (and hides), who may see what, and the members page's results."""

import re

import pytest
from django.core.cache import cache

from apps.annotation.models import Annotation, PracticeAnswer, QualificationAttempt, Suggestion
from apps.projects.answers import Answer, LabelPart
from apps.projects.models import GoldLabel, Item, Membership, Project
from apps.projects.services import project_update
from tests.helpers import api_for, client_for


@pytest.fixture(autouse=True)
def _forget_cached_counts():
    """The workspace caches items left per project id for 30 s; SQLite hands the same ids to
    the next test's projects, so what these tests cached must not outlive them."""
    yield
    cache.clear()


def gold(project, text, label):
    item = Item.objects.create(project=project, text=text, is_gold=True)
    GoldLabel.objects.create(item=item, label=label)
    return item


@pytest.fixture
def project(cast):
    """A 2-item test (both right to pass, two attempts), then 1 practice item; 4 gold items
    answered "Sports", 3 items to label."""
    project_update(
        project=cast.project,
        data={
            "qualification_size": 2,
            "qualification_pass_mark": 1.0,
            "qualification_attempts": 2,
            "training_items": 1,
            "gold_ratio": 0,
            "instructions": "Sports means **games and players**.",
        },
    )
    cast.labels["Sports"].description = "Matches, players, clubs."
    cast.labels["Sports"].save()
    for n in range(4):
        item = gold(cast.project, f"Gold story {n}: the derby ended 2-1.", cast.labels["Sports"])
        # A model's guess on a gold item: the test and practice never show it.
        Suggestion.objects.create(
            item=item, parts=Answer([LabelPart(None, None, cast.labels["Sports"].pk)]), source="v1"
        )
    for n in range(3):
        Item.objects.create(project=cast.project, text=f"Story {n} to label.")
    return Project.objects.get(pk=cast.project.pk)


def url(project, name=""):
    return f"/projects/{project.pk}/annotate/{name}"


def answer_test(client, project, label):
    """Answer the test's current item with ``label``; returns the page after."""
    attempt = QualificationAttempt.objects.filter(finished_at__isnull=True).get()
    item_id = next(i for i in attempt.item_ids if str(i) not in attempt.answers)
    response = client.post(url(project, "qualification/answer/"), {"item": item_id, "label": label.pk})
    assert response.status_code == 302 and response["Location"] == url(project, "qualification/")
    return client.get(response["Location"])


def test_a_newcomer_is_sent_from_the_labelling_page_to_the_test(cast, project):
    client = client_for(cast.annotator)

    response = client.get(url(project))

    assert response.status_code == 302 and response["Location"] == url(project, "qualification/")
    page = client.get(response["Location"]).content.decode()
    assert "Before you start: a short test" in page and "answer 2 items" in page and "100%" in page
    assert "Start the test" in page and "<strong>games and players</strong>" in page
    assert not QualificationAttempt.objects.exists()  # a GET starts nothing


def test_the_test_shows_one_item_at_a_time_without_suggestion_or_answer(cast, project):
    client = client_for(cast.annotator)
    client.post(url(project, "qualification/"))

    page = client.get(url(project, "qualification/")).content.decode()

    attempt = QualificationAttempt.objects.get(annotator=cast.annotator)
    first = Item.objects.get(pk=attempt.item_ids[0])
    assert "Qualification test, item 1 of 2" in page and first.text in page
    assert 'class="suggestion' not in page and "Model suggests" not in page
    assert "Matches, players, clubs." in page  # the label's description is its title, as in the workspace
    assert f'name="item" value="{first.pk}"' in page


def test_failing_then_passing_then_practice_then_real_work(cast, project):
    client = client_for(cast.annotator)
    client.post(url(project, "qualification/"))
    answer_test(client, project, cast.labels["Sports"])
    page = answer_test(client, project, cast.labels["World"]).content.decode()

    assert "Not passed yet" in page and "You scored <strong>50%</strong> in attempt 1" in page
    assert "1 attempt left" in page and "Try again" in page
    assert client.get(url(project))["Location"] == url(project, "qualification/")

    client.post(url(project, "qualification/"))
    assert "Qualification test, item 1 of 2" in client.get(url(project, "qualification/")).content.decode()
    answer_test(client, project, cast.labels["Sports"])
    page = answer_test(client, project, cast.labels["Sports"]).content.decode()

    assert "You passed the test" in page and "<strong>100%</strong>" in page and "practice" in page
    assert Membership.objects.get(project=project, user=cast.annotator).qualified_at is not None
    response = client.get(url(project))
    assert response["Location"] == url(project, "practice/")
    page = client.get(response["Location"]).content.decode()
    assert "Practice item 1 of 1" in page and 'class="suggestion' not in page

    item = Item.objects.get(pk=re.search(r'name="item" value="(\d+)"', page).group(1))
    assert item.is_gold
    response = client.post(url(project, "practice/answer/"), {"item": item.pk, "label": cast.labels["World"].pk})
    assert response["Location"] == url(project, f"practice/{item.pk}/")
    page = client.get(response["Location"]).content.decode()
    assert "Not quite." in page and "The right answer" in page and "Sports" in page
    assert "Matches, players, clubs." in page and "Start real work" in page

    page = client.get(url(project))
    assert page.status_code == 200 and b'<form class="task"' in page.content and b"data-assignment" in page.content
    assert not Annotation.objects.exists() and PracticeAnswer.objects.count() == 1


def test_no_attempts_left_shows_not_qualified(cast, project):
    client = client_for(cast.annotator)
    for _ in range(2):
        client.post(url(project, "qualification/"))
        answer_test(client, project, cast.labels["World"])
        page = answer_test(client, project, cast.labels["World"]).content.decode()

    assert "Not qualified" in page and "all 2 attempts are used" in page and "Try again" not in page
    response = client.post(url(project, "qualification/"), follow=True)
    assert b"used all 2 attempts" in response.content
    assert QualificationAttempt.objects.count() == 2
    assert client.get(url(project))["Location"] == url(project, "qualification/")


def test_a_bad_answer_keeps_the_item(cast, project):
    client = client_for(cast.annotator)
    client.post(url(project, "qualification/"))
    attempt = QualificationAttempt.objects.get()

    response = client.post(url(project, "qualification/answer/"), {"item": attempt.item_ids[0]}, follow=True)

    assert b"Not saved: Choose a label first." in response.content
    assert b"Qualification test, item 1 of 2" in response.content
    attempt.refresh_from_db()
    assert attempt.answers == {}


def test_the_api_says_why_a_newcomer_gets_no_task(cast, project):
    response = api_for(cast.annotator).post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json")

    assert response.status_code == 200
    assert response.json()["task"] is None and response.json()["reason"] == "qualification"


def test_managers_label_without_the_test(cast, project):
    client = client_for(cast.manager)

    assert client.get(url(project)).status_code == 200
    assert client.get(url(project, "qualification/"))["Location"] == url(project)


def _practice_answer(cast, project, user):
    item = Item.objects.filter(is_gold=True).first()
    return PracticeAnswer.objects.create(project=project, item=item, annotator=user, parts=Answer(), score=0.0)


@pytest.mark.parametrize(("who", "status"), [("reviewer", 403), ("outsider", 404), ("other_annotator", 404)])
def test_nobody_else_sees_a_persons_practice_feedback(cast, project, who, status):
    answer = _practice_answer(cast, project, cast.annotator)

    response = client_for(getattr(cast, who)).get(url(project, f"practice/{answer.item_id}/"))

    assert response.status_code == status
    assert client_for(cast.annotator).get(url(project, f"practice/{answer.item_id}/")).status_code == 200


def test_nobody_else_answers_or_sees_a_persons_test(cast, project):
    client_for(cast.annotator).post(url(project, "qualification/"))
    attempt = QualificationAttempt.objects.get()

    assert client_for(cast.reviewer).get(url(project, "qualification/")).status_code == 403
    assert client_for(cast.outsider).get(url(project, "qualification/")).status_code == 404
    other = client_for(cast.other_annotator)
    response = other.post(url(project, "qualification/answer/"), {"item": attempt.item_ids[0], "label": 1})
    assert response.status_code == 302
    # The other annotator's page is their own start page; the attempt kept no answer of theirs.
    assert b"Start the test" in other.get(url(project, "qualification/")).content
    attempt.refresh_from_db()
    assert attempt.answers == {}


def test_the_members_page_shows_each_annotators_test_and_the_gold_shortage(cast, project):
    client = client_for(cast.annotator)
    client.post(url(project, "qualification/"))
    answer_test(client, project, cast.labels["Sports"])
    answer_test(client, project, cast.labels["World"])
    project_update(project=project, data={"qualification_size": 6})

    page = client_for(cast.manager).get(f"/projects/{project.pk}/members/").content.decode()

    assert "<th>Test</th>" in page
    assert "failed" in page and "best 50% · 1 of 2 attempts" in page
    assert "not taken" in page  # the other annotator
    assert "set to 6 items but the project has only 4 gold items" in page
