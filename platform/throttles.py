"""Request rates for the API (DRF throttles) and the client address that both they and the
login lockout (django-axes, ``AXES_CLIENT_IP_CALLABLE``) go by.

The address is ``REMOTE_ADDR`` unless ``QUORUM_PROXY_COUNT`` (DRF's ``NUM_PROXIES``) says how
many proxies of ours stand in front: then it is that many entries from the right of
``X-Forwarded-For``, the one our outermost proxy saw. A client can write anything at the left
of that header, so trusting more entries than there are proxies would let it pick its address.

Counters are fixed windows in the cache (an ``incr`` per request): DRF's own throttles keep a
list of every request's time in the window and read and rewrite it each time, at the default
user rate a value of some 20 KB (2,400 requests against Redis on a loaded 2-core machine:
6.0-6.5 ms a request with DRF's, 2.0-2.8 ms with this). A fixed window may let up to twice the
rate through across a window's edge; for a guard against floods that is enough. When the cache
does not answer, requests go through.
"""

from typing import Any

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_ip(request: Any) -> str:
    """The client's address as this deployment can trust it (see the module docstring)."""
    return BaseThrottle().get_ident(request) or ""


class FixedWindowThrottle(SimpleRateThrottle):
    """``scope``'s rate from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, counted per
    ``get_cache_key`` in fixed windows of the rate's period."""

    cache = cache
    scope = ""
    num_requests: int | None
    duration: int | None
    _wait = 0.0

    def get_rate(self) -> str | None:
        # Read at each request, not frozen at import as DRF's class attribute is, so settings
        # overrides (tests, a reloaded configuration) apply.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        return rates.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.key}:{window}"
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's first request; or the cache is away
            count = 1 if self.cache.add(key, 1, self.duration + 1) else self._incr_or_one(key)
        self._wait = (window + 1) * self.duration - now
        return bool(count <= self.num_requests)

    def _incr_or_one(self, key: str) -> int:
        """Another request started the window a moment ago; or the cache does not answer, and
        then the request goes through (a counter must not turn an outage into refusals)."""
        try:
            return int(self.cache.incr(key))
        except ValueError:
            return 1

    def wait(self) -> float | None:
        return self._wait


class AnonThrottle(FixedWindowThrottle):
    """Anonymous requests, per address."""

    scope = "anon"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class UserThrottle(FixedWindowThrottle):
    """Authenticated requests, per account (anonymous ones per address)."""

    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        ident = request.user.pk if request.user and request.user.is_authenticated else client_ip(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginThrottle(FixedWindowThrottle):
    """Every sign-in through the API (right or wrong password), per address: the lockout
    counts failures per account and address; this bounds the raw rate of attempts."""

    scope = "login"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class SignUpThrottle(FixedWindowThrottle):
    """Accounts made through join links (the sign-up form, and a worker id's first visit),
    per address: anyone with a link may make an account, so this bounds how fast one
    address can. The join page calls it directly (it is not a DRF view)."""

    scope = "signup"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}
