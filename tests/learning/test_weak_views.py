"""The weak-supervision pages: the functions' analysis, the editor and its live preview,
import and export, and every source's estimated accuracy. Managers write, reviewers read,
annotators see nothing, and another project's function is not found through this one."""

import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.learning import weak
from apps.learning.models import (
    LabellingFunction,
    LabellingFunctionVersion,
    RuleApplication,
    RuleVote,
    SourceEstimate,
    SourceKind,
)
from apps.projects.jobs import JobState
from apps.projects.models import GoldLabel, Item
from tests.helpers import client_for, make_cast

TEXTS = [
    ("The Lakers beat the Celtics in overtime.", "Sports"),
    ("Chelsea signed a new striker before the season.", "Sports"),
    ("The central bank raised interest rates again.", "Business"),
    ("Shares fell as investors fled the market.", "Business"),
    ("Parliament passed the budget after a long debate.", "World"),
    ("Scientists found water on a distant moon.", "Science"),
]
SPORTS = {"name": "sports-teams", "kind": "keywords", "label": "Sports", "keywords": ["lakers", "chelsea"]}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(cast):
    """The cast's project with a few items (the first two gold) and one function applied."""
    labels = cast.labels
    for n, (text, topic) in enumerate(TEXTS):
        item = Item.objects.create(project=cast.project, text=text, is_gold=n < 2)
        if n < 2:
            GoldLabel.objects.create(item=item, label=labels[topic])
    function = weak.function_save(project=cast.project, data=SPORTS, user=cast.manager)
    weak.votes_compute(cast.project, [function], list(cast.project.items.values_list("pk", flat=True)))
    return cast


def url(name, cast, **kwargs):
    return reverse(f"learning:{name}", kwargs={"project_id": cast.project.pk, **kwargs})


def text_of(response):
    """The page as a person reads it (entities such as &quot; unescaped)."""
    return html.unescape(response.content.decode())


def figure(page, title):
    """A figure of the preview, by its title."""
    return re.search(rf'<div class="muted small">{title}</div><div[^>]*>([^<]*)</div>', page)[1]


def form_data(**overrides):
    data = {"name": "money", "kind": "keywords", "label": "Business", "keywords": "bank\nshares", "match": "word"}
    data.update({"enabled": "on"}, **overrides)
    return data


# --- the functions page -----------------------------------------------------------------------


def test_it_shows_the_analysis_to_a_manager(world):
    response = client_for(world.manager).get(url("functions", world))

    assert response.status_code == 200
    row = response.context["rows"][0]
    assert row["function"].name == "sports-teams"
    assert row["coverage"] == pytest.approx(2 / 6) and row["applied"]
    assert row["correct"] == 2 and row["incorrect"] == 0 and row["empirical_accuracy"] == 1.0
    assert row["polarity_names"] == ["Sports"]
    page = response.content.decode()
    assert "33.3%" in page and "Apply all functions" in page
    assert url("function_new", world) in page and 'data-shortcut="n"' in page


def test_it_shows_the_analysis_to_a_reviewer_without_the_managers_buttons(world):
    response = client_for(world.reviewer).get(url("functions", world))

    assert response.status_code == 200
    page = response.content.decode()
    assert "sports-teams" in page
    assert "Apply all functions" not in page
    assert url("function_new", world) not in page and url("functions_export", world) not in page


@pytest.mark.parametrize("name", ["functions", "sources"])
def test_it_refuses_annotators_and_outsiders(world, name):
    assert client_for(world.annotator).get(url(name, world)).status_code == 403
    assert client_for(world.outsider).get(url(name, world)).status_code == 404


def test_it_says_when_a_function_has_not_been_applied_since_its_edit(world):
    function = LabellingFunction.objects.get(name="sports-teams")
    RuleApplication.objects.create(project=world.project, state=JobState.SUCCEEDED)
    weak.function_save(project=world.project, data={**SPORTS, "keywords": ["lakers"]}, function=function)

    response = client_for(world.manager).get(url("functions", world))

    assert response.context["rows"][0]["applied"] is False
    assert "edited since the last application" in response.content.decode()


