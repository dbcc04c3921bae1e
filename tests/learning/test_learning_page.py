"""The learning page: the strategy mix as a form, every choice explained, the learning curve's
axis, and the polled runs part that brings a finished run's version without a reload."""

import html
import json
import re

from django.urls import reverse

from apps.learning import presentation, services, training
from apps.learning.forms import EXPLAINED, STRATEGY_HELP, mix_strategies
from apps.learning.models import ModelVersion
from apps.projects.models import LabelModel, PrelabelMode, Project, SamplingStrategy, TrainingMode
from apps.projects.services import STRATEGY_NAMES, project_update
from tests.helpers import client_for

HTMX = {"HTTP_HX_REQUEST": "true"}
SETTINGS = {
    "sampling_strategy": "mix", "training_mode": "head", "train_every": 50, "train_weight_by_confidence": "on",
    "prelabel_mode": "show", "label_model": "dawid_skene", "auto_label_threshold": "", "backbone": "all-minilm-l6-v2",
}  # fmt: skip


def page_url(project):
    return reverse("learning:learning", args=[project.pk])


def weight_value(page, name):
    """The value a weight's number input shows, or None when it is empty."""
    tag = re.search(rf'<input[^>]*name="weight_{name}"[^>]*>', page)[0]
    value = re.search(r'value="([^"]*)"', tag)
    return value[1] if value else None


# --- the strategy mix ---------------------------------------------------------------------------------


def test_the_strategy_mix_is_saved_as_the_same_json_and_shown_again(cast):
    weights = {"weight_margin": "0.7", "weight_diversity": "0.2", "weight_random": "0.1", "weight_bald": "0"}

    saved = client_for(cast.manager).post(page_url(cast.project), {**SETTINGS, **weights, "weight_core_set": ""})
    page = client_for(cast.manager).get(page_url(cast.project)).content.decode()

    project = Project.objects.get(pk=cast.project.pk)
    assert saved.status_code == 302 and project.sampling_strategy == "mix"
    assert project.strategy_weights == {"margin": 0.7, "diversity": 0.2, "random": 0.1}
    assert [weight_value(page, name) for name in ("margin", "diversity", "random", "bald", "core_set")] == [
        "0.7", "0.2", "0.1", None, None,
    ]  # fmt: skip


def test_weights_set_through_the_api_show_in_the_form(cast):
    project_update(project=cast.project, data={"strategy_weights": {"committee_kl": 2, "boundary": 1}})

    page = client_for(cast.manager).get(page_url(cast.project)).content.decode()

    assert weight_value(page, "committee_kl") == "2" and weight_value(page, "boundary") == "1"
    assert weight_value(page, "margin") is None


def test_no_weights_keep_the_default_mix(cast):
    project_update(project=cast.project, data={"strategy_weights": {"margin": 1}})

    saved = client_for(cast.manager).post(page_url(cast.project), SETTINGS)

    assert saved.status_code == 302 and Project.objects.get(pk=cast.project.pk).strategy_weights == {}


def test_bad_weights_are_refused_with_a_message_and_nothing_changes(cast):
    project_update(project=cast.project, data={"strategy_weights": {"margin": 1}})
    client = client_for(cast.manager)

    negative = client.post(page_url(cast.project), {**SETTINGS, "weight_margin": "-0.5", "weight_random": "1"})
    not_a_number = client.post(page_url(cast.project), {**SETTINGS, "weight_entropy": "lots"})
    all_zero = client.post(page_url(cast.project), {**SETTINGS, "weight_margin": "0", "weight_random": "0"})

    assert negative.status_code == 200 and "A weight cannot be negative." in negative.content.decode()
    assert not_a_number.status_code == 200 and "Enter a number." in not_a_number.content.decode()
    assert all_zero.status_code == 200 and "Give at least one strategy of the mix a weight above 0" in html.unescape(
        all_zero.content.decode()
    )
    # A refused weight shows its part of the form whatever strategy is chosen.
    assert "data-has-errors" in negative.content.decode()
    assert Project.objects.get(pk=cast.project.pk).strategy_weights == {"margin": 1}


def test_the_form_offers_every_strategy_the_service_accepts_in_a_mix(cast):
    assert {name for name, _ in mix_strategies()} == STRATEGY_NAMES


