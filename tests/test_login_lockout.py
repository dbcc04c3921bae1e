"""Signing in: the lockout after repeated failures (django-axes, platform/auth.py) on the login
page and the token endpoint, an administrator's unlock, the cool-off, and the API's request
rates (platform/throttles.py)."""

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.core.cache.backends.dummy import DummyCache
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from platform.throttles import FixedWindowThrottle

from .factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TOKEN = "/api/auth/token/"


def page_login(username: str, password: str, address: str = "10.0.0.1") -> object:
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})


def token_login(username: str, password: str, address: str = "10.0.0.1") -> object:
    return APIClient(REMOTE_ADDR=address).post(TOKEN, {"username": username, "password": password}, format="json")


def fail(login, username: str, times: int, address: str = "10.0.0.1") -> None:
    for _ in range(times):
        assert login(username, "wrong", address).status_code in (200, 400, 429)


def test_it_locks_the_login_page_after_thirty_wrong_passwords():
    UserFactory(username="ann")
    fail(page_login, "ann", 30)

    response = page_login("ann", "pw")

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "Back to sign in" in response.content.decode()  # the site's page, not a bare message
    assert int(response["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in response.client.session  # not signed in


def test_the_login_page_still_works_below_the_limit():
    UserFactory(username="ann")
    fail(page_login, "ann", 9)

    response = page_login("ann", "pw")

    assert response.status_code == 302
    assert response.client.session["_auth_user_id"]


def test_it_locks_the_token_endpoint_after_thirty_wrong_passwords():
    user = UserFactory(username="ann")
    fail(token_login, "ann", 30)

    response = token_login("ann", "pw")

    assert response.status_code == 429
    assert response.json()["detail"].startswith("Too many failed sign-ins")
    assert int(response["Retry-After"]) == 15 * 60
    assert not Token.objects.filter(user=user).exists()


def test_a_wrong_password_below_the_limit_keeps_the_usual_400():
    UserFactory(username="ann")

    response = token_login("ann", "wrong")

    assert response.status_code == 400
    assert AccessAttempt.objects.get(username="ann").failures_since_start == 1


def test_failures_on_the_page_and_the_api_add_up():
    UserFactory(username="ann")
    fail(page_login, "ann", 5)
    fail(token_login, "ann", 5)

    assert token_login("ann", "pw").status_code == 429


def test_a_locked_account_is_locked_from_every_address():
    UserFactory(username="ann")
    fail(page_login, "ann", 10, address="10.0.0.1")

    assert page_login("ann", "pw", address="192.0.2.7").status_code == 429
    assert token_login("ann", "pw", address="192.0.2.7").status_code == 429


def test_another_account_from_the_same_address_signs_in_until_the_address_limit():
    UserFactory(username="ann")
    UserFactory(username="bob")
    fail(page_login, "ann", 30)

    # 30 failures from the address: below its limit of 50 (a team may share an office address).
    assert page_login("bob", "pw").status_code == 302


def test_an_address_is_locked_after_its_own_limit_whatever_the_accounts():
    UserFactory(username="bob")
    for n in range(50):  # a password spray: each account tried a few times only
        page_login(f"victim{n % 10}", "guess")

    assert page_login("bob", "pw").status_code == 429
    assert page_login("bob", "pw", address="10.0.0.2").status_code == 302


def test_an_admin_unlocks_an_account_in_the_admin():
    UserFactory(username="ann")
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    fail(page_login, "ann", 10)
    staff = Client()
    staff.force_login(admin)

    listing = staff.get("/admin/axes/accessattempt/")
    attempt = AccessAttempt.objects.get(username="ann")
    staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert listing.status_code == 200 and "ann" in listing.content.decode()
    assert not AccessAttempt.objects.filter(username="ann").exists()
    assert page_login("ann", "pw").status_code == 302


def test_an_admin_unlocks_an_account_with_a_command():
    UserFactory(username="ann")
    fail(token_login, "ann", 10)

    call_command("axes_reset_username", "ann", stdout=StringIO())

    assert token_login("ann", "pw").status_code == 200


def test_the_lock_lifts_after_the_cool_off():
    UserFactory(username="ann")
    fail(page_login, "ann", 10)
    assert page_login("ann", "pw").status_code == 429

    # Age the failures past the cool-off, as the clock would.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert page_login("ann", "pw").status_code == 302


@override_settings(AXES_COOLOFF_TIME=timedelta(minutes=2))
def test_the_cool_off_is_configurable():
    UserFactory(username="ann")
    fail(page_login, "ann", 10)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=3))

    assert page_login("ann", "pw").status_code == 302