def test_a_function_that_fired_on_nothing_is_applied_once_an_application_has_run(world):
    rare = {"name": "rare-words", "kind": "keywords", "label": "Science", "keywords": ["telescope"]}
    weak.function_save(project=world.project, data=rare)
    client = client_for(world.reviewer)

    assert [row["applied"] for row in client.get(url("functions", world)).context["rows"]] == [False, True]

    versions = {f.name: f.version for f in LabellingFunction.objects.filter(project=world.project)}
    RuleApplication.objects.create(project=world.project, state=JobState.SUCCEEDED, summary={"versions": versions})
    response = client.get(url("functions", world))

    assert [row["applied"] for row in response.context["rows"]] == [True, True]
    assert "not applied yet" not in response.content.decode()


def test_a_low_accuracy_function_is_flagged(world):
    SourceEstimate.objects.create(
        project=world.project, kind=SourceKind.FUNCTION, key="sports-teams", title="sports-teams", accuracy=0.3,
        flagged=True,
    )  # fmt: skip

    page = client_for(world.reviewer).get(url("functions", world)).content.decode()

    assert "low accuracy" in page


def test_a_running_application_is_polled_until_it_ends(world):
    application = RuleApplication.objects.create(project=world.project, state=JobState.RUNNING, progress=40)
    client = client_for(world.reviewer)

    page = client.get(url("functions", world)).content.decode()
    assert 'hx-trigger="every 2s"' in page

    part = client.get(url("functions", world), {"part": "application"}, **HTMX).content.decode()
    assert part.lstrip().startswith('<section class="card" id="application"') and 'aria-valuenow="40"' in part

    application.state = JobState.SUCCEEDED
    application.save()
    done = client.get(url("functions", world), {"part": "application"}, **HTMX).content.decode()
    assert "every 2s" not in done and "Show the new analysis" in done


def test_a_multi_label_project_is_told_functions_do_not_fit(db):
    multi = make_cast("multi_label", ("Politics", "Economy"))

    response = client_for(multi.manager).get(reverse("learning:functions", args=[multi.project.pk]))

    assert response.status_code == 200 and "Not for multi-label projects yet" in response.content.decode()


# --- applying, switching off, deleting --------------------------------------------------------


def test_a_manager_applies_every_function(world):
    response = client_for(world.manager).post(url("functions_apply", world))

    assert response.status_code == 302
    application = RuleApplication.objects.get(project=world.project)
    assert application.state == JobState.RUNNING and application.requested_by == world.manager
    assert application.item_count == len(TEXTS)


def test_applying_with_no_enabled_function_says_so_and_starts_nothing(world):
    LabellingFunction.objects.update(enabled=False)

    response = client_for(world.manager).post(url("functions_apply", world), follow=True)

    assert "There is no enabled labelling function to apply." in response.content.decode()
    assert not RuleApplication.objects.exists()


def test_a_reviewer_cannot_apply_switch_off_or_delete(world):
    function = LabellingFunction.objects.get(name="sports-teams")
    client = client_for(world.reviewer)

    assert client.post(url("functions_apply", world)).status_code == 403
    assert client.post(url("function_enable", world, function_id=function.pk)).status_code == 403
    assert client.post(url("function_delete", world, function_id=function.pk)).status_code == 403

    function.refresh_from_db()
    assert function.enabled and not RuleApplication.objects.exists()


