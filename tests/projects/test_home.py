"""The annotator's home (the projects list where everyone lands): per project they label,
their answers, gold accuracy, earnings, the items left for them, their limit, what stands
in their way, and the instructions."""

import re
import uuid
from decimal import Decimal

import pytest

from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.models import GoldLabel, Item, Project
from apps.projects.services import membership_block, project_update
from tests.factories import ItemFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(cast):
    project_update(
        project=cast.project,
        data={
            "gold_ratio": 0.0,
            "overlap": 2,
            "price_per_annotation": Decimal("0.05"),
            "currency": "EUR",
            "instructions": "Pick the **main** topic.",
        },
    )
    for n in range(6):
        ItemFactory(project=cast.project, text=f"Story {n} about the cup final.")
    for n in range(2):
        gold = ItemFactory(project=cast.project, text=f"Gold story {n}.", is_gold=True)
        GoldLabel.objects.create(item=gold, label=cast.labels["Sports"])
    return Project.objects.get(pk=cast.project.pk)


def answer(project, user, label, *, gold=False):
    Project.objects.filter(pk=project.pk).update(gold_ratio=1.0 if gold else 0.0)
    project.refresh_from_db()
    assignment = task_next_for_annotator(project=project, annotator=user).assignment
    assert Item.objects.get(pk=assignment.item_id).is_gold == gold
    annotation_submit(
        project=project, annotator=user, assignment_id=assignment.pk, value=label, submission_id=uuid.uuid4()
    )


def card(html, project):
    start = html.index(f'id="work-{project.pk}"')
    return html[start : html.index("</article>", start)]


def figures(card_html):
    """The card's figures by their names: "Your answers" -> "3"."""
    pairs = re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", card_html)
    return {name: re.sub(r"<[^>]+>", "", value).strip() for name, value in pairs}


def test_an_annotator_sees_their_figures_per_project(cast, project):
    answer(project, cast.annotator, "Sports", gold=True)  # right
    answer(project, cast.annotator, "World", gold=True)  # wrong
    for _ in range(3):
        answer(project, cast.annotator, "World")

    html = client_for(cast.annotator).get("/").content.decode()

    mine = card(html, project)
    # 3 paid answers at 0.05; gold answers are free. 6 items, 3 answered: 3 left.
    assert figures(mine) == {
        "Your answers": "5",
        "Gold accuracy": "50%",
        "Earned": "0.15 EUR",
        "Left for you": "3",
    }
    assert "on 2 quality-check items" in mine
    assert "Go on labelling" in mine and f'href="/projects/{project.pk}/annotate/"' in mine
    assert "<strong>main</strong> topic" in mine  # the instructions, as the workspace shows them
    assert "Other projects" not in html  # the card replaces the project's tile in the list


def test_the_limit_shows_as_a_bar_and_caps_what_is_left(cast, project):
    project_update(project=project, data={"max_items_per_annotator": 4})
    for _ in range(3):
        answer(project, cast.annotator, "World")

    mine = card(client_for(cast.annotator).get("/").content.decode(), project)

    assert figures(mine)["Left for you"] == "1"
    assert "3 of 4 answers" in mine and 'aria-valuenow="3"' in mine and "width: 75%" in mine


def test_a_blocked_annotator_is_told_why_and_offered_no_work(cast, project):
    membership = project.memberships.get(user=cast.annotator)
    membership_block(membership=membership, reason="Gold accuracy 40% on 10 gold items.")

    mine = card(client_for(cast.annotator).get("/").content.decode(), project)

    assert "You are blocked in this project: Gold accuracy 40% on 10 gold items." in mine
    assert figures(mine)["Left for you"] == "0"
    assert "labelling →" not in mine


def test_when_everything_is_answered_the_card_says_the_rest_is_for_others(cast, project):
    for _ in range(6):
        answer(project, cast.annotator, "World")

    mine = card(client_for(cast.annotator).get("/").content.decode(), project)

    assert figures(mine)["Left for you"] == "0"
    assert "Nothing is left for you here now" in mine and "labelling →" not in mine


def test_managers_keep_the_projects_list(cast, project):
    html = client_for(cast.manager).get("/").content.decode()

    assert "Your labelling" not in html
    assert f'href="/projects/{project.pk}/"' in html and "project-card" in html
