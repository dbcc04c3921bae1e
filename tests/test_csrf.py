"""CSRF for every session-authenticated write: every URL pattern of the site (pages, API,
admin, whatever is added later), sent POST, PUT, PATCH and DELETE by a signed-in superuser
who manages the project, with the browser's session and no CSRF token, answers 403 and
changes nothing. A view that is exempt from CSRF must be listed below with its reason."""

import re
import uuid

import pytest
from django.apps import apps
from django.core import serializers
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.views import APIView

from apps.annotation.models import Assignment
from tests.projects.test_permissions import url_kwargs, world  # noqa: F401  (the fixture)

WRITES = ("post", "put", "patch", "delete")

# Routes that take writes without a CSRF token, and why that is safe.
CSRF_EXEMPT = {
    "csp-report/": "browsers post Content-Security-Policy reports without a token or cookie; it only logs them",
}

CONVERTER = re.compile(r"(?<!\?P)<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
REGEX_GROUP = re.compile(r"\(\?P<\w+>(?P<body>[^)]*)\)")


def _patterns(resolver=None, prefix="", namespace=""):
    """(route, name, pattern) for every URL pattern, named or not, with its full route."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _patterns(entry, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name or ''}", entry


def _path_for(cast, route: str, name: str) -> str:
    """A concrete path for a route, with the ids of real objects where the route names them."""
    known = url_kwargs(cast, name) if "<int:project_id>" in route else {}
    others = {
        "object_id": str(cast.annotator.pk),
        "id": str(cast.annotator.pk),
        "content_type_id": "1",
    }

    def value(match: re.Match) -> str:
        key = match.group("name")
        return str(known.get(key, others.get(key, "1")))

    return "/" + REGEX_GROUP.sub(_sample, CONVERTER.sub(value, route)).replace("^", "").replace("$", "")


def _sample(match: re.Match) -> str:
    """A value for a regular expression's group: the first of its alternatives, or any
    path for ``.*`` (the admin's app index and catch-all are the only such patterns)."""
    body = match.group("body")
    if body == ".*":
        return "no-such-page/"
    assert re.fullmatch(r"\w+(\|\w+)*", body), f"teach _sample a value for ({body})"
    return body.split("|")[0]


def _is_drf(callback) -> bool:
    view = getattr(callback, "cls", None)
    return isinstance(view, type) and issubclass(view, APIView)


def _database():
    """Every row of every table, to compare before and after."""
    return {
        model._meta.label: serializers.serialize("json", model._default_manager.order_by("pk"))
        for model in apps.get_models()
        if not model._meta.proxy
    }


def _counts():
    return {model._meta.label: model._default_manager.count() for model in apps.get_models() if not model._meta.proxy}


@pytest.fixture
def browser_of_superuser(world):  # noqa: F811  (the fixture imported above)
    world.manager.is_staff = world.manager.is_superuser = True
    world.manager.save(update_fields=["is_staff", "is_superuser"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.manager)
    return client


def test_every_write_without_a_csrf_token_is_refused_and_changes_nothing(world, browser_of_superuser):  # noqa: F811
    client = browser_of_superuser
    # Paths first: finding ids for them makes a few rows (a run, a model version).
    targets = [(route, _path_for(world, route, name), pattern) for route, name, pattern in _patterns()]
    before, before_counts = _database(), _counts()
    refused_wrongly = []
    checked = 0
    for route, path, pattern in targets:
        assert resolve(path).func == pattern.callback, f"{path} does not lead to {route}"
        if route in CSRF_EXEMPT:
            continue
        if getattr(pattern.callback, "csrf_exempt", False):
            # DRF's views are exempt from the middleware and check the token themselves
            # for session users (SessionAuthentication); any other exempt view must be listed.
            assert _is_drf(pattern.callback), f"{route} is exempt from CSRF: list it in CSRF_EXEMPT with a reason"
        for method in WRITES:
            response = getattr(client, method)(path, {"label": "1", "name": "x"})
            checked += 1
            if response.status_code != 403:
                refused_wrongly.append((method.upper(), path, response.status_code))
        after = _counts()
        changed = [table for table in before_counts if before_counts[table] != after[table]]
        assert not changed, f"{path} changed {changed} without a CSRF token"

    assert not refused_wrongly, refused_wrongly
    after = _database()  # row by row, beyond the counts checked after each route
    assert [table for table in before if before[table] != after[table]] == []
    assert checked > 4 * 100  # every pattern of the site, not a handful


def test_the_same_browser_with_its_token_gets_through(world, browser_of_superuser):  # noqa: F811
    """The refusals above come from the missing token, not from the client or the user."""
    client = browser_of_superuser
    project = world.project
    client.get(f"/projects/{project.pk}/annotate/")
    token = client.cookies["csrftoken"].value
    lease = Assignment.objects.filter(project=project, annotator=world.manager, state="leased").first()
    body = {"assignment": lease.pk, "submission_id": str(uuid.uuid4()), "label": world.labels["World"].pk}

    without = client.post(f"/projects/{project.pk}/annotate/submit/", body)
    page = client.post(f"/projects/{project.pk}/annotate/submit/", body, HTTP_X_CSRFTOKEN=token)
    api = client.patch(
        f"/api/projects/{project.pk}/",
        {"instructions": "Be kind."},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )

    assert without.status_code == 403
    assert page.status_code == 302
    assert Assignment.objects.get(pk=lease.pk).state == "submitted"
    assert api.status_code == 200
    project.refresh_from_db()
    assert project.instructions == "Be kind."