def test_a_manager_switches_a_function_off_and_on(world):
    function = LabellingFunction.objects.get(name="sports-teams")
    client = client_for(world.manager)

    response = client.post(url("function_enable", world, function_id=function.pk), **HTMX)
    function.refresh_from_db()
    assert not function.enabled and function.definition["enabled"] is False and function.version == 1
    # htmx gets the table back, its row now offering to switch the function on.
    page = response.content.decode()
    assert page.lstrip().startswith('<section class="card" id="functions-table"') and 'aria-pressed="false"' in page

    client.post(url("function_enable", world, function_id=function.pk), {"enabled": "on"})
    function.refresh_from_db()
    assert function.enabled


def test_a_manager_deletes_a_function_with_its_votes(world):
    function = LabellingFunction.objects.get(name="sports-teams")

    response = client_for(world.manager).post(url("function_delete", world, function_id=function.pk), follow=True)

    assert "is deleted" in response.content.decode()
    assert not LabellingFunction.objects.filter(pk=function.pk).exists()
    assert not RuleVote.objects.filter(project=world.project).exists()


@pytest.mark.parametrize(
    ("name", "method"),
    [("function_edit", "get"), ("function_edit", "post"), ("function_enable", "post"), ("function_delete", "post")],
)
def test_a_function_of_another_project_is_not_found_through_this_one(world, name, method):
    theirs = weak.function_save(
        project=world.other_project, data={"name": "yes-words", "kind": "keywords", "label": "Yes", "keywords": ["y"]}
    )

    response = getattr(client_for(world.manager), method)(url(name, world, function_id=theirs.pk), form_data())

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled and theirs.version == 1 and theirs.definition["keywords"] == ["y"]


def test_a_preview_naming_another_projects_function_is_not_found(world):
    theirs = weak.function_save(
        project=world.other_project, data={"name": "yes-words", "kind": "keywords", "label": "Yes", "keywords": ["y"]}
    )

    response = client_for(world.manager).post(url("function_preview", world), form_data(function=theirs.pk))

    assert response.status_code == 404


# --- the editor ---------------------------------------------------------------------------------


def test_a_manager_writes_a_keyword_function(world):
    response = client_for(world.manager).post(url("function_new", world), form_data(keywords="bank\n\n shares \n"))

    assert response.status_code == 302 and response["Location"] == url("functions", world)
    function = LabellingFunction.objects.get(project=world.project, name="money")
    assert function.definition == {
        "name": "money", "kind": "keywords", "label": "Business", "keywords": ["bank", "shares"], "match": "word",
        "case_sensitive": False, "enabled": True,
    }  # fmt: skip
    assert function.version == 1 and function.created_by == world.manager
    assert list(function.versions.values_list("number", flat=True)) == [1]


def test_the_editor_keeps_only_the_chosen_kinds_keys(world):
    data = form_data(name="rates", kind="regex", pattern=r"\brates?\b", keywords="left over", threshold="0.5")

    client_for(world.manager).post(url("function_new", world), data)

    definition = LabellingFunction.objects.get(name="rates").definition
    assert definition["pattern"] == r"\brates?\b" and "keywords" not in definition and "threshold" not in definition


def test_what_a_kind_needs_is_required_for_that_kind_only(world):
    client = client_for(world.manager)

    refused = client.post(url("function_new", world), form_data(label="", keywords=""))
    assert refused.status_code == 200 and set(refused.context["form"].errors) == {"label", "keywords"}
    assert not LabellingFunction.objects.filter(name="money").exists()

    # A model function votes the champion's label: no label, no keywords.
    client.post(url("function_new", world), form_data(kind="model", label="", keywords="", threshold="0.8"))
    definition = LabellingFunction.objects.get(name="money").definition
    assert definition == {"name": "money", "kind": "model", "threshold": 0.8, "enabled": True}


def test_editing_makes_a_new_version_and_an_unchanged_save_does_not(world):
    function = LabellingFunction.objects.get(name="sports-teams")
    client = client_for(world.manager)
    edit = url("function_edit", world, function_id=function.pk)
    same = form_data(name="sports-teams", label="Sports", keywords="lakers\nchelsea")

    client.post(edit, same)
    function.refresh_from_db()
    assert function.version == 1

    client.post(edit, {**same, "keywords": "lakers\nchelsea\narsenal"})
    function.refresh_from_db()
    assert function.version == 2 and function.definition["keywords"] == ["lakers", "chelsea", "arsenal"]
    page = client.get(edit).content.decode()
    assert "v2" in page and "v1" in page and "arsenal" in page and "Save as a new version" in page


