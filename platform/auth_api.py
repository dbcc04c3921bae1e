"""``POST /api/auth/token/``: DRF's token view behind the sign-in lockout (``auth.py``) and a
per-address rate."""

from typing import Any

from rest_framework import exceptions
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from .auth import cool_off_seconds, locked_message
from .throttles import LoginThrottle


class SignInLocked(exceptions.APIException):
    """429 with the lockout's message; DRF's handler turns ``wait`` into ``Retry-After``."""

    status_code = 429
    default_code = "locked_out"

    def __init__(self, request: Any) -> None:
        super().__init__(detail=locked_message(request))
        self.wait = cool_off_seconds(request)


class TokenObtainApi(ObtainAuthToken):
    """``POST /api/auth/token/``: DRF's token view, rate-limited per address, and answering a
    locked account with 429 and a message rather than "unable to log in"."""

    throttle_classes = [LoginThrottle]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except exceptions.ValidationError:
            # Axes marks the request it was handed (DRF's, not Django's, so its middleware
            # does not see it).
            if getattr(request, "axes_locked_out", False):
                raise SignInLocked(request) from None
            raise
