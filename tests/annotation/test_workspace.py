"""The annotate page (with and without JavaScript) and the annotation API."""

import json
import uuid

import pytest
from django.core.cache import cache

from apps.annotation.models import Annotation, Assignment, AssignmentState, Suggestion
from apps.annotation.services import task_next_for_annotator
from apps.projects.models import Item, Project
from apps.projects.services import membership_block, project_update
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2, "instructions": "Pick **one**."})
    for n in range(6):
        ItemFactory(project=cast.project, text=f"Story {n}: the derby ended level.")
    cache.clear()  # the project's counts are cached by id, which an earlier test's project may have had
    return Project.objects.get(pk=cast.project.pk)


def live_leases(user):
    return list(Assignment.objects.filter(annotator=user, state=AssignmentState.LEASED).order_by("id"))


def test_the_page_shows_an_item_and_holds_the_next_one_ahead(cast, project):
    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")

    assert page.status_code == 200
    current, ahead = live_leases(cast.annotator)
    html = page.content.decode()
    assert f'data-assignment="{current.pk}"' in html and f'data-assignment="{ahead.pk}"' in html
    assert (
        html.index(f'data-assignment="{current.pk}"')
        < html.index('<template id="ahead">')
        < html.index(f'data-assignment="{ahead.pk}"')
    )
    assert "<strong>one</strong>" in html and "<kbd>1</kbd>" in html