def test_the_edit_form_starts_from_the_stored_definition(world):
    function = LabellingFunction.objects.get(name="sports-teams")

    response = client_for(world.manager).get(url("function_edit", world, function_id=function.pk))

    form = response.context["form"]
    assert form.initial["keywords"] == "lakers\nchelsea" and form.initial["label"] == "Sports"
    # The preview loads at once for a function that exists.
    assert 'hx-trigger="load, input changed delay:400ms, change"' in response.content.decode()


def test_a_name_the_project_has_is_refused_on_the_form(world):
    response = client_for(world.manager).post(url("function_new", world), form_data(name="sports-teams"))

    assert response.status_code == 200
    assert "This project already has a function named" in response.content.decode()
    assert LabellingFunction.objects.filter(project=world.project).count() == 1


def test_a_bad_pattern_is_refused_on_the_form_and_saves_nothing(world):
    response = client_for(world.manager).post(url("function_new", world), form_data(kind="regex", pattern="(unclosed"))

    assert response.status_code == 200
    assert 'Function "money": "pattern" cannot be used' in text_of(response)
    assert not LabellingFunction.objects.filter(name="money").exists()


def test_a_reviewer_cannot_open_or_use_the_editor(world):
    client = client_for(world.reviewer)

    assert client.get(url("function_new", world)).status_code == 403
    assert client.post(url("function_new", world), form_data()).status_code == 403
    assert client.post(url("function_preview", world), form_data()).status_code == 403
    assert not LabellingFunction.objects.filter(name="money").exists()


# --- the live preview ---------------------------------------------------------------------------


def test_the_preview_highlights_what_fires_with_its_figures(world):
    response = client_for(world.manager).post(url("function_preview", world), form_data(name="", keywords="lakers"))

    assert response.status_code == 200
    page = text_of(response)
    assert "The <mark>Lakers</mark> beat the Celtics" in page
    assert re.search(r'id="preview-coverage">16.7%</div><div class="muted small">1 of 6<', page)
    # It votes Business on a gold Sports item: checked, and wrong.
    assert "0 of 1 known" in page and "✗ wrong" in page and "✓ right" not in page


def test_the_preview_counts_overlap_with_the_other_functions(world):
    response = client_for(world.manager).post(
        url("function_preview", world), form_data(name="sport-words", label="Sports", keywords="lakers\nbank")
    )

    page = text_of(response)
    assert figure(page, "Overlaps") == "16.7%" and figure(page, "Conflicts") == "0.0%"
    assert "1 of 1 known" in page and "✓ right" in page


def test_editing_does_not_count_the_functions_own_votes_as_overlap(world):
    function = LabellingFunction.objects.get(name="sports-teams")
    data = form_data(name="sports-teams", label="Sports", keywords="lakers", function=function.pk)

    page = text_of(client_for(world.manager).post(url("function_preview", world), data))

    assert figure(page, "Coverage") == "16.7%" and figure(page, "Overlaps") == "0.0%"


def test_a_bad_regex_in_the_preview_is_shown_in_place_not_as_an_error_page(world):
    response = client_for(world.manager).post(url("function_preview", world), form_data(kind="regex", pattern="(a"))

    assert response.status_code == 200
    page = text_of(response)
    assert 'role="alert"' in page and '"pattern" cannot be used: it does not compile' in page
    assert "Coverage" not in page


def test_a_form_mistake_in_the_preview_is_shown_in_place(world):
    response = client_for(world.manager).post(url("function_preview", world), form_data(kind="model", threshold="2"))

    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    assert "Ensure this value is less than or equal to 1" in response.content.decode()


