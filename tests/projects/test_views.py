"""HTML pages: what a manager, reviewer and annotator see and change."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.projects.models import ImportJob, Item, Membership, Project, Role
from tests.factories import ItemFactory, UserFactory
from tests.helpers import client_for

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db
def test_login_page_and_redirect_for_anonymous_visitors(client):
    assert client.get("/accounts/login/").status_code == 200
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_home_lists_my_projects_only(cast):
    response = client_for(cast.annotator).get("/")

    assert response.status_code == 200
    assert b"News" in response.content and b"Elsewhere" not in response.content
    assert b"New project" not in response.content


@pytest.mark.django_db
def test_create_project_page_creates_project_with_labels():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="add_project"))

    response = client_for(user).post(
        "/projects/new/",
        {
            "name": "Support tickets",
            "task_type": "single_label",
            "overlap": 3,
            "price_per_annotation": "0.10",
            "currency": "EUR",
            "gold_ratio": "0.1",
            "quality_threshold": "0.8",
            "label_names": "Billing\nBug\n\nFeature request\n",
        },
    )

    project = Project.objects.get(name="Support tickets")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/"
    assert list(project.labels.values_list("name", flat=True)) == ["Billing", "Bug", "Feature request"]
    assert Membership.objects.get(project=project).role == Role.MANAGER


@pytest.mark.django_db
def test_create_project_form_shows_errors_and_creates_nothing():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="add_project"))

    response = client_for(user).post(
        "/projects/new/", {"name": "", "task_type": "single_label", "overlap": 0, "label_names": "A\na"}
    )

    assert response.status_code == 200
    assert b"Each label once" in response.content
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_users_without_the_permission_cannot_open_the_create_page():
    assert client_for(UserFactory()).get("/projects/new/").status_code == 403


def test_overview_shows_counts_to_managers_and_instructions_to_annotators(cast):
    ItemFactory(project=cast.project)
    cast.project.instructions = "Pick **one** topic."
    cast.project.save()

    manager_page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/")
    annotator_page = client_for(cast.annotator).get(f"/projects/{cast.project.pk}/")

    assert b"Items by state" in manager_page.content and b'id="state-chart"' in manager_page.content
    assert b"<strong>one</strong>" in annotator_page.content
    assert b"Items by state" not in annotator_page.content


def test_settings_page_saves_and_reports_errors(cast):
    client = client_for(cast.manager)
    data = {
        "name": "News v2", "instructions": "", "task_type": "single_label", "overlap": 4,
        "budget_max_annotations": "500", "price_per_annotation": "0.05", "currency": "USD", "gold_ratio": "0.1",
        "lease_minutes": 15, "consolidate_every": 50, "confidence_threshold": "0.6", "max_overlap": "5",
        "quality_min_gold": 10, "blocked_answers": "exclude",
        "quality_threshold": "0.7", "consolidation_method": "dawid_skene",
        "max_items_per_annotator": "", "qualification_size": 0, "qualification_pass_mark": "0.8",
        "qualification_attempts": 2, "training_items": 0, "suggestion_min_confidence": "0.5",
        "bonus_gold_accuracy": "", "bonus_per_answer": "0",
    }  # fmt: skip

    saved = client.post(f"/projects/{cast.project.pk}/settings/", data)
    refused = client.post(f"/projects/{cast.project.pk}/settings/", {**data, "currency": "E1R"})

    cast.project.refresh_from_db()
    assert saved.status_code == 302
    assert (cast.project.name, cast.project.overlap, cast.project.budget_max_annotations) == ("News v2", 4, 500)
    assert cast.project.consolidation_method == "dawid_skene"
    assert refused.status_code == 200 and b"three-letter" in refused.content
    assert cast.project.currency == "USD"


def test_deleting_a_project_needs_its_name(cast):
    client = client_for(cast.manager)

    client.post(f"/projects/{cast.project.pk}/delete/", {"confirm_name": "wrong"})
    assert Project.objects.filter(pk=cast.project.pk).exists()

    response = client.post(f"/projects/{cast.project.pk}/delete/", {"confirm_name": "News"})
    assert response.status_code == 302 and not Project.objects.filter(pk=cast.project.pk).exists()


def test_members_page_does_not_tell_whether_a_stranger_has_an_account(cast):
    UserFactory(username="stranger")
    client = client_for(cast.manager)
    url = f"/projects/{cast.project.pk}/members/"

    stranger = client.post(url, {"user": "stranger", "role": "annotator"}, **HTMX)
    ghost = client.post(url, {"user": "ghost", "role": "annotator"}, **HTMX)

    def errors(response):
        return re.findall(r'<ul class="errorlist[^"]*">.*?</ul>', response.content.decode(), re.S)

    assert "No one in your projects has the username or e-mail “stranger”" in "".join(errors(stranger))
    assert [e.replace("stranger", "ghost") for e in errors(stranger)] == errors(ghost)
    assert stranger.status_code == ghost.status_code
    assert not Membership.objects.filter(project=cast.project, user__username="stranger").exists()


def test_members_page_adds_and_changes_roles(cast):
    newbie = UserFactory(username="newbie")
    second = Project.objects.create(name="Second", created_by=cast.manager)  # newbie works with the manager
    Membership.objects.create(project=second, user=cast.manager, role=Role.MANAGER)
    Membership.objects.create(project=second, user=newbie, role=Role.ANNOTATOR)
    client = client_for(cast.manager)

    client.post(f"/projects/{cast.project.pk}/members/", {"user": "newbie", "role": "annotator"}, **HTMX)
    membership = Membership.objects.get(project=cast.project, user__username="newbie")
    client.post(f"/projects/{cast.project.pk}/members/{membership.pk}/", {"role": "reviewer"}, **HTMX)

    membership.refresh_from_db()
    assert membership.role == Role.REVIEWER


def test_items_page_searches_filters_and_paginates(cast):
    for n in range(120):
        ItemFactory(project=cast.project, text=f"{'Storm' if n < 7 else 'Calm'} report {n}", is_gold=n % 40 == 0)
    client = client_for(cast.reviewer)

    first = client.get(f"/projects/{cast.project.pk}/items/")
    third = client.get(f"/projects/{cast.project.pk}/items/", {"page": 3})
    storm = client.get(f"/projects/{cast.project.pk}/items/", {"q": "storm"}, **HTMX)
    gold = client.get(f"/projects/{cast.project.pk}/items/", {"gold": "yes"})

    assert b"Items 1\xe2\x80\x9350 of 120" in first.content
    assert b"Items 101\xe2\x80\x93120 of 120" in third.content
    assert storm.content.lstrip().startswith(b'<div id="item-table">') and b"of 7<" in storm.content
    assert b"of 3<" in gold.content


def test_search_counts_stop_at_the_cap(cast, monkeypatch):
    from apps.projects import views

    monkeypatch.setattr(views, "SEARCH_COUNT_CAP", 20)
    for n in range(30):
        ItemFactory(project=cast.project, text=f"Storm {n}")

    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/items/", {"q": "storm"})

    assert b"of 20+ (refine the search" in page.content


def test_items_page_query_count_does_not_grow_with_the_page(cast, django_assert_max_num_queries):
    for _ in range(200):
        ItemFactory(project=cast.project)
    client = client_for(cast.manager)
    client.get(f"/projects/{cast.project.pk}/items/")  # warm the session

    with django_assert_max_num_queries(12):
        client.get(f"/projects/{cast.project.pk}/items/", {"page": 2})


def test_item_detail_shows_gold_spans(spans_cast):
    from apps.projects.models import GoldLabel

    item = ItemFactory(project=spans_cast.project, text="Ada Lovelace wrote notes", is_gold=True)
    GoldLabel.objects.create(item=item, label=spans_cast.labels["Person"], start=0, end=12)

    response = client_for(spans_cast.manager).get(f"/projects/{spans_cast.project.pk}/items/{item.pk}/")

    assert response.status_code == 200
    assert b'class="span-mark"' in response.content and b"Ada Lovelace<sup>Person</sup>" in response.content


def test_import_page_uploads_and_redirects_to_the_job(cast):
    response = client_for(cast.manager).post(
        f"/projects/{cast.project.pk}/import/",
        {
            "file": SimpleUploadedFile("items.csv", b"text\nOne\nTwo\n"),
            "format": "",
            "text_field": "text",
            "id_field": "id",
            "gold_field": "gold",
        },
    )

    job = ImportJob.objects.get(project=cast.project)
    assert response.status_code == 302 and response["Location"] == f"/projects/{cast.project.pk}/imports/{job.pk}/"
    assert job.state == "succeeded" and Item.objects.filter(project=cast.project).count() == 2
    page = client_for(cast.manager).get(response["Location"])
    assert b"2 items imported" in page.content and b"hx-trigger" not in page.content


def test_import_job_page_lists_row_problems(cast):
    client = client_for(cast.manager)
    client.post(
        f"/projects/{cast.project.pk}/import/",
        {
            "file": SimpleUploadedFile("bad.csv", b"text,gold\nOne,Nope\n"),
            "text_field": "text",
            "id_field": "id",
            "gold_field": "gold",
        },
    )
    job = ImportJob.objects.get(project=cast.project)

    page = client.get(f"/projects/{cast.project.pk}/imports/{job.pk}/")

    assert b"Rows to fix" in page.content and b"Unknown label" in page.content


def test_a_running_import_page_polls_for_progress(cast):
    job = ImportJob.objects.create(
        project=cast.project, created_by=cast.manager, original_name="big.csv", format="csv", state="running"
    )

    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/imports/{job.pk}/", **HTMX)

    assert b'hx-trigger="every 1s"' in page.content and b'role="progressbar"' in page.content


def test_text_search_follows_inserts_edits_and_deletes_and_takes_wildcards_literally(cast):
    """On PostgreSQL the search reads a side table kept in step by triggers (migration
    0005); on SQLite it reads the items. Both must answer the same."""
    from apps.projects.selectors import items_list

    Item.objects.bulk_create(Item(project=cast.project, text=f"Flood warning {n}") for n in range(3))
    single = ItemFactory(project=cast.project, text="Heatwave: 100% sure, a_b test")
    gone = ItemFactory(project=cast.project, text="Flood season over")

    def found(query):
        return sorted(items_list(project=cast.project, query=query).values_list("text", flat=True))

    assert len(found("flood")) == 4
    gone.delete()
    Item.objects.filter(pk=single.pk).update(text="Cold snap: 100% sure, a_b test")

    assert found("flood") == ["Flood warning 0", "Flood warning 1", "Flood warning 2"]
    assert found("heatwave") == [] and found("COLD SNAP") == ["Cold snap: 100% sure, a_b test"]
    assert found("100%") == ["Cold snap: 100% sure, a_b test"] and found("a_b") == found("100%")
    assert found("%") == found("100%") and found("a%b") == [] and found("a_") == found("100%")
