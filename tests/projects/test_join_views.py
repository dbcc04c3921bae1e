"""The public join page (/join/<token>/): closed and unknown links, signing up, logging in
and coming back, a signed-in person, an external platform's worker, and the limit on
sign-ups per address. Each test checks the page and what changed in the database."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from apps.projects import services
from apps.projects.models import JoinLink, Membership
from platform.settings import test as test_settings
from tests.factories import UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db

STRONG = "plum-harbour-47-lantern"


@pytest.fixture
def link(cast) -> JoinLink:
    return services.join_link_create(project=cast.project, by=cast.manager, name="Batch 1")


@pytest.fixture
def worker_link(cast) -> JoinLink:
    return services.join_link_create(project=cast.project, by=cast.manager, worker_id_param="PROLIFIC_PID")


def join_url(link: JoinLink) -> str:
    return reverse("projects:join", args=[link.token])


def sign_up(client: Client, link: JoinLink, **fields):
    data = {"username": "ada", "email": "", "password1": STRONG, "password2": STRONG, **fields}
    return client.post(join_url(link), data)


def signed_in_as(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


# --- closed and unknown links ----------------------------------------------------------------------


def test_an_unknown_link_is_not_found(client):
    response = client.get("/join/no-such-token/")

    assert response.status_code == 404
    assert b"This join link does not exist" in response.content


@pytest.mark.parametrize("closing", ["revoked", "expired", "used up"])
def test_a_closed_link_says_why_and_changes_nothing(client, cast, link, closing):
    if closing == "revoked":
        services.join_link_revoke(link=link)
    elif closing == "expired":
        JoinLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    else:
        JoinLink.objects.filter(pk=link.pk).update(max_uses=1, uses=1)
    members = Membership.objects.count()

    page = client.get(join_url(link))
    posted = sign_up(client, link)

    assert page.status_code == posted.status_code == 410
    assert {"revoked": b"turned off", "expired": b"has expired", "used up": b"as many times"}[closing] in page.content
    assert b"Nothing was changed" in page.content
    assert not User.objects.filter(username="ada").exists() and Membership.objects.count() == members
    assert signed_in_as(client) is None


def test_a_member_opening_a_closed_link_is_shown_the_way_to_the_project(cast, link):
    services.join_link_revoke(link=link)

    response = client_for(cast.annotator).get(join_url(link))

    assert response.status_code == 410
    assert reverse("projects:overview", args=[cast.project.pk]).encode() in response.content


# --- signing up ------------------------------------------------------------------------------------


def test_a_visitor_sees_the_project_and_both_ways_in(client, cast, link):
    response = client.get(join_url(link))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Join “News”" in body and 'name="password1"' in body and 'name="email"' in body
    assert f"/accounts/login/?next=/join/{link.token}/" in body
    assert JoinLink.objects.get(pk=link.pk).uses == 0


def test_signing_up_joins_signs_in_and_opens_the_work(client, cast, link):
    response = sign_up(client, link, email="ada@example.org")

    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:workspace", args=[cast.project.pk])
    user = signed_in_as(client)
    assert user is not None and user.username == "ada" and user.check_password(STRONG)
    assert Membership.objects.get(project=cast.project, user=user).join_link == link
    assert JoinLink.objects.get(pk=link.pk).uses == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password1": "password", "password2": "password"}, "too common"),
        ({"password2": "something-else-99"}, "The two passwords differ"),
        ({"username": "Annotator"}, "That username is taken"),
        ({"email": "annotator@example.com"}, "already uses this e-mail"),
    ],
)
def test_a_refused_sign_up_shows_why_and_makes_nothing(client, cast, link, fields, message):
    users = User.objects.count()

    response = sign_up(client, link, **fields)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert User.objects.count() == users and JoinLink.objects.get(pk=link.pk).uses == 0
    assert signed_in_as(client) is None


def test_logging_in_and_coming_back_joins(client, cast, link):
    newcomer = UserFactory(username="newcomer")
    login_page = client.get(f"/accounts/login/?next={join_url(link)}")
    assert login_page.status_code == 200

    logged_in = client.post("/accounts/login/", {"username": "newcomer", "password": "pw", "next": join_url(link)})
    confirm = client.get(logged_in["Location"])
    joined = client.post(logged_in["Location"])

    assert logged_in["Location"] == join_url(link) and confirm.status_code == 200
    assert joined.status_code == 302
    assert joined["Location"] == reverse("annotation:workspace", args=[cast.project.pk])
    assert Membership.objects.get(project=cast.project, user=newcomer).join_link == link


def test_a_signed_in_person_joins_by_pressing_join_not_by_opening_the_link(cast, link):
    newcomer = UserFactory(username="newcomer")
    client = client_for(newcomer)

    opened = client.get(join_url(link))  # what another site could make a browser do
    assert opened.status_code == 200 and b"Join" in opened.content
    assert not Membership.objects.filter(project=cast.project, user=newcomer).exists()
    assert JoinLink.objects.get(pk=link.pk).uses == 0

    response = client.post(join_url(link))

    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:workspace", args=[cast.project.pk])
    assert Membership.objects.filter(project=cast.project, user=newcomer, role="annotator").exists()


def test_a_member_is_taken_to_the_project_and_nothing_changes(cast, link):
    response = client_for(cast.reviewer).get(join_url(link))

    assert response.status_code == 302
    assert response["Location"] == reverse("projects:overview", args=[cast.project.pk])
    assert Membership.objects.get(project=cast.project, user=cast.reviewer).role == "reviewer"
    assert JoinLink.objects.get(pk=link.pk).uses == 0


# --- external platforms ----------------------------------------------------------------------------


def test_a_worker_is_signed_in_and_sent_to_the_work(client, cast, worker_link):
    response = client.get(join_url(worker_link), {"PROLIFIC_PID": "5f3a9c", "STUDY_ID": "s1"})

    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:workspace", args=[cast.project.pk])
    user = signed_in_as(client)
    assert user is not None and not user.has_usable_password()
    membership = Membership.objects.get(project=cast.project, user=user)
    assert membership.external_worker_id == "5f3a9c" and membership.join_link == worker_link


def test_a_returning_worker_gets_the_same_account(cast, worker_link):
    first, second = Client(), Client()
    first.get(join_url(worker_link), {"PROLIFIC_PID": "5f3a9c"})

    second.get(join_url(worker_link), {"PROLIFIC_PID": "5f3a9c"})

    assert signed_in_as(first) == signed_in_as(second)
    assert JoinLink.objects.get(pk=worker_link.pk).uses == 1


@pytest.mark.parametrize("worker_id", ["", "a b", "<b>x</b>", "x" * 201])
def test_a_bad_worker_id_is_refused_clearly(client, worker_link, worker_id):
    users = User.objects.count()

    response = client.get(join_url(worker_link), {"PROLIFIC_PID": worker_id})

    assert response.status_code == 400
    assert b"The worker id in this address is not one Quorum accepts" in response.content
    assert b"<b>x</b>" not in response.content
    assert User.objects.count() == users and signed_in_as(client) is None


def test_a_worker_link_without_the_id_offers_the_sign_up(client, worker_link):
    response = client.get(join_url(worker_link))

    assert response.status_code == 200 and b'name="password1"' in response.content


def test_a_signed_in_person_is_not_switched_to_a_worker_quietly(cast, worker_link):
    browser = client_for(cast.manager)

    response = browser.get(join_url(worker_link), {"PROLIFIC_PID": "5f3a9c"})

    assert response.status_code == 200
    assert b"Log out and continue" in response.content
    assert signed_in_as(browser) == cast.manager
    assert not Membership.objects.filter(external_worker_id="5f3a9c").exists()


def test_a_worker_on_a_closed_link_is_told_so(client, worker_link):
    services.join_link_revoke(link=worker_link)

    response = client.get(join_url(worker_link), {"PROLIFIC_PID": "5f3a9c"})

    assert response.status_code == 410 and not User.objects.filter(username__startswith="prolific").exists()


# --- the limit on sign-ups per address ----------------------------------------------------------


@pytest.fixture
def two_sign_ups_an_hour():
    rates = {**test_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "signup": "2/hour"}
    cache.clear()
    with override_settings(REST_FRAMEWORK={**test_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        yield
    cache.clear()


def test_sign_ups_from_one_address_are_limited(cast, link, worker_link, two_sign_ups_an_hour):
    sign_up(Client(REMOTE_ADDR="10.0.0.1"), link, username="first")
    Client(REMOTE_ADDR="10.0.0.1").get(join_url(worker_link), {"PROLIFIC_PID": "w1"})

    refused = sign_up(Client(REMOTE_ADDR="10.0.0.1"), link, username="third")
    refused_worker = Client(REMOTE_ADDR="10.0.0.1").get(join_url(worker_link), {"PROLIFIC_PID": "w2"})
    elsewhere = sign_up(Client(REMOTE_ADDR="10.0.0.2"), link, username="fourth")

    assert refused.status_code == refused_worker.status_code == 429
    assert b"Too many accounts were made from your network address" in refused.content
    assert int(refused["Retry-After"]) > 0
    assert elsewhere.status_code == 302
    assert set(User.objects.filter(memberships__join_link__isnull=False).values_list("username", flat=True)) == {
        "first",
        "prolific_pid-w1",
        "fourth",
    }


def test_a_returning_worker_is_not_counted_as_a_sign_up(cast, worker_link, two_sign_ups_an_hour):
    for _ in range(4):
        response = Client(REMOTE_ADDR="10.0.0.1").get(join_url(worker_link), {"PROLIFIC_PID": "w1"})

        assert response.status_code == 302
