"""A reviewer works through the queue in a real browser: "Save and review the next" saves
the final answer and opens the next item in disagreement (the workspace script once
submitted the form without the button's value, so the page stayed on the same item)."""

import uuid

import pytest

from apps.annotation.models import ItemConsensus
from apps.annotation.selectors import disagreements
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects.models import Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import make_cast

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _split_project():
    cast = make_cast()
    cast.reviewer.set_password("pw")
    cast.reviewer.save()
    project_update(project=cast.project, data={"overlap": 2, "gold_ratio": 0.0, "consolidate_every": 1000})
    project = Project.objects.get(pk=cast.project.pk)
    for n in range(3):
        ItemFactory(project=project, text=f"Story {n}: the derby ended level.")
    for user, values in ((cast.annotator, ["World"] * 3), (cast.other_annotator, ["Sports"] * 3)):
        for value in values:
            task = task_next_for_annotator(project=project, annotator=user).assignment
            annotation_submit(
                project=project, annotator=user, assignment_id=task.pk, value=value, submission_id=uuid.uuid4()
            )
    return cast, project


def test_save_and_review_the_next_moves_through_the_queue(page, live_server):
    cast, project = _split_project()
    first, second, third = [c.item_id for c in disagreements(project=project)]
    log_in(page, live_server, "reviewer")

    page.goto(f"{live_server.url}/projects/{project.pk}/reports/")
    page.locator(f"a[href='/projects/{project.pk}/review/{first}/']").click()
    page.wait_for_url(f"**/review/{first}/")
    page.locator("label.choice:has-text('Sports')").click()
    page.click("button:has-text('Save and review the next')")

    page.wait_for_url(f"**/review/{second}/")
    assert ItemConsensus.objects.get(item_id=first).parts.label_id == cast.labels["Sports"].pk
    page.locator("label.choice:has-text('World')").click()
    page.click("button:has-text('Save and review the next')")
    page.wait_for_url(f"**/review/{third}/")
    assert ItemConsensus.objects.get(item_id=second).is_reviewed
    # The last one has nowhere to go: only "Save the final answer" is offered.
    assert page.locator("button:has-text('Save and review the next')").count() == 0
