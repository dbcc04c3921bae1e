"""The completion page (/projects/<id>/done/): a person who joined through a link sees the
link's completion code once they reached their limit, when nothing is left for them, or
when they say they are leaving; the workspace links to it for them only."""

import uuid

import pytest
from django.urls import reverse

from apps.annotation.models import Assignment, AssignmentState
from apps.annotation.services import annotation_submit, task_next_for_annotator
from apps.projects import services as project_services
from apps.projects.models import Project
from apps.projects.services import project_update
from tests.factories import ItemFactory, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 1, "max_items_per_annotator": 2})
    for n in range(5):
        ItemFactory(project=cast.project, text=f"Story {n}")
    return Project.objects.get(pk=cast.project.pk)


def joined_through(project, cast, param: str = ""):
    link = project_services.join_link_create(project=project, by=cast.manager, worker_id_param=param)
    user = UserFactory(username="crowd")
    project_services.join_link_use(link=link, user=user)
    return link, user


def label(project, user, times: int) -> None:
    for _ in range(times):
        task = task_next_for_annotator(project=project, annotator=user)
        annotation_submit(
            project=project, annotator=user, assignment_id=task.assignment.pk, value="World", submission_id=uuid.uuid4()
        )


def done_url(project) -> str:
    return reverse("annotation:done", args=[project.pk])


def test_at_the_limit_the_code_is_shown(cast, project):
    link, user = joined_through(project, cast)
    label(project, user, 2)

    body = client_for(user).get(done_url(project)).content.decode()

    assert link.completion_code in body and "You labelled <strong>2</strong> items of at most 2" in body


def test_before_the_limit_leaving_shows_the_code_and_changes_nothing(cast, project):
    link, user = joined_through(project, cast)
    label(project, user, 1)
    held = task_next_for_annotator(project=project, annotator=user).assignment
    browser = client_for(user)

    asked = browser.get(done_url(project)).content.decode()
    leaving = browser.post(done_url(project)).content.decode()

    assert link.completion_code not in asked and "I am finished: show my code" in asked
    assert link.completion_code in leaving
    assert Assignment.objects.get(pk=held.pk).state == AssignmentState.LEASED


def test_when_nothing_is_left_the_code_is_shown(cast, project):
    project_update(project=project, data={"max_items_per_annotator": None})
    project = Project.objects.get(pk=project.pk)
    link, user = joined_through(project, cast)
    label(project, user, 5)

    body = client_for(user).get(done_url(project)).content.decode()

    assert link.completion_code in body


def test_a_prolific_worker_is_offered_the_way_back_with_the_code(cast, project):
    link, user = joined_through(project, cast, param="PROLIFIC_PID")
    label(project, user, 2)

    body = client_for(user).get(done_url(project)).content.decode()

    assert f"https://app.prolific.com/submissions/complete?cc={link.completion_code}" in body


def test_a_member_who_joined_without_a_link_has_no_code(cast, project):
    link = project_services.join_link_create(project=project, by=cast.manager)
    label(project, cast.annotator, 2)

    response = client_for(cast.annotator).post(done_url(project))

    assert response.status_code == 200
    assert link.completion_code not in response.content.decode()
    assert "no completion code" in response.content.decode()


def test_the_workspace_links_to_the_page_for_link_members_only(cast, project):
    _, user = joined_through(project, cast)

    theirs = client_for(user).get(reverse("annotation:workspace", args=[project.pk])).content.decode()
    others = client_for(cast.annotator).get(reverse("annotation:workspace", args=[project.pk])).content.decode()

    assert "Finished? Get your completion code" in theirs and done_url(project) in theirs
    assert done_url(project) not in others


def test_at_the_limit_the_workspace_says_so_and_offers_the_code(cast, project):
    _, user = joined_through(project, cast)
    label(project, user, 2)

    body = client_for(user).get(reverse("annotation:workspace", args=[project.pk])).content.decode()

    assert "as many items as one person may" in body and "Get your completion code" in body