def test_reloading_the_page_hands_back_the_same_items(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    client.get(f"/projects/{project.pk}/annotate/")

    assert len(live_leases(cast.annotator)) == 2


def test_a_plain_form_post_saves_and_shows_the_next_item(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(cast.annotator)[0]

    response = client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": current.pk, "submission_id": str(uuid.uuid4()), "label": cast.labels["Sports"].pk},
    )

    assert response.status_code == 302
    annotation = Annotation.objects.get(annotator=cast.annotator)
    assert annotation.item_id == current.item_id and annotation.labels.get().label.name == "Sports"
    assert annotation.duration_ms is not None
    page = client.get(response["Location"])
    assert b"Saved." in page.content and f'data-assignment="{current.pk}"'.encode() not in page.content


def test_a_plain_form_post_without_a_label_keeps_the_item(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(cast.annotator)[0]

    response = client.post(
        f"/projects/{project.pk}/annotate/submit/", {"assignment": current.pk, "submission_id": str(uuid.uuid4())}
    )

    assert response.status_code == 302 and response["Location"].endswith(f"?assignment={current.pk}")
    page = client.get(response["Location"])
    assert b"Choose a label first" in page.content and f'data-assignment="{current.pk}"'.encode() in page.content
    assert not Annotation.objects.exists()


def test_the_script_gets_the_item_after_next_and_progress_as_json(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current, ahead = live_leases(cast.annotator)

    response = client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {
            "assignment": current.pk,
            "submission_id": str(uuid.uuid4()),
            "label": cast.labels["World"].pk,
            "duration_ms": "2500",
            "holding": [ahead.pk],
        },
        **JSON,
    )

    body = response.json()
    assert body["saved"] and not body["repeated"]
    new = Assignment.objects.filter(annotator=cast.annotator, state=AssignmentState.LEASED).exclude(pk=ahead.pk).get()
    assert f'data-assignment="{new.pk}"' in body["next_html"]
    # Six items with k = 2 need 12 answers; this one is the first the project has.
    progress = {"total": 1, "session": 1, "left": 6, "project_given": 1, "project_needed": 12, "project_still": 11}
    assert progress.items() <= body["progress"].items()
    assert "11</strong> answers still needed" in body["progress_html"]
    assert "Story" in body["recent_html"] and "Change" in body["recent_html"]
    assert Annotation.objects.get().duration_ms == 2500


def test_the_script_is_told_why_an_answer_was_refused(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(cast.annotator)[0]

    response = client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": current.pk, "submission_id": str(uuid.uuid4()), "label": 987654},
        **JSON,
    )

    assert response.status_code == 422
    assert "no label with the id 987654" in response.json()["message"]


def test_a_forged_assignment_is_not_found(cast, project):
    theirs = task_next_for_annotator(project=project, annotator=cast.other_annotator).assignment

    response = client_for(cast.annotator).post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": theirs.pk, "submission_id": str(uuid.uuid4()), "label": cast.labels["World"].pk},
    )

    assert response.status_code == 404
    assert not Annotation.objects.exists()


def test_skipping_from_the_page(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(cast.annotator)[0]

    response = client.post(
        f"/projects/{project.pk}/annotate/skip/", {"assignment": current.pk, "reason": "No label fits"}, **JSON
    )

    assert response.json()["skipped"] and response.json()["next_html"]
    skipped = Assignment.objects.get(pk=current.pk)
    assert (skipped.state, skipped.skip_reason) == (AssignmentState.SKIPPED, "No label fits")


def test_changing_a_recent_answer_from_the_page(cast, project):
    client = client_for(cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(cast.annotator)[0]
    client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": current.pk, "submission_id": str(uuid.uuid4()), "label": cast.labels["World"].pk},
    )
    annotation = Annotation.objects.get()

    edit = client.get(f"/projects/{project.pk}/annotate/answers/{annotation.pk}/")
    saved = client.post(
        f"/projects/{project.pk}/annotate/answers/{annotation.pk}/", {"label": cast.labels["Business"].pk, "version": 1}
    )

    assert edit.status_code == 200 and b"checked" in edit.content
    assert saved.status_code == 302
    assert annotation.labels.get().label.name == "Business"


def test_gold_items_look_like_any_other_item(cast, project):
    project_update(project=project, data={"gold_ratio": 1.0})
    ItemFactory(project=project, text="A gold story.", is_gold=True)

    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")

    assert b"A gold story." in page.content
    assert b"gold" not in page.content.lower().replace(b"a gold story.", b"")


def test_blocked_annotators_see_why(cast, project):
    membership_block(membership=project.memberships.get(user=cast.annotator), reason="Low gold accuracy")

    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")

    assert b"You are blocked from this project" in page.content


def test_model_suggestions_are_shown_as_suggestions(cast, project):
    first = task_next_for_annotator(project=project, annotator=cast.annotator).assignment
    Suggestion.objects.create(
        item_id=first.item_id, parts=[{"label_id": cast.labels["Sports"].pk}], confidence=0.87, source="model v1"
    )

    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")

    html = page.content.decode()
    assert "Model suggests" in html and "87% sure" in html
    assert f'data-labels="{cast.labels["Sports"].pk} "' in html


def test_thirty_labels_and_long_texts_render(cast, project):
    from apps.projects.services import label_create

    for n in range(26):
        label_create(project=project, name=f"Topic {n}")
    Item.objects.filter(project=project).update(text="word " * 1000)

    page = client_for(cast.annotator).get(f"/projects/{project.pk}/annotate/")

    assert page.content.count(b'class="choice"') >= 30 and b"choices many" in page.content


def test_span_answers_post_as_json(spans_cast):
    project = spans_cast.project
    project_update(project=project, data={"gold_ratio": 0.0})
    ItemFactory(project=project, text="Ada Lovelace visited London.")
    client = client_for(spans_cast.annotator)
    client.get(f"/projects/{project.pk}/annotate/")
    current = live_leases(spans_cast.annotator)[0]
    spans = [{"start": 0, "end": 12, "label_id": spans_cast.labels["Person"].pk}]

    client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": current.pk, "submission_id": str(uuid.uuid4()), "spans": json.dumps(spans)},
    )

    assert list(Annotation.objects.get().labels.values_list("start", "end")) == [(0, 12)]


# --- API ------------------------------------------------------------------------------


def test_api_next_submit_and_next_again(cast, project):
    api = api_for(cast.annotator)

    task = api.post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()["task"]
    body = {"assignment_id": task["assignment_id"], "value": "Sports", "submission_id": str(uuid.uuid4()), "next": True}
    first = api.post(f"/api/projects/{project.pk}/annotations/", body, format="json")
    again = api.post(f"/api/projects/{project.pk}/annotations/", body, format="json")

    assert "is_gold" not in task and task["text"].startswith("Story")
    assert first.status_code == 201 and first.json()["annotation"]["value"] == "Sports"
    assert first.json()["next"]["task"]["assignment_id"] != task["assignment_id"]
    assert again.status_code == 200 and again.json()["repeated"]
    assert Annotation.objects.count() == 1


def test_api_refusals_have_clear_codes(cast, project):
    api = api_for(cast.annotator)
    task = api.post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()["task"]

    bad_value = api.post(
        f"/api/projects/{project.pk}/annotations/",
        {"assignment_id": task["assignment_id"], "value": "Weather", "submission_id": str(uuid.uuid4())},
        format="json",
    )
    api.post(f"/api/projects/{project.pk}/tasks/{task['assignment_id']}/skip/", {"reason": "unclear"}, format="json")
    after_skip = api.post(
        f"/api/projects/{project.pk}/annotations/",
        {"assignment_id": task["assignment_id"], "value": "World", "submission_id": str(uuid.uuid4())},
        format="json",
    )
    forged = api.post(
        f"/api/projects/{project.pk}/annotations/",
        {"assignment_id": 10**9, "value": "World", "submission_id": str(uuid.uuid4())},
        format="json",
    )

    assert bad_value.status_code == 400 and "unknown label 'Weather'" in json.dumps(bad_value.json())
    assert after_skip.status_code == 409 and "skipped" in after_skip.json()["detail"]
    assert forged.status_code == 404
    assert not Annotation.objects.exists()


def test_api_says_why_there_is_no_task(cast, project):
    project_update(project=project, data={"budget_max_annotations": 0})

    body = api_for(cast.annotator).post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()

    assert body["task"] is None and body["reason"] == "budget"


def test_reviewers_read_annotations_through_the_api(cast, project):
    api = api_for(cast.annotator)
    task = api.post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()["task"]
    api.post(
        f"/api/projects/{project.pk}/annotations/",
        {"assignment_id": task["assignment_id"], "value": "World", "submission_id": str(uuid.uuid4())},
        format="json",
    )

    rows = api_for(cast.reviewer).get(f"/api/projects/{project.pk}/annotations/").json()["results"]

    assert [(row["annotator"], row["value"]) for row in rows] == [("annotator", "World")]


def test_the_manager_dashboard_shows_annotators_budget_and_days(cast, project):
    project_update(project=project, data={"budget_max_annotations": 10, "price_per_annotation": "0.25"})
    api = api_for(cast.annotator)
    for _ in range(3):
        task = api.post(f"/api/projects/{project.pk}/tasks/next/", {}, format="json").json()["task"]
        api.post(
            f"/api/projects/{project.pk}/annotations/",
            {
                "assignment_id": task["assignment_id"],
                "value": "World",
                "submission_id": str(uuid.uuid4()),
                "duration_ms": 4000,
            },
            format="json",
        )

    page = client_for(cast.manager).get(f"/projects/{project.pk}/").content.decode()

    assert 'id="per-day-chart"' in page
    assert "<strong>annotator</strong>" in page and "4.0 s" in page
    assert "<strong>3</strong> of 10 paid annotations" in page and "0.75 USD of 2.50" in page


def test_suggestions_can_wait_until_after_the_answer(cast, project):
    project_update(project=project, data={"prelabel_mode": "after"})
    project = Project.objects.get(pk=project.pk)
    first = task_next_for_annotator(project=project, annotator=cast.annotator).assignment
    Suggestion.objects.create(
        item_id=first.item_id, parts=[{"label_id": cast.labels["Sports"].pk}], confidence=0.9, source="v1"
    )
    client = client_for(cast.annotator)

    page = client.get(f"/projects/{project.pk}/annotate/")
    assert b"Model suggests" not in page.content
    client.post(
        f"/projects/{project.pk}/annotate/submit/",
        {"assignment": first.pk, "submission_id": str(uuid.uuid4()), "label": cast.labels["World"].pk},
    )
    after = client.get(f"/projects/{project.pk}/annotate/")
    assert b"model: Sports" in after.content
