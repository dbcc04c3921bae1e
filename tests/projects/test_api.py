"""The REST API, end to end: responses and what they leave in the database."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.projects.models import Item, Label, Membership, Project, Role
from tests.factories import ItemFactory, UserFactory
from tests.helpers import api_for


def test_projects_list_shows_only_my_projects_with_my_role(cast):
    response = api_for(cast.annotator).get("/api/projects/")

    assert response.status_code == 200
    assert [(p["name"], p["your_role"]) for p in response.json()["results"]] == [("News", "annotator")]
    assert [label["name"] for label in response.json()["results"][0]["labels"]] == [
        "World", "Sports", "Business", "Science",
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_user_with_the_permission_creates_a_project_with_labels():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="add_project"))

    response = api_for(user).post(
        "/api/projects/",
        {
            "name": "Intents",
            "task_type": "multi_label",
            "overlap": 2,
            "labels": [{"name": "Buy"}, {"name": "Sell", "key": "s"}],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    project = Project.objects.get(pk=response.json()["id"])
    assert (project.task_type, project.overlap) == ("multi_label", 2)
    assert list(project.labels.values_list("name", "key")) == [("Buy", "1"), ("Sell", "s")]
    assert Membership.objects.get(project=project).user == user
    assert response.json()["your_role"] == "manager"


@pytest.mark.django_db
def test_a_user_without_the_permission_cannot_create_projects():
    response = api_for(UserFactory()).post("/api/projects/", {"name": "Nope"}, format="json")

    assert response.status_code == 403
    assert not Project.objects.exists()


def test_manager_updates_settings_and_bad_values_change_nothing(cast):
    api = api_for(cast.manager)

    ok = api.patch(f"/api/projects/{cast.project.pk}/", {"overlap": 5, "instructions": "**Be kind**"}, format="json")
    bad = api.patch(f"/api/projects/{cast.project.pk}/", {"overlap": 0, "name": "Changed"}, format="json")

    assert ok.status_code == 200 and ok.json()["instructions_html"] == "<p><strong>Be kind</strong></p>"
    assert bad.status_code == 400 and "overlap" in bad.json()
    cast.project.refresh_from_db()
    assert (cast.project.overlap, cast.project.name) == (5, "News")


def test_instructions_are_sanitised(cast):
    api_for(cast.manager).patch(
        f"/api/projects/{cast.project.pk}/",
        {"instructions": "<script>alert(1)</script>[x](javascript:alert(2)) <b onclick='x()'>b</b>"},
        format="json",
    )

    html = api_for(cast.annotator).get(f"/api/projects/{cast.project.pk}/").json()["instructions_html"]
    assert "<script" not in html and "javascript:" not in html and "onclick" not in html


def test_label_lifecycle_through_the_api(cast):
    api = api_for(cast.manager)
    base = f"/api/projects/{cast.project.pk}/labels/"

    created = api.post(base, {"name": "Health", "color": "#00aa00", "key": "h"}, format="json")
    label_id = created.json()["id"]
    renamed = api.patch(f"{base}{label_id}/", {"name": "Medicine"}, format="json")
    clash = api.patch(f"{base}{label_id}/", {"key": "1"}, format="json")
    deleted = api.delete(f"{base}{label_id}/")

    assert created.status_code == 201 and created.json()["key"] == "h"
    assert renamed.status_code == 200 and renamed.json()["name"] == "Medicine"
    assert clash.status_code == 400 and "already uses that key" in json.dumps(clash.json())
    assert deleted.status_code == 204
    assert not Label.objects.filter(pk=label_id).exists()


def test_deleting_a_used_label_is_refused_with_a_message(cast):
    from apps.projects.models import GoldLabel

    GoldLabel.objects.create(item=ItemFactory(project=cast.project, is_gold=True), label=cast.labels["World"])

    response = api_for(cast.manager).delete(f"/api/projects/{cast.project.pk}/labels/{cast.labels['World'].pk}/")

    assert response.status_code == 400
    assert "used by 1 gold item" in json.dumps(response.json())
    assert Label.objects.filter(pk=cast.labels["World"].pk).exists()


def test_labels_reorder(cast):
    ids = [label.pk for label in cast.project.labels.all()]

    response = api_for(cast.manager).post(
        f"/api/projects/{cast.project.pk}/labels/reorder/", {"label_ids": ids[::-1]}, format="json"
    )

    assert response.status_code == 200
    assert [label["id"] for label in response.json()] == ids[::-1]


def colleague_of(manager, username):
    """An account that shares a project (another one) with ``manager``: one they may add."""
    user = UserFactory(username=username)
    second = Project.objects.create(name=f"With {username}", created_by=manager)
    Membership.objects.create(project=second, user=manager, role=Role.MANAGER)
    Membership.objects.create(project=second, user=user, role=Role.ANNOTATOR)
    return user


def test_membership_management(cast):
    api = api_for(cast.manager)
    colleague_of(cast.manager, "newbie")
    base = f"/api/projects/{cast.project.pk}/members/"

    added = api.post(base, {"user": "newbie", "role": "reviewer"}, format="json")
    promoted = api.patch(f"{base}{added.json()['id']}/", {"role": "manager"}, format="json")
    unknown = api.post(base, {"user": "nobody", "role": "annotator"}, format="json")
    removed = api.delete(f"{base}{added.json()['id']}/")

    assert added.status_code == 201 and promoted.json()["role"] == "manager"
    assert unknown.status_code == 400 and "No one in your projects" in json.dumps(unknown.json())
    assert removed.status_code == 204
    assert not Membership.objects.filter(project=cast.project, user__username="newbie").exists()


def test_adding_a_member_does_not_tell_whether_a_stranger_has_an_account(cast):
    UserFactory(username="stranger", email="stranger@example.com")
    api = api_for(cast.manager)
    base = f"/api/projects/{cast.project.pk}/members/"

    stranger = api.post(base, {"user": "stranger", "role": "annotator"}, format="json")
    ghost = api.post(base, {"user": "ghost", "role": "annotator"}, format="json")

    assert stranger.status_code == ghost.status_code == 400
    assert json.dumps(stranger.json()).replace("stranger", "ghost") == json.dumps(ghost.json())
    assert not Membership.objects.filter(project=cast.project, user__username="stranger").exists()


def test_items_list_filters_and_paginates(cast):
    for n in range(60):
        ItemFactory(project=cast.project, text=f"Story {n} about {'rain' if n % 2 else 'sun'}", is_gold=n < 3)

    api = api_for(cast.reviewer)
    page = api.get(f"/api/projects/{cast.project.pk}/items/", {"page_size": 25})
    rain = api.get(f"/api/projects/{cast.project.pk}/items/", {"q": "RAIN"})
    gold = api.get(f"/api/projects/{cast.project.pk}/items/", {"gold": "yes"})

    assert page.json()["count"] == 60 and len(page.json()["results"]) == 25 and page.json()["next"]
    assert rain.json()["count"] == 30
    assert gold.json()["count"] == 3


def test_import_small_file_answers_with_the_result(cast):
    response = api_for(cast.manager).post(
        f"/api/projects/{cast.project.pk}/imports/",
        {"file": SimpleUploadedFile("a.csv", b"text,gold\nGoal!,Sports\nRates up,\n")},
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["rows_imported"] == 2 and response.json()["progress"]["percent"] == 100
    assert Item.objects.filter(project=cast.project).count() == 2


def test_import_bad_file_answers_400_with_every_row_problem(cast):
    response = api_for(cast.manager).post(
        f"/api/projects/{cast.project.pk}/imports/",
        {"file": SimpleUploadedFile("a.csv", b"text,gold\nGoal!,Football\n,\n  ,Sports\n")},
        format="multipart",
    )

    assert response.status_code == 400
    assert [e["row"] for e in response.json()["errors"]] == [2, 4]
    assert not Item.objects.filter(project=cast.project).exists()


def test_token_authentication(cast):
    token = Token.objects.create(user=cast.manager)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert client.get(f"/api/projects/{cast.project.pk}/").status_code == 200


def test_obtaining_a_token_with_username_and_password(cast):
    response = APIClient().post("/api/auth/token/", {"username": "manager", "password": "pw"}, format="json")

    assert response.status_code == 200
    assert Token.objects.get(user=cast.manager).key == response.json()["token"]


@pytest.mark.django_db
def test_openapi_schema_and_docs_are_served():
    client = APIClient()
    client.force_authenticate(UserFactory())

    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/projects/{project_id}/imports/" in paths and "/api/projects/{project_id}/export/" in paths
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


def test_memberships_of_other_roles_are_hidden_from_non_managers(cast):
    assert api_for(cast.annotator).get(f"/api/projects/{cast.project.pk}/members/").status_code == 403
    assert Membership.objects.get(project=cast.project, user=cast.annotator).role == Role.ANNOTATOR
