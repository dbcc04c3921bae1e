"""Where browsers report what the Content-Security-Policy blocked (``report-uri``).

A report is logged, not stored: it tells an operator that a page broke under the policy, or
that someone tried to inject markup. Anyone can post here, so a report is read only up to
``REPORT_MAX_BYTES`` and logged only up to ``LOG_MAX_PER_MINUTE`` per process, each field cut
short; the rest are dropped quietly.
"""

import json
import logging
import threading
import time

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

logger = logging.getLogger("quorum.csp")

REPORT_MAX_BYTES = 16_384
LOG_MAX_PER_MINUTE = 60
FIELD_MAX_CHARS = 200
FIELDS = ("document-uri", "violated-directive", "effective-directive", "blocked-uri", "source-file", "line-number")


class _Budget:
    """At most ``limit`` log lines in each minute, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.minute = 0
        self.used = 0

    def take(self) -> bool:
        minute = int(time.monotonic() // 60)
        with self.lock:
            if minute != self.minute:
                self.minute, self.used = minute, 0
            self.used += 1
            return self.used <= self.limit


_budget = _Budget(LOG_MAX_PER_MINUTE)


@csrf_exempt  # browsers post reports without a token
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    """Log one violation report (``application/csp-report``); 204, or 400/413 when unreadable."""
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return HttpResponse("Content-Length is not a number.", status=400, content_type="text/plain")
    if length > REPORT_MAX_BYTES:
        return HttpResponse("The report is too large.", status=413, content_type="text/plain")
    body = request.read(REPORT_MAX_BYTES + 1)
    if len(body) > REPORT_MAX_BYTES:
        return HttpResponse("The report is too large.", status=413, content_type="text/plain")
    try:
        report = json.loads(body).get("csp-report")
    except (ValueError, AttributeError, RecursionError):  # RecursionError: nested past the parser
        return HttpResponse("Send a JSON object with a csp-report.", status=400, content_type="text/plain")
    if not isinstance(report, dict):
        return HttpResponse("Send a JSON object with a csp-report.", status=400, content_type="text/plain")
    if _budget.take():
        fields = {name: str(report.get(name, ""))[:FIELD_MAX_CHARS] for name in FIELDS}
        logger.warning("CSP violation: %s", json.dumps(fields))
    return HttpResponse(status=204)