# --- explanations --------------------------------------------------------------------------------------


def test_every_strategy_and_method_is_explained_on_the_page(cast):
    page = html.unescape(client_for(cast.manager).get(page_url(cast.project)).content.decode())

    for name, choices in (
        ("sampling_strategy", SamplingStrategy), ("training_mode", TrainingMode),
        ("label_model", LabelModel), ("prelabel_mode", PrelabelMode),
    ):  # fmt: skip
        for value in choices.values:
            row = re.search(rf'<div class="choice-row[^"]*" data-choice="{value}">(.*?)</div>', page, re.S)
            assert row and EXPLAINED[name][1][value] in row[1], (name, value)
    for name in STRATEGY_NAMES - set(SamplingStrategy.values):  # offered only in a mix: explained there
        assert STRATEGY_HELP[name] in page
    chosen = re.search(r'<div class="choice-row current" data-choice="([a-z_]+)">', page)
    assert chosen[1] == cast.project.sampling_strategy


# --- the learning curve ------------------------------------------------------------------------------


def version(number, accuracy, f1, size):
    return ModelVersion(number=number, metrics={"accuracy": accuracy, "macro_f1": f1}, train_size=size)


def test_the_curve_shows_versions_in_order_on_an_axis_fitted_with_a_floor():
    versions = [version(3, 0.92, 0.9, 300), version(1, 0.81, 0.78, 100), version(2, 0.88, 0.85, 1200)]

    curve = presentation.curve(versions)

    assert curve["data"]["labels"] == [["v1", "100 labels"], ["v2", "1,200 labels"], ["v3", "300 labels"]]
    assert curve["data"]["datasets"][0]["data"] == [78.0, 85.0, 90.0]
    assert curve["options"]["scales"]["y"]["min"] == 60 and curve["options"]["scales"]["y"]["max"] == 100
    assert curve["options"]["scales"]["y"]["title"]["display"] is True
    assert presentation.curve([version(1, 0.3, 0.05, 10)])["options"]["scales"]["y"]["min"] == 0


# --- the polled runs part -------------------------------------------------------------------------------


def poll(client, project, shown, banner=True):
    query = f"?part=runs&shown={shown}" + ("&banner=1" if banner else "")
    return client.get(page_url(project) + query, **HTMX).content.decode()


def test_the_runs_part_brings_the_new_version_when_a_run_finishes(
    labelled_project, cast, django_capture_on_commit_callbacks
):
    client = client_for(cast.manager)
    run = services.training_request(project=labelled_project, user=cast.manager)  # queued: no worker here

    page = client.get(page_url(labelled_project)).content.decode()
    waiting = poll(client, labelled_project, shown=0)
    with django_capture_on_commit_callbacks(execute=True):  # the ranking it starts runs too
        training.training_run_execute(run_id=run.pk)
    finished = poll(client, labelled_project, shown=0)

    assert 'hx-trigger="every 2s"' in page and "part=runs&amp;shown=0" in page and "No versions yet." in page
    assert 'hx-trigger="every 2s"' in waiting and 'id="versions"' not in waiting and 'id="messages"' not in waiting
    assert 'hx-trigger="every 2s"' not in finished  # polling stops
    versions = re.search(r'<section class="card" id="versions"[^>]*hx-swap-oob="true">(.*?)</section>', finished, re.S)
    assert versions and "<strong>v1</strong>" in versions[1]
    assert re.search(r'<section class="card" id="champion" hx-swap-oob="true">.*?badge-succeeded">v1<', finished, re.S)
    curve = json.loads(html.unescape(re.search(r'<div hidden id="curve-chart">(.*?)</div>', finished)[1]))
    assert curve["data"]["labels"] == [["v1", "160 labels"]]
    # The "Training is queued" message gives way to how the work ended.
    assert re.search(
        r'<ul class="messages" id="messages" role="status" hx-swap-oob="true"><li class="success">', finished
    )
    assert "The open items are ranked by v1 now." in finished or "v1 is the champion now" in finished


def test_a_poll_without_a_banner_leaves_the_messages_alone(labelled_project, cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.training_request(project=labelled_project, user=cast.manager)

    finished = poll(client_for(cast.reviewer), labelled_project, shown=0, banner=False)

    assert 'id="versions"' in finished and 'id="messages"' not in finished
