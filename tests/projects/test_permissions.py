"""The permission matrix over every project URL, HTML and API: an outsider gets 404 (the
project does not exist for them), a member without the role gets 403, a member with it
gets through. A URL added without a row here fails ``test_every_project_url_is_in_the_matrix``."""

import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.annotation.models import Annotation, AnnotationLabel, Assignment, ConsolidationRun, PracticeAnswer
from apps.learning.models import LabellingFunction, ModelVersion, RuleApplication, TrainingRun
from apps.projects.imports import items_import_start
from apps.projects.models import Item, JoinLink, Membership
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for

M, R, A = "manager", "reviewer", "annotator"
EVERYONE = {M, R, A}
SPORTS = {"name": "sports-teams", "kind": "keywords", "label": "Sports", "keywords": ["lakers"]}

# (url name, HTTP method, roles allowed)
MATRIX = [
    ("projects:overview", "get", EVERYONE),
    ("projects:settings", "get", {M}),
    ("projects:settings", "post", {M}),
    ("projects:delete", "post", {M}),
    ("projects:labels", "get", EVERYONE),
    ("projects:labels", "post", {M}),
    ("projects:labels_preview", "post", {M}),
    ("projects:members", "get", {M}),
    ("projects:members", "post", {M}),
    ("projects:member_update", "post", {M}),
    ("projects:member_remove", "post", {M}),
    ("projects:member_block", "post", {M}),
    ("projects:join_link_create", "post", {M}),
    ("projects:join_link_revoke", "post", {M}),
    ("projects:members_invite", "post", {M}),
    ("projects:items", "get", {M, R}),
    ("projects:item_detail", "get", {M, R}),
    ("projects:import", "get", {M}),
    ("projects:import", "post", {M}),
    ("projects:import_detail", "get", {M}),
    ("annotation:export", "get", {M}),
    ("annotation:export_download", "get", {M}),
    ("annotation:payments", "get", {M}),
    ("annotation:payments_csv", "get", {M}),
    ("api-project", "get", EVERYONE),
    ("api-project", "patch", {M}),
    ("api-project", "delete", {M}),
    ("api-labels", "get", EVERYONE),
    ("api-labels", "post", {M}),
    ("api-labels-reorder", "post", {M}),
    ("api-label", "get", EVERYONE),
    ("api-label", "patch", {M}),
    ("api-label", "delete", {M}),
    ("api-members", "get", {M}),
    ("api-members", "post", {M}),
    ("api-member", "patch", {M}),
    ("api-member", "delete", {M}),
    ("api-items", "get", {M, R}),
    ("api-item", "get", {M, R}),
    ("api-imports", "get", {M}),
    ("api-imports", "post", {M}),
    ("api-import", "get", {M}),
    ("api-export", "get", {M}),
    ("annotation:workspace", "get", {M, A}),
    ("annotation:done", "get", {M, A}),
    ("annotation:done", "post", {M, A}),
    ("annotation:submit", "post", {M, A}),
    ("annotation:skip", "post", {M, A}),
    ("annotation:feedback", "post", {M, A}),
    ("annotation:annotation_edit", "get", {M, A}),
    ("annotation:annotation_edit", "post", {M, A}),
    ("annotation:qualification", "get", {M, A}),
    ("annotation:qualification", "post", {M, A}),
    ("annotation:qualification_answer", "post", {M, A}),
    ("annotation:practice", "get", {M, A}),
    ("annotation:practice_answer", "post", {M, A}),
    ("annotation:practice_feedback", "get", {M, A}),
    ("api-task-next", "post", {M, A}),
    ("api-task-skip", "post", {M, A}),
    ("api-annotations", "get", {M, R}),
    ("api-annotations", "post", {M, A}),
    ("api-annotation", "patch", {M, A}),
    ("annotation:reports", "get", {M, R}),
    ("annotation:consolidate", "get", {M, R}),
    ("annotation:consolidate", "post", {M, R}),
    ("annotation:review", "get", {M, R}),
    ("annotation:review", "post", {M, R}),
    ("annotation:unblock", "post", {M, R}),
    ("api-consolidations", "get", {M, R}),
    ("api-consolidations", "post", {M, R}),
    ("api-consolidation", "get", {M, R}),
    ("api-report-agreement", "get", {M, R}),
    ("api-report-annotators", "get", {M, R}),
    ("api-consensus", "get", {M, R}),
    ("api-item-consensus", "put", {M, R}),
    ("learning:learning", "get", {M, R}),
    ("learning:learning", "post", {M}),
    ("learning:train", "post", {M}),
    ("learning:try", "get", {M, R}),
    ("learning:try", "post", {M, R}),
    ("learning:version", "post", {M}),
    ("learning:download", "get", {M}),
    ("learning:functions", "get", {M, R}),
    ("learning:functions_apply", "post", {M}),
    ("learning:functions_export", "get", {M}),
    ("learning:weak_labels_export", "get", {M}),
    ("learning:functions_import", "post", {M}),
    ("learning:function_new", "get", {M}),
    ("learning:function_new", "post", {M}),
    ("learning:function_preview", "post", {M}),
    ("learning:function_edit", "get", {M}),
    ("learning:function_edit", "post", {M}),
    ("learning:function_enable", "post", {M}),
    ("learning:function_delete", "post", {M}),
    ("learning:sources", "get", {M, R}),
    ("api-predict", "post", {M, R}),
    ("api-training-runs", "get", {M, R}),
    ("api-training-runs", "post", {M}),
    ("api-training-run", "get", {M, R}),
    ("api-versions", "get", {M, R}),
    ("api-version", "get", {M, R}),
    ("api-version", "post", {M}),
    ("api-stream", "post", {M}),
    ("api-labelling-functions", "get", {M, R}),
    ("api-labelling-functions", "put", {M}),
    ("api-labelling-function-analysis", "get", {M, R}),
    ("api-rule-application", "get", {M, R}),
    ("api-rule-application", "post", {M}),
    ("api-external-predictions", "put", {M}),
    ("api-weak-labels", "get", {M, R}),
]