# --- import and export ------------------------------------------------------------------------


def upload(document):
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return {"file": SimpleUploadedFile("functions.json", raw, content_type="application/json")}


def test_a_manager_imports_a_file_and_exports_it_back(world):
    client = client_for(world.manager)
    money = {"name": "money", "kind": "keywords", "label": "Business", "keywords": ["bank"]}
    document = {"labelling_functions": [{**SPORTS, "keywords": ["lakers", "chelsea", "arsenal"]}, money]}

    response = client.post(url("functions_import", world), upload(document), follow=True)

    assert "Imported: 1 new, 1 changed, 0 unchanged." in response.content.decode()
    assert LabellingFunction.objects.get(name="sports-teams").version == 2
    exported = client.get(url("functions_export", world))
    assert exported["Content-Disposition"] == f'attachment; filename="{world.project.pk}-labelling-functions.json"'
    names = [f["name"] for f in json.loads(exported.content)["labelling_functions"]]
    assert names == ["money", "sports-teams"]


BAD_LABEL = {"name": "money", "kind": "keywords", "label": "Bussiness", "keywords": ["bank"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # The first function would change "sports-teams": nothing of a bad file is kept.
        ({"labelling_functions": [{**SPORTS, "keywords": ["arsenal"]}, BAD_LABEL]}, 'unknown label "Bussiness"'),
        ({"functions": []}, "labelling_functions"),
        (b"{not json", "The file is not valid JSON"),
        (b"x" * 1_000_001, "the limit is"),
    ],
)
def test_a_bad_import_file_shows_its_error_and_changes_nothing(world, raw, message):
    before = list(LabellingFunction.objects.values_list("name", "version", "definition"))

    response = client_for(world.manager).post(url("functions_import", world), upload(raw))

    assert response.status_code == 200
    page = text_of(response)
    assert 'class="errorlist nonfield" role="alert"' in page and message in page
    assert list(LabellingFunction.objects.values_list("name", "version", "definition")) == before
    assert LabellingFunctionVersion.objects.count() == 1


def test_a_reviewer_cannot_import_or_export(world):
    client = client_for(world.reviewer)

    assert client.get(url("functions_export", world)).status_code == 403
    assert (
        client.post(url("functions_import", world), upload({"labelling_functions": [form_data()]})).status_code == 403
    )
    assert LabellingFunction.objects.count() == 1


# --- every source's estimate (the functions page and the reports page) ----------------------


def test_the_sources_fragment_shows_people_and_functions_side_by_side(world):
    SourceEstimate.objects.create(
        project=world.project, kind=SourceKind.ANNOTATOR, key=str(world.annotator.pk), title="annotator",
        accuracy=0.92, coverage=0.5, votes=3,
    )  # fmt: skip
    SourceEstimate.objects.create(
        project=world.project, kind=SourceKind.FUNCTION, key="sports-teams", title="sports-teams", accuracy=0.71,
        coverage=0.33, votes=2,
    )  # fmt: skip

    response = client_for(world.reviewer).get(url("sources", world), **HTMX)

    page = response.content.decode()
    assert page.lstrip().startswith('<section class="card" id="sources"') and "92.0%" in page and "71.0%" in page
    chart = json.loads(html.unescape(re.search(r'<div hidden id="sources-chart">(.*?)</div>', page)[1]))
    assert chart["data"]["labels"] == ["annotator", "sports-teams"]
    assert chart["data"]["datasets"][0]["data"] == [92.0, None] and chart["data"]["datasets"][1]["data"] == [None, 71.0]


def test_the_reports_page_loads_every_sources_estimate_from_learning(world):
    page = client_for(world.reviewer).get(reverse("annotation:reports", args=[world.project.pk])).content.decode()

    assert f'hx-get="{url("sources", world)}" hx-trigger="load"' in page
