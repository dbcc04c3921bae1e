"""When the database does not answer (restarting, failing over, out of connections), a
request gets a clean 503 with a message and ``Retry-After``, not a server error: nothing
was half-saved (every write is one transaction), so trying again is safe. The next request
reconnects by itself (``CONN_HEALTH_CHECKS``), so no process needs restarting."""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

MESSAGE = "The database is not answering right now, so nothing was saved. Try again in a few seconds."
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError: the server went away or refused (also a deadlock or a
        # serialization failure, which are as safe to retry); InterfaceError: psycopg's
        # "connection is closed". Other database errors are bugs and stay 500s.
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning("database unavailable for %s %s", request.method, request.path, exc_info=exception)
        response: HttpResponse
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            response = JsonResponse({"detail": MESSAGE, "message": MESSAGE}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
