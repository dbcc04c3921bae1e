"""Signing in: the lockout after repeated failures (django-axes); the API's token endpoint is in
``auth_api.py`` (Axes loads this module as it starts, before DRF's views can be imported).

django-axes records failed sign-ins in the database (``AccessAttempt``) and refuses a locked
account or address before the password is even checked, on the login page and on
``POST /api/auth/token/`` alike (both call ``authenticate`` with the request). An account is
locked after ``AXES_FAILURE_LIMIT`` failures, an address after
``QUORUM_LOGIN_ADDRESS_FAILURE_LIMIT`` (higher: a whole team may sign in from one office
address), each within ``AXES_COOLOFF_TIME``; the lock lifts when the failures age out of that
window. Administrators unlock at once in the admin (Axes › Access attempts: delete) or with
``manage.py axes_reset_username <name>`` / ``axes_reset_ip <address>`` (docs/operations.md).
"""

from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. Try again in {minutes} "
    "minutes, or ask an administrator to unlock the account."
)


def cool_off_seconds(request: Any) -> int:
    cool_off = get_cool_off(request) or timedelta(0)
    return int(cool_off.total_seconds())


def locked_message(request: Any) -> str:
    return LOCKED_MESSAGE.format(minutes=max(1, -(-cool_off_seconds(request) // 60)))


class LoginAttemptHandler(AxesDatabaseHandler):
    """Axes' database handler with one limit per lockout parameter: Axes compares the failures
    counted for each parameter (``AXES_LOCKOUT_PARAMETERS``) with one ``AXES_FAILURE_LIMIT``;
    failures from an address are scaled so that they reach it at the address's own limit."""

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        account_limit: int = settings.AXES_FAILURE_LIMIT
        address_limit: int = settings.QUORUM_LOGIN_ADDRESS_FAILURE_LIMIT
        counts = [0]
        for parameter, attempts in zip(
            settings.AXES_LOCKOUT_PARAMETERS, self.get_user_attempts(request, credentials), strict=True
        ):
            failures = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
            # floor(f * A / I) >= A exactly when f >= I, so the address locks at its own limit.
            counts.append(failures * account_limit // address_limit if parameter == "ip_address" else failures)
        return max(counts)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """What a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``): 429 with ``Retry-After``, as
    JSON in the API's error format under /api/, else the page styled like the login page."""
    message = locked_message(request)
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(cool_off_seconds(request))
    return response