def url_kwargs(cast, name: str, role: str = "manager") -> dict:
    """Ids for a URL; assignments and answers are the caller's own (others' are a 404)."""
    own = cast.member(role) if role in ("manager", "annotator") else cast.annotator
    pattern_kwargs = {
        "assignment_id": Assignment.objects.filter(project=cast.project, annotator=own).first().pk,
        "annotation_id": Annotation.objects.filter(project=cast.project, annotator=own).first().pk,
        "label_id": cast.labels["Science"].pk,
        "membership_id": Membership.objects.get(project=cast.project, user=cast.other_annotator).pk,
        "item_id": Item.objects.filter(project=cast.project).first().pk,
        "job_id": cast.project.import_jobs.first().pk,
        "run_id": _run_id(cast, name),
        "fmt": "jsonl",
        "number": ModelVersion.objects.get_or_create(
            project=cast.project, number=1, defaults={"mode": "head", "backbone": "x"}
        )[0].number,
        "kind": "folder",
        "link_id": JoinLink.objects.get_or_create(project=cast.project, name="matrix")[0].pk,
        "function_id": LabellingFunction.objects.get_or_create(
            project=cast.project, name="sports-teams", defaults={"kind": "keywords", "definition": SPORTS}
        )[0].pk,
    }
    wanted = _route_kwargs(name)
    return {"project_id": cast.project.pk, **{key: pattern_kwargs[key] for key in wanted if key != "project_id"}}


def _run_id(cast, name: str) -> int:
    if name == "api-training-run":
        return TrainingRun.objects.get_or_create(project=cast.project, state="succeeded", mode="head")[0].pk
    return ConsolidationRun.objects.get_or_create(project=cast.project, state="succeeded", requested_method="auto")[
        0
    ].pk


