"""What the workspace tells an annotator: progress bars that move with each answer, the
project's need in words that agree with "nothing left for you", suggestions a one-key
accept is offered for only above the project's floor (and where they come from), the
keys, and readable selected labels."""

import re
import uuid

import pytest
from django.core.cache import cache

from apps.annotation.models import Suggestion
from apps.annotation.presentation import no_task_message
from apps.annotation.services import NextTask, NoTask
from apps.projects.answers import Answer, LabelPart
from apps.projects.models import Label, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2, "max_items_per_annotator": 3})
    for n in range(4):
        ItemFactory(project=cast.project, text=f"Story {n}: the derby ended level.")
    cache.clear()  # the project's counts are cached by id, which an earlier test's project may have had
    return Project.objects.get(pk=cast.project.pk)


def current_and_ahead(html):
    return re.findall(r'data-assignment="(\d+)"', html)


def answer_first(client, project, cast, queue):
    """Answer the first item of ``queue`` (the assignments the page holds), as the script
    does; the item the reply brings joins the end of the queue."""
    current, *held = queue
    form = {"assignment": current, "submission_id": str(uuid.uuid4()), "label": cast.labels["Sports"].pk}
    body = client.post(f"/projects/{project.pk}/annotate/submit/", {**form, "holding": held}, **JSON).json()
    assert body["saved"], body
    queue[:] = held + current_and_ahead(body["next_html"])
    return body


def test_both_bars_move_with_every_answer(cast, project):
    client = client_for(cast.annotator)
    html = client.get(f"/projects/{project.pk}/annotate/").content.decode()
    assert '<strong data-progress="quota_left">3</strong> of 3 answers left for you' in html
    assert '<strong data-progress="project_still">8</strong> answers still needed' in html
    queue = current_and_ahead(html)

    seen = []
    for _ in range(3):
        body = answer_first(client, project, cast, queue)
        seen.append((body["progress"]["quota_left"], body["progress"]["project_still"]))
        assert f'data-progress="quota_left">{seen[-1][0]}<' in body["progress_html"]
        assert f'aria-valuenow="{body["progress"]["total"]}"' in body["progress_html"]

    # Each answer takes one off the annotator's limit and one off what the project needs,
    # although the project's count of its needs is cached for 30 seconds.
    assert seen == [(2, 7), (1, 6), (0, 5)]


def test_one_answer_is_singular():
    progress = {"project_still": 1}

    message = no_task_message(NextTask(None, NoTask.DONE), progress)

    assert message.endswith("The project's other 1 answer must come from other people.")


def test_nothing_left_for_you_says_the_rest_is_for_other_people(cast, project):
    project_update(project=project, data={"max_items_per_annotator": None})
    client = client_for(cast.annotator)
    queue = current_and_ahead(client.get(f"/projects/{project.pk}/annotate/").content.decode())
    while queue:
        answer_first(client, project, cast, queue)
    cache.clear()

    page = client.get(f"/projects/{project.pk}/annotate/").content.decode()

    assert "nothing left for you to label" in page
    assert "The project&#x27;s other 4 answers must come from other people." in page
    assert '<strong data-progress="project_still">4</strong> answers still needed, from anyone' in page


def suggest(item, label, confidence, source="model v3"):
    Suggestion.objects.create(
        item=item, parts=Answer([LabelPart(None, None, label.pk)]), confidence=confidence, source=source
    )


def workspace_suggestion(client, project):
    html = client.get(f"/projects/{project.pk}/annotate/").content.decode()
    current = html[: html.index('<template id="ahead">')]
    return current[current.index('<div class="suggestion') : current.index("</fieldset>")]


def test_a_sure_suggestion_takes_one_key_and_names_its_model(cast, project):
    for item in project.items.all():
        suggest(item, cast.labels["Business"], 0.83)

    box = workspace_suggestion(client_for(cast.annotator), project)

    assert 'data-accept="1"' in box and "Model suggests" in box
    assert 'Accept <span class="kbd-hint"><kbd>Shift</kbd>+<kbd>A</kbd></span>' in box
    assert "83% sure" in box and "from model v3" in box


@pytest.mark.parametrize("confidence", [0.26, None])
def test_an_unsure_suggestion_is_a_hint_with_no_accept(cast, project, confidence):
    project_update(project=project, data={"suggestion_min_confidence": 0.5})
    for item in project.items.all():
        suggest(item, cast.labels["Science"], confidence)

    box = workspace_suggestion(client_for(cast.annotator), project)

    assert 'data-accept="0"' in box and "hint-only" in box and "a hint only" in box
    assert "accept-suggestion" not in box and "Shift</kbd>+<kbd>A" not in box
    assert "Science" in box and "from model v3" in box


def test_a_floor_of_zero_offers_every_suggestion(cast, project):
    project_update(project=project, data={"suggestion_min_confidence": 0.0})
    for item in project.items.all():
        suggest(item, cast.labels["Science"], None)

    assert 'data-accept="1"' in workspace_suggestion(client_for(cast.annotator), project)


def test_the_key_help_gives_tab_back_to_focus_and_names_the_accept_key(cast, project):
    html = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/").content.decode()
    help_list = html[html.index('id="shortcuts"') : html.index("</details>")]

    assert "<dt><kbd>Tab</kbd></dt><dd>move to the next control" in help_list
    assert (
        "<dt><kbd>Shift</kbd>+<kbd>A</kbd></dt><dd>accept the model's suggestion, when it is at least 50% sure"
        in help_list
    )
    assert "<kbd>Tab</kbd></dt><dd>accept" not in help_list


def test_a_selected_label_gets_black_or_white_text_by_its_colour(cast, project):
    Label.objects.filter(pk=cast.labels["World"].pk).update(color="#facc15")
    Label.objects.filter(pk=cast.labels["Sports"].pk).update(color="#1e3a8a")

    html = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/").content.decode()

    assert "--chip: #facc15; --chip-text: #000000" in html
    assert "--chip: #1e3a8a; --chip-text: #ffffff" in html
