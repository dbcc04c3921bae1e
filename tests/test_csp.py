"""The Content-Security-Policy header on every page, and the endpoint its reports go to."""

import json
import logging

import pytest
from django.test import Client

from platform import csp_report

pytestmark = pytest.mark.django_db


def test_every_page_is_served_with_the_enforced_policy(client):
    response = client.get("/accounts/login/")

    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert "Content-Security-Policy-Report-Only" not in response
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["style-src-elem"] == "'self'" and policy["style-src-attr"] == "'unsafe-inline'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert (policy["base-uri"], policy["form-action"], policy["connect-src"]) == ("'self'", "'self'", "'self'")
    assert policy["report-uri"] == "/csp-report/"


def report(body: bytes | str, **headers) -> object:
    return Client(enforce_csrf_checks=True).post("/csp-report/", body, content_type="application/csp-report", **headers)


def test_a_report_is_logged_without_a_token(caplog):
    violation = {
        "csp-report": {"document-uri": "http://x/p", "violated-directive": "script-src", "blocked-uri": "inline"}
    }

    with caplog.at_level(logging.WARNING, logger="quorum.csp"):
        response = report(json.dumps(violation))

    assert response.status_code == 204
    assert '"violated-directive": "script-src"' in caplog.text and '"blocked-uri": "inline"' in caplog.text


def test_hostile_reports_are_refused_quickly(caplog):
    with caplog.at_level(logging.WARNING, logger="quorum.csp"):
        too_big = report(json.dumps({"csp-report": {"blocked-uri": "x" * 20_000}}))
        nested = report("[" * 5_000 + "]" * 5_000)
        not_json = report("<script>")
        not_a_report = report('{"csp-report": "x"}')
        read = Client().get("/csp-report/")

    assert too_big.status_code == 413
    assert (nested.status_code, not_json.status_code, not_a_report.status_code) == (400, 400, 400)
    assert read.status_code == 405
    assert [record for record in caplog.records if record.name == "quorum.csp"] == []


def test_long_fields_are_cut_and_a_flood_is_not_all_logged(caplog, monkeypatch):
    monkeypatch.setattr(csp_report, "_budget", csp_report._Budget(3))
    long = {"csp-report": {"blocked-uri": "y" * 5_000}}

    with caplog.at_level(logging.WARNING, logger="quorum.csp"):
        answers = {report(json.dumps(long)).status_code for _ in range(10)}

    assert answers == {204}
    assert len(caplog.records) == 3
    assert all(len(record.getMessage()) < 2 * csp_report.FIELD_MAX_CHARS + 300 for record in caplog.records)