def test_a_spoofed_forwarded_for_header_does_not_change_the_address():
    UserFactory(username="bob")
    for n in range(50):
        Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").post(
            LOGIN, {"username": f"victim{n}", "password": "guess"}
        )

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.0.0.1"}
    assert page_login("bob", "pw").status_code == 429


@override_settings(REST_FRAMEWORK={**api_settings.user_settings, "NUM_PROXIES": 1})
def test_behind_one_proxy_the_address_is_the_one_it_forwards():
    UserFactory(username="bob")
    for n in range(50):
        Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=f"spoof, 198.51.100.{n % 2}").post(
            LOGIN, {"username": f"victim{n}", "password": "guess"}
        )

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.0", "198.51.100.1"}


def rates(**scopes: str) -> dict:
    return {**api_settings.user_settings, "DEFAULT_THROTTLE_RATES": scopes}


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("fresh_cache")
def test_the_token_endpoint_limits_attempts_per_address():
    UserFactory(username="ann")
    with override_settings(REST_FRAMEWORK=rates(login="3/minute", anon=None, user=None)):
        answers = [token_login("ann", "pw").status_code for _ in range(4)]
        elsewhere = token_login("ann", "pw", address="10.0.0.2")

    assert answers == [200, 200, 200, 429]
    assert elsewhere.status_code == 200


@pytest.mark.usefixtures("fresh_cache")
def test_the_api_limits_each_account_and_says_when_to_come_back():
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    client, other = APIClient(), APIClient()
    client.force_authenticate(ann)
    other.force_authenticate(bob)
    with override_settings(REST_FRAMEWORK=rates(user="5/minute", anon="1/minute")):
        answers = [client.get("/api/projects/").status_code for _ in range(6)]
        refused = client.get("/api/projects/")
        others = other.get("/api/projects/")

    assert answers == [200] * 5 + [429]
    assert refused.json()["detail"].startswith("Request was throttled")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert others.status_code == 200


class Public(APIView):
    """A view anyone may call (as the schema is): DRF checks permissions before rates, so
    only such views meet the anonymous rate."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


@pytest.mark.usefixtures("fresh_cache")
def test_the_api_limits_anonymous_requests_per_address():
    factory = APIRequestFactory()
    with override_settings(REST_FRAMEWORK=rates(anon="2/minute", user=None)):
        answers = [Public.as_view()(factory.get("/", REMOTE_ADDR="10.0.0.1")).status_code for _ in range(3)]
        elsewhere = Public.as_view()(factory.get("/", REMOTE_ADDR="10.0.0.2"))

    assert answers == [200, 200, 429]
    assert elsewhere.status_code == 200


def test_the_api_lets_requests_through_when_the_cache_does_not_answer(monkeypatch):
    ann = UserFactory(username="ann")
    client = APIClient()
    client.force_authenticate(ann)
    monkeypatch.setattr(FixedWindowThrottle, "cache", DummyCache("away", {}))  # stores nothing
    with override_settings(REST_FRAMEWORK=rates(user="1/minute")):
        answers = [client.get("/api/projects/").status_code for _ in range(3)]

    assert answers == [200, 200, 200]
