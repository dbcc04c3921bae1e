"""schemathesis against the OpenAPI schema that ``/api/schema/`` serves, through Django's WSGI app,
as a manager, a reviewer and an annotator (token auth) of a small project with items, leases,
annotations, a consensus, an import, runs and a model version.

For each operation hypothesis draws requests from the schema (valid ones, and invalid ones
that the API must refuse), and every role sends each: no answer is a server error, every answer
matches the schema (status code, content type, body), and invalid input is refused with a 4xx.
Generated path ids are mapped onto the project's real ids (or the outsider's project), so the
requests reach real objects instead of stopping at a 404.

Training starts real work (Celery runs eagerly here): that operation has its own test with few
examples, on this project of a few unlabelled items, so each run embeds them and stops with
"too few labels"; nothing is stubbed.
"""

import json
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from apps.annotation.models import Annotation, Assignment, ConsolidationRun, ItemConsensus
from apps.learning.models import ModelVersion, TrainingRun
from apps.projects.models import ImportJob, Item, Label, Membership
from tests.projects.test_permissions import world  # noqa: F401  (a fixture: items, leases, answers, an import)

# Every check of schemathesis but one: "schema-valid data is accepted" cannot hold where input is
# refused for what a schema does not say (a wrong password, a label name this project lacks,
# offsets past the text): that is a 400 with a message, as docs/api.md documents.
EXCLUDED_CHECKS = [positive_data_acceptance]
ROLES = ("annotator", "reviewer", "manager")  # the manager last: its deletes end what the others read
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.fixture
def api_world(world, settings):  # noqa: F811
    # The sign-in lockout guards production; here drawn passwords would only lock the address
    # (the test settings already raise the API's rates out of reach).
    settings.AXES_ENABLED = False
    project = world.project
    item = Item.objects.filter(project=project).first()
    ItemConsensus.objects.create(
        project=project, item=item, parts=[{"start": None, "end": None, "label_id": world.labels["World"].pk}],
        confidence=0.7, method="majority_vote", is_provisional=True,
    )  # fmt: skip
    ConsolidationRun.objects.create(project=project, state="succeeded", requested_method="auto")
    TrainingRun.objects.create(project=project, state="failed", mode="head", error="Too few labels.")
    ModelVersion.objects.create(project=project, number=1, mode="head", backbone="all-minilm-l6-v2")
    world.tokens = {role: Token.objects.create(user=world.member(role)).key for role in ROLES}
    # Requests go through the real WSGI handler, whose request signals close the database
    # connection, and with it the test's transaction (on PostgreSQL); Django's test client
    # unhooks them the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield world
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _ids(world: Any) -> dict[str, list[int]]:  # noqa: F811
    project = world.project
    return {
        "project_id": [project.pk, world.other_project.pk],
        "label_id": list(Label.objects.filter(project=project).values_list("pk", flat=True)),
        "item_id": list(Item.objects.filter(project=project).values_list("pk", flat=True)),
        "assignment_id": list(Assignment.objects.filter(project=project).values_list("pk", flat=True)),
        "annotation_id": list(Annotation.objects.filter(project=project).values_list("pk", flat=True)),
        "membership_id": list(Membership.objects.filter(project=project).values_list("pk", flat=True)),
        "job_id": list(ImportJob.objects.filter(project=project).values_list("pk", flat=True)),
        "run_id": list(ConsolidationRun.objects.filter(project=project).values_list("pk", flat=True))
        + list(TrainingRun.objects.filter(project=project).values_list("pk", flat=True)),
        "number": list(ModelVersion.objects.filter(project=project).values_list("number", flat=True)),
    }


def _served_schema() -> dict[str, Any]:
    """The schema exactly as /api/schema/ builds and renders it (drf-spectacular's view uses
    the same generator and renderer; a test below compares them)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


# Built at import, as schemathesis' pytest integration needs it; Django is set up by then.
# (Its fixture-loaded schema cannot run under pytest 9.)
schema = schemathesis.openapi.from_dict(_served_schema())
schema.app = get_wsgi_application()


def test_the_schema_tested_is_the_one_served(api_world):
    response = Client().get(
        "/api/schema/",
        HTTP_ACCEPT="application/vnd.oai.openapi+json",
        HTTP_AUTHORIZATION=f"Token {api_world.tokens['annotator']}",
    )

    assert response.status_code == 200
    assert json.loads(response.content) == _served_schema()


def _aim_at_real_objects(case: Any, world: Any) -> None:  # noqa: F811
    """Valid path ids become ids of real rows, chosen by the drawn number (invalid ones stay,
    so that their refusal is checked)."""
    component = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
    if case.path_parameters is None or (component is not None and component.mode != GenerationMode.POSITIVE):
        return
    ids = _ids(world)
    for key, value in case.path_parameters.items():
        if ids.get(key) and isinstance(value, int) and not isinstance(value, bool):
            case.path_parameters[key] = ids[key][value % len(ids[key])]


def _send_as_every_role(case: Any, world: Any) -> None:  # noqa: F811
    _aim_at_real_objects(case, world)
    # The schema also offers session auth, so schemathesis draws a random session cookie;
    # beside the token it sends, that would make it take the token for generated auth.
    if case.cookies:
        case.cookies.pop("sessionid", None)
    for role in ROLES:
        case.call_and_validate(
            headers={"Authorization": f"Token {world.tokens[role]}"}, excluded_checks=EXCLUDED_CHECKS
        )


@schema.exclude(path_regex=r"/training-runs/$", method="POST").parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=HEALTH, derandomize=True)
def test_the_api_keeps_to_its_schema(case, api_world):
    _send_as_every_role(case, api_world)


@schema.include(path_regex=r"/training-runs/$", method="POST").parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=HEALTH, derandomize=True)
def test_starting_training_keeps_to_the_schema(case, api_world):
    _send_as_every_role(case, api_world)