def _all_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _all_patterns(entry, namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{prefix}{entry.name}", entry


def _route_kwargs(name: str) -> list[str]:
    for full_name, pattern in _all_patterns():
        if full_name == name:
            return list(pattern.pattern.converters)
    raise AssertionError(f"no URL named {name}")


@pytest.fixture
def world(cast):
    for user in (cast.manager, cast.annotator):
        item = ItemFactory(project=cast.project)
        answered = Assignment.objects.create(
            project=cast.project,
            item=item,
            annotator=user,
            state="submitted",
            leased_at=timezone.now(),
            expires_at=timezone.now(),
        )
        annotation = Annotation.objects.create(
            project=cast.project, item=item, annotator=user, assignment=answered, submission_id=uuid.uuid4()
        )
        AnnotationLabel.objects.create(annotation=annotation, label=cast.labels["World"])
        Assignment.objects.create(
            project=cast.project,
            item=ItemFactory(project=cast.project, lease_count=1),
            annotator=user,
            leased_at=timezone.now(),
            expires_at=timezone.now() + timedelta(minutes=10),
        )
    first = Item.objects.filter(project=cast.project).first()
    for user in (cast.manager, cast.annotator):  # their own practice feedback (annotation:practice_feedback)
        PracticeAnswer.objects.create(project=cast.project, item=first, annotator=user, score=1.0)
    items_import_start(project=cast.project, user=cast.manager, upload=SimpleUploadedFile("a.csv", b"text\nhello\n"))
    RuleApplication.objects.create(project=cast.project, state="succeeded")  # the API's "last application"
    return cast


# Pages anyone may open, signed in or not, by design: (url name, kwargs).
PUBLIC = [
    ("projects:join", {"token": "no-such-token"}),  # a join link (docs/crowd.md); unknown: 404
]


@pytest.mark.parametrize(("name", "kwargs"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_pages_answer_anonymous_visitors_themselves(db, name, kwargs):
    from django.test import Client

    response = Client().get(reverse(name, kwargs=kwargs))

    assert response.status_code != 302 or "/accounts/login/" not in response["Location"]
    assert response.status_code in (200, 404, 410)


def test_every_project_url_is_in_the_matrix():
    scoped = {name for name, pattern in _all_patterns() if "project_id" in pattern.pattern.converters}
    assert scoped == {name for name, _, _ in MATRIX}


def _call(user, name, method, kwargs, data=None):
    url = reverse(name, kwargs=kwargs)
    client = api_for(user) if name.startswith("api-") else client_for(user)
    return getattr(client, method)(url, data or ({} if method != "get" else None))


def body_for(cast, name: str, role: str) -> dict:
    """Forms that name an assignment name the caller's own live lease."""
    if name not in ("annotation:submit", "annotation:skip", "annotation:feedback") or role not in (
        "manager",
        "annotator",
    ):
        return {}
    lease = Assignment.objects.filter(project=cast.project, annotator=cast.member(role), state="leased").first()
    return {"assignment": lease.pk, "feedback_kind": "other"}


@pytest.mark.parametrize(("name", "method", "allowed"), MATRIX, ids=[f"{m} {n}" for n, m, _ in MATRIX])
@pytest.mark.parametrize("role", ["manager", "reviewer", "annotator", "outsider"])
def test_permission_matrix(world, name, method, allowed, role):
    response = _call(world.member(role), name, method, url_kwargs(world, name, role), body_for(world, name, role))

    if role == "outsider":
        assert response.status_code == 404
    elif role in allowed:
        assert response.status_code not in (401, 403, 404), response.content[:300]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("name", "method", "allowed"), MATRIX, ids=[f"{m} {n}" for n, m, _ in MATRIX])
def test_anonymous_visitors_are_sent_to_log_in(world, name, method, allowed):
    from django.test import Client
    from rest_framework.test import APIClient

    url = reverse(name, kwargs=url_kwargs(world, name))
    client = APIClient() if name.startswith("api-") else Client()
    response = getattr(client, method)(url)

    if name.startswith("api-"):
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize(
    ("name", "kwarg"),
    [
        ("projects:item_detail", "item_id"),
        ("api-item", "item_id"),
        ("api-label", "label_id"),
        ("api-member", "membership_id"),
        ("projects:import_detail", "job_id"),
        ("api-import", "job_id"),
        ("learning:function_edit", "function_id"),
    ],
)
def test_ids_of_another_project_are_not_found_through_this_one(world, name, kwarg):
    """A manager of this project forging the id of another project's object gets 404."""
    other = world.other_project
    forged = {
        "item_id": ItemFactory(project=other).pk,
        "label_id": other.labels.first().pk,
        "membership_id": other.memberships.first().pk,
        "job_id": items_import_start(
            project=other, user=world.outsider, upload=SimpleUploadedFile("b.csv", b"text\nhi\n")
        ).pk,
        "function_id": LabellingFunction.objects.create(
            project=other, name="yes-words", kind="keywords", definition={**SPORTS, "label": "Yes"}
        ).pk,
    }[kwarg]
    kwargs = {**url_kwargs(world, name), kwarg: forged}
    method = {"projects:label_update": "post", "api-member": "patch"}.get(name, "get")

    response = _call(world.manager, name, method, kwargs)

    assert response.status_code == 404
