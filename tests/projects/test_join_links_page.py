"""The members page's join links (create, copy, revoke) and bulk invitations, as a manager
uses them: with htmx and without, and what each leaves in the database."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.projects import services
from apps.projects.models import JoinLink, Membership
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def members_url(cast) -> str:
    return reverse("projects:members", args=[cast.project.pk])


def test_the_page_lists_each_link_with_its_full_address_uses_and_state(cast):
    open_link = services.join_link_create(
        project=cast.project, by=cast.manager, name="Prolific batch 3", max_uses=50, worker_id_param="PROLIFIC_PID"
    )
    closed = services.join_link_create(project=cast.project, by=cast.manager, name="Old")
    services.join_link_revoke(link=closed)

    response = client_for(cast.manager).get(members_url(cast))

    body = response.content.decode()
    assert response.status_code == 200
    assert f"http://testserver/join/{open_link.token}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}" in body
    assert f'value="http://testserver/join/{closed.token}/"' in body
    assert "0 of 50" in body and ">open<" in body and ">revoked<" in body
    assert open_link.completion_code in body
    assert 'data-copy="join-link-' in body and "js/copy.js" in body
    assert body.count('type="submit">Revoke<') == 1  # the revoked link has no button


def test_a_manager_creates_a_link(cast):
    expires = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")

    response = client_for(cast.manager).post(
        reverse("projects:join_link_create", args=[cast.project.pk]),
        {"name": "Batch 1", "expires_at": expires, "max_uses": "30", "worker_id_param": "workerId"},
    )

    assert response.status_code == 302 and response["Location"] == members_url(cast)
    link = JoinLink.objects.get(project=cast.project)
    assert (link.name, link.max_uses, link.worker_id_param, link.role) == ("Batch 1", 30, "workerId", "annotator")
    assert link.created_by == cast.manager and link.expires_at.strftime("%Y-%m-%dT%H:%M") == expires


def test_with_htmx_the_list_comes_back_with_the_new_link(cast):
    response = client_for(cast.manager).post(
        reverse("projects:join_link_create", args=[cast.project.pk]), {"name": "Batch 2"}, **HTMX
    )

    link = JoinLink.objects.get(project=cast.project)
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="member-list">')
    assert f"/join/{link.token}/" in body and "Batch 2" in body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires_at": "2001-01-01T10:00"}, "Choose an expiry in the future"),
        ({"worker_id_param": "PROLIFIC PID"}, "Letters, digits and _"),
        ({"max_uses": "0"}, "greater than or equal to 1"),
    ],
)
def test_a_bad_link_is_refused_on_the_page(cast, fields, message):
    response = client_for(cast.manager).post(
        reverse("projects:join_link_create", args=[cast.project.pk]), fields, **HTMX
    )

    assert response.status_code == 200 and message in response.content.decode()
    assert not JoinLink.objects.exists()


def test_a_manager_revokes_a_link(cast):
    link = services.join_link_create(project=cast.project, by=cast.manager)

    response = client_for(cast.manager).post(reverse("projects:join_link_revoke", args=[cast.project.pk, link.pk]))

    assert response.status_code == 302
    assert JoinLink.objects.get(pk=link.pk).revoked_at is not None


def test_another_projects_link_cannot_be_revoked_through_this_one(cast):
    other = services.join_link_create(project=cast.other_project, by=cast.outsider)

    response = client_for(cast.manager).post(reverse("projects:join_link_revoke", args=[cast.project.pk, other.pk]))

    assert response.status_code == 404
    assert JoinLink.objects.get(pk=other.pk).revoked_at is None


def test_a_manager_invites_by_username_and_e_mail(cast, django_capture_on_commit_callbacks):
    colleague = UserFactory(username="colleague")
    shared = ProjectFactory()
    MembershipFactory(project=shared, user=cast.manager, role="manager")
    MembershipFactory(project=shared, user=colleague)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.manager).post(
            reverse("projects:members_invite", args=[cast.project.pk]),
            {"entries": "colleague\nnew@example.org, ghost"},
            **HTMX,
        )

    body = response.content.decode()
    assert "Added as annotators: colleague" in body
    assert "Invitations e-mailed to: new@example.org" in body
    assert "No one in your projects has the username ghost" in body
    assert Membership.objects.filter(project=cast.project, user=colleague, role="annotator").exists()
    invitation = JoinLink.objects.get(project=cast.project, max_uses=1)
    assert [message.to for message in mail.outbox] == [["new@example.org"]]
    assert f"http://testserver/join/{invitation.token}/" in mail.outbox[0].body
    assert "Invitation: new@example.org" in body  # the link is on the page too


def test_an_empty_invitation_is_refused(cast):
    response = client_for(cast.manager).post(
        reverse("projects:members_invite", args=[cast.project.pk]), {"entries": "  "}, **HTMX
    )

    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert mail.outbox == [] and not JoinLink.objects.exists()
