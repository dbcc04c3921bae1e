"""The standard cast: a project with its manager, a reviewer, an annotator, another
annotator, and an outsider who belongs to a different project."""

from dataclasses import dataclass
from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from apps.projects.models import Label, Project, Role, TaskType
from apps.projects.services import project_create

from .factories import MembershipFactory, UserFactory


@dataclass
class Cast:
    project: Project
    labels: dict[str, Label]
    manager: Any
    reviewer: Any
    annotator: Any
    other_annotator: Any
    outsider: Any
    other_project: Project

    def member(self, role: str) -> Any:
        return {
            "manager": self.manager,
            "reviewer": self.reviewer,
            "annotator": self.annotator,
            "outsider": self.outsider,
        }[role]


def make_cast(
    task_type: str = TaskType.SINGLE_LABEL, label_names: tuple[str, ...] = ("World", "Sports", "Business", "Science")
) -> Cast:
    manager = UserFactory(username="manager")
    project = project_create(user=manager, name="News", task_type=task_type, labels=[{"name": n} for n in label_names])
    reviewer = UserFactory(username="reviewer")
    annotator = UserFactory(username="annotator")
    other_annotator = UserFactory(username="other_annotator")
    outsider = UserFactory(username="outsider")
    MembershipFactory(project=project, user=reviewer, role=Role.REVIEWER)
    MembershipFactory(project=project, user=annotator, role=Role.ANNOTATOR)
    MembershipFactory(project=project, user=other_annotator, role=Role.ANNOTATOR)
    other_project = project_create(user=outsider, name="Elsewhere", labels=[{"name": "Yes"}, {"name": "No"}])
    return Cast(
        project=project,
        labels={label.name: label for label in project.labels.all()},
        manager=manager,
        reviewer=reviewer,
        annotator=annotator,
        other_annotator=other_annotator,
        outsider=outsider,
        other_project=other_project,
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
