"""The reviewer's pages and the report API."""

import uuid

import pytest

from apps.annotation.consensus import consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import ConsolidationRun, ItemConsensus
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.models import Membership, Project
from apps.projects.services import membership_block, project_update
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for


@pytest.fixture
def consolidated(cast):
    project_update(project=cast.project, data={"overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000})
    project = Project.objects.get(pk=cast.project.pk)
    for n in range(6):
        ItemFactory(project=project, text=f"Story {n}")
    for user, values in ((cast.annotator, ["World"] * 6), (cast.other_annotator, ["World", "Sports"] * 3)):
        for value in values:
            task = task_next_for_annotator(project=project, annotator=user).assignment
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
            )
    consolidation_run(run_id=consolidation_request(project=project).pk)
    return project


def test_the_report_page_shows_agreement_charts_and_disagreements(cast, consolidated):
    page = client_for(cast.reviewer).get(f"/projects/{consolidated.pk}/reports/")

    html = page.content.decode()
    assert page.status_code == 200
    assert (
        "Krippendorff" in html and "Fleiss" in html and 'id="quality-chart"' in html and 'id="confidence-chart"' in html
    )
    assert "Pairwise Cohen" in html and "Items in most disagreement" in html
    assert html.count("/review/") >= 3


def test_a_page_without_any_consolidation_says_how_to_get_one(cast):
    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/reports/")

    assert b"No consolidation yet" in page.content and b"Consolidate now" in page.content


def test_consolidate_now_queues_a_run(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(cast.reviewer).post(f"/projects/{cast.project.pk}/consolidate/", HTTP_HX_REQUEST="true")

    assert b"Consolidating" in response.content and b'hx-trigger="every 2s"' in response.content
    assert ConsolidationRun.objects.get().state == "queued"


def test_a_reviewer_sets_the_final_answer(cast, consolidated):
    item = ItemConsensus.objects.filter(project=consolidated).order_by("confidence").first().item
    sports = consolidated.labels.get(name="Sports")

    page = client_for(cast.reviewer).get(f"/projects/{consolidated.pk}/review/{item.pk}/")
    saved = client_for(cast.reviewer).post(
        f"/projects/{consolidated.pk}/review/{item.pk}/", {"label": sports.pk, "note": "headline is about the match"}
    )

    assert page.status_code == 200 and b"Use this" in page.content
    assert saved.status_code == 302
    consensus = ItemConsensus.objects.get(item=item)
    assert consensus.parts.label_id == sports.pk and consensus.reviewed_by == cast.reviewer
    assert consensus.review_note == "headline is about the match"


def test_a_reviewer_takes_one_annotators_answer(cast, consolidated):
    consensus = ItemConsensus.objects.filter(project=consolidated).order_by("confidence").first()
    theirs = consensus.item.annotations.get(annotator=cast.other_annotator)

    client_for(cast.reviewer).post(
        f"/projects/{consolidated.pk}/review/{consensus.item_id}/", {"annotation": theirs.pk}
    )

    consensus.refresh_from_db()
    assert consensus.method == "reviewer" and "other_annotator" in consensus.review_note


def test_reviewers_unblock_from_the_report(cast, consolidated):
    membership = Membership.objects.get(project=consolidated, user=cast.annotator)
    membership_block(membership=membership, reason="Gold accuracy 40%")

    client_for(cast.reviewer).post(f"/projects/{consolidated.pk}/members/{membership.pk}/unblock/")

    membership.refresh_from_db()
    assert not membership.is_blocked and membership.unblocked_at is not None


def test_report_api(cast, consolidated):
    api = api_for(cast.reviewer)

    agreement = api.get(f"/api/projects/{consolidated.pk}/reports/agreement/").json()
    annotators = api.get(f"/api/projects/{consolidated.pk}/reports/annotators/").json()
    disagreements = api.get(f"/api/projects/{consolidated.pk}/consensus/", {"disagreement": "true"}).json()

    assert agreement["run"]["state"] == "succeeded" and agreement["report"]["percent"] == pytest.approx(0.5)
    assert sum(agreement["confidence_histogram"]) == 6
    assert {row["username"] for row in annotators} == {"annotator", "other_annotator"}
    assert (
        disagreements["count"] == 6
        and disagreements["results"][0]["confidence"] <= disagreements["results"][-1]["confidence"]
    )


def test_override_api_validates_and_stores(cast, consolidated):
    item = ItemConsensus.objects.filter(project=consolidated).first().item
    api = api_for(cast.reviewer)

    bad = api.put(f"/api/projects/{consolidated.pk}/items/{item.pk}/consensus/", {"value": "Weather"}, format="json")
    good = api.put(f"/api/projects/{consolidated.pk}/items/{item.pk}/consensus/", {"value": "Business"}, format="json")

    assert bad.status_code == 400
    assert good.status_code == 200 and good.json()["value"] == "Business" and good.json()["reviewed_by"] == "reviewer"


def test_consolidation_api_queues_and_reads_runs(cast, django_capture_on_commit_callbacks):
    api = api_for(cast.manager)

    with django_capture_on_commit_callbacks(execute=False):
        queued = api.post(f"/api/projects/{cast.project.pk}/consolidations/", {"method": "wawa"}, format="json")

    assert queued.status_code == 202 and queued.json()["requested_method"] == "wawa"
    assert api.get(f"/api/projects/{cast.project.pk}/consolidations/{queued.json()['id']}/").json()["state"] == "queued"


def test_exports_carry_the_consensus(cast, consolidated):
    import json

    from apps.annotation.exports import export_stream

    rows = [json.loads(line) for line in "".join(export_stream(project=consolidated, fmt="jsonl")).splitlines()]
    hf = [json.loads(line) for line in "".join(export_stream(project=consolidated, fmt="hf")).splitlines()]

    assert all(row["consensus"]["value"] in ("World", "Sports") for row in rows)
    assert all(row["label"] is not None and row["confidence"] is not None for row in hf)
