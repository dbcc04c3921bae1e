"""Consolidation methods go by plain names (the technical name beside), and each figure on the
reports page says when it was computed."""

import re
import uuid

import pytest
from django.urls import reverse

from apps.annotation.consensus import consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import ConsolidationRun
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.learning.models import SourceEstimate, SourceKind
from apps.projects.models import ConsolidationMethod, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import client_for


@pytest.fixture
def consolidated(cast):
    project_update(
        project=cast.project,
        data={"overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000, "consolidation_method": "dawid_skene"},
    )
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


def test_the_settings_page_offers_plain_names_and_stores_the_same_values(cast):
    client = client_for(cast.manager)
    page = client.get(reverse("projects:settings", args=[cast.project.pk])).content.decode()

    options = dict(re.findall(r'<option value="([a-z_]+)"[^>]*>([^<]+)</option>', page))
    assert options["dawid_skene"] == "Weighted by learned skill (Dawid-Skene)"
    assert options["majority_vote"] == "Most common answer (majority vote)"
    assert {value for value in ConsolidationMethod.values} <= set(options)


def test_the_reports_page_names_the_method_plainly_and_says_when_each_figure_was_computed(cast, consolidated):
    run = ConsolidationRun.objects.get(project=consolidated)

    page = client_for(cast.reviewer).get(reverse("annotation:reports", args=[consolidated.pk])).content.decode()

    assert run.method == "dawid_skene" and "Weighted by learned skill (Dawid-Skene)" in page
    stamp = f'<time class="computed" datetime="{run.finished_at.isoformat()}" title="'
    # The four figures, the annotator chart, the heatmap, the annotators table and the status line.
    assert page.count(stamp) >= 8
    assert re.search(r">computed (now|[^<]+ ago)</time>", page)
    assert "as the page loaded" in page  # the confidence chart counts live consensus


def test_the_sources_card_says_when_its_estimates_were_computed(cast):
    estimate = SourceEstimate.objects.create(
        project=cast.project, kind=SourceKind.ANNOTATOR, key=str(cast.annotator.pk), title="annotator", accuracy=0.9
    )

    fragment = (
        client_for(cast.reviewer)
        .get(reverse("learning:sources", args=[cast.project.pk]), HTTP_HX_REQUEST="true")
        .content.decode()
    )

    assert f'<time class="computed" datetime="{estimate.computed_at.isoformat()}"' in fragment


def test_a_source_card_without_estimates_names_no_time(cast):
    fragment = (
        client_for(cast.reviewer)
        .get(reverse("learning:sources", args=[cast.project.pk]), HTTP_HX_REQUEST="true")
        .content.decode()
    )

    assert "No estimates yet" in fragment and "<time" not in fragment
