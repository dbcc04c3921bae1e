"""Stored XSS under the Content-Security-Policy, in headless Chromium.

Every field a user can write (project name and instructions, label names and descriptions,
item texts, external ids and metadata, usernames, import file names and their row errors,
review notes, block reasons, training errors) holds script, ``<img onerror>`` and SVG
payloads; one project is seeded once and each page that shows them is visited once. On
every page: no dialog opens, the browser reports no CSP violation, no request leaves the
site, no element carries an event-handler attribute or a ``javascript:`` URL, and the
payload is there as text (so the page did show the field).
"""

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from apps.annotation.consensus import consensus_review, consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import Annotation
from apps.annotation.services import annotation_submit, assignment_skip, task_next_for_annotator
from apps.learning.models import TrainingRun
from apps.projects.answers import LabelIndex
from apps.projects.imports import items_import_start
from apps.projects.models import ImportJob, Item, Membership, Project, Role
from apps.projects.services import membership_add, membership_block, project_create, project_update
from tests.factories import UserFactory

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def payload(tag: str) -> str:
    """Breaks out of an attribute, then script, an image's onerror and an SVG's onload."""
    return f"\"'><script>alert('{tag}')</script><img src=x onerror=alert('{tag}')><svg onload=alert('{tag}')>"


# Reported by the page itself: the policy's violations and anything that breaks it.
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) =>
  window.cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""

# Markup that a payload would have become: handlers, javascript: URLs, inline scripts.
SCAN = """() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on")) found.push(`${el.tagName} ${attr.name}`);
      if (/^\\s*javascript:/i.test(attr.value)) found.push(`${el.tagName} ${attr.name}=${attr.value}`);
    }
  }
  for (const s of document.querySelectorAll("script:not([src])"))
    if (s.type !== "application/json") found.push("inline script");
  return found;
}"""


# Everything the page shows a reader, folded or not, and what its form fields hold.
SHOWN = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script").forEach((s) => s.remove());
  const values = [...document.querySelectorAll("input, textarea")].map((el) => el.value);
  return body.textContent + "\\n" + values.join("\\n");
}"""


@dataclass
class Watch:
    """What one browser page did that it must not."""

    origin: str
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", self._console)
        page.on("request", self._request)
        page.expose_function("cspViolation", lambda text: self.violations.append(text))
        page.add_init_script(LISTEN)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.outside.append(request.url)

    def take(self) -> list[str]:
        found = [f"dialog {m!r}" for m in self.dialogs] + [f"CSP {v}" for v in self.violations]
        found += [f"request to {u}" for u in self.outside]
        self.dialogs.clear(), self.violations.clear(), self.outside.clear()
        return found


@dataclass
class World:
    project: Project
    manager: User
    item: Item
    failed_import: ImportJob


def seed() -> World:
    manager = UserFactory(username="manager")
    project = project_create(
        user=manager,
        name=payload("pn"),
        labels=[
            {"name": payload("l1"), "description": payload("d1")},
            {"name": payload("l2"), "description": payload("d2")},
            {"name": "Plain"},
        ],
    )
    project_update(
        project=project,
        data={
            "instructions": payload("in") + "\n\n[read me](javascript:alert('md'))\n\n<iframe src=//evil.example/>",
            "overlap": 3,
            "gold_ratio": 0.0,
            "consolidate_every": 1000,
        },
    )
    names = [label.name for label in project.labels.order_by("order")]
    rows = "id,text,gold,source\n" + "".join(
        f'"{payload(f"e{n}")[:60]}","{payload("tx").replace(chr(34), chr(34) * 2)} story {n}",'
        f'"{names[0].replace(chr(34), chr(34) * 2) if n == 0 else ""}","{payload("mv").replace(chr(34), chr(34) * 2)}"\n'
        for n in range(6)
    )
    items_import_start(
        project=project,
        user=manager,
        upload=SimpleUploadedFile("\"'><img src=x onerror=alert('fn')><svg onload=alert('fn')>.csv", rows.encode()),
    )
    failed = items_import_start(
        project=project,
        user=manager,
        upload=SimpleUploadedFile(
            "bad.csv", f'id,text,gold\nb1,Some text,"{payload("ge").replace(chr(34), chr(34) * 2)}"\n'.encode()
        ),
    )
    annotators = []
    for n in range(3):
        user = User.objects.create_user(username=payload(f"u{n}"), password="pw")  # usernames the admin could type
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
        annotators.append(user)
    reviewer = UserFactory(username="reviewer")
    membership_add(project=project, user_identifier="reviewer", role=Role.REVIEWER)
    labels = list(project.labels.order_by("order"))
    for n, user in enumerate(annotators):
        for k in range(4):
            task = task_next_for_annotator(project=project, annotator=user)
            annotation_submit(
                project=project,
                annotator=user,
                assignment_id=task.assignment.pk,
                value=labels[(n + k) % 2].name,
                submission_id=uuid.uuid4(),
            )
    task = task_next_for_annotator(project=project, annotator=annotators[0])
    assignment_skip(project=project, annotator=annotators[0], assignment_id=task.assignment.pk, reason=payload("sk"))
    membership_block(membership=Membership.objects.get(project=project, user=annotators[2]), reason=payload("br"))
    consolidation_run(run_id=consolidation_request(project=project).pk)
    item = Item.objects.filter(project=project, annotations__isnull=False).order_by("id").first()
    consensus_review(
        project=project, item=item, reviewer=reviewer, labels=LabelIndex.for_project(project), value=labels[1].name,
        note=payload("rn"),
    )  # fmt: skip
    TrainingRun.objects.create(project=project, mode="head", state="failed", error=payload("te"), stage=payload("ts"))
    return World(project=project, manager=manager, item=item, failed_import=failed)


@pytest.fixture
def world() -> Iterator[World]:
    yield seed()


def visit(page: Any, watch: Watch, url: str, shows: tuple[str, ...], problems: list[str]) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    check(page, watch, url, shows, problems)


def check(page: Any, watch: Watch, where: str, shows: tuple[str, ...], problems: list[str]) -> None:
    text = page.evaluate(SHOWN)
    problems += [f"{where}: {found}" for found in watch.take() + page.evaluate(SCAN)]
    # As text, escaped by the template (or quoted by Python's repr in an error message).
    problems += [f"{where}: field {tag} not shown" for tag in shows if not re.search(rf"alert\(\\?'{tag}\\?'\)", text)]


def test_payloads_in_every_field_run_nowhere(page, live_server, world):
    watch = Watch(origin=live_server.url)
    watch.attach(page)
    problems: list[str] = []
    project = world.project
    base = f"{live_server.url}/projects/{project.pk}"
    log_in(page, live_server, "manager")
    labels = ("l1", "l2", "d1")
    shown_id = re.search(r"alert\('(e\d)'\)", world.item.external_id).group(1)
    pages = {
        f"{live_server.url}/": ("pn",),
        f"{base}/": ("pn", "l1", "l2", "u0"),
        f"{base}/items/": ("pn", "tx"),  # external ids are cut short here
        f"{base}/items/{world.item.pk}/": ("tx", shown_id, "mv", "u0", "l2"),
        f"{base}/review/{world.item.pk}/": ("tx", "u0", "l1", "l2", "rn"),
        f"{base}/reports/": ("u0", "u1", "br"),
        f"{base}/learning/": ("te",),
        f"{base}/learning/try/": ("pn",),
        f"{base}/settings/": ("pn",),
        f"{base}/members/": ("u0", "u2"),
        f"{base}/labels/": labels,
        f"{base}/import/": ("l1", "fn"),
        f"{base}/imports/{world.failed_import.pk}/": ("ge",),
        f"{base}/export/": ("pn",),
    }
    for url, shows in pages.items():
        visit(page, watch, url, shows, problems)

    # The items search echoes the query into the page through htmx.
    page.goto(f"{base}/items/")
    with page.expect_response(lambda response: "q=" in response.url):
        page.fill("#item-search", payload("q1"))
    page.wait_for_load_state("networkidle")
    check(page, watch, "items search", (), problems)

    # The workspace renders the next tasks and the recent answers from script.
    visit(page, watch, f"{base}/annotate/", ("tx", "in", "l1", "l2"), problems)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    # Locators, not wait_for_function: Playwright evaluates a predicate with eval, which the CSP refuses.
    expect(page.locator("[data-progress=session]")).to_have_text("1")
    page.wait_for_selector("#recent .chip")
    check(page, watch, "workspace after an answer", ("l1",), problems)
    mine = Annotation.objects.get(project=project, annotator=world.manager)
    visit(page, watch, f"{base}/annotate/answers/{mine.pk}/", ("tx", "l1"), problems)

    assert problems == [], "\n".join(problems)


def test_the_watch_sees_what_it_must_refuse(page, live_server):
    """The listeners themselves work: markup added after the page loaded is refused by
    the policy and reported, and a dialog is seen."""
    watch = Watch(origin=live_server.url)
    watch.attach(page)
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "content-security-policy-report-only" not in response.headers

    page.evaluate("""() => {
      const img = document.createElement("img");
      img.setAttribute("onerror", "alert('injected')");
      img.src = "/no-such-image.png";
      document.body.append(img);
      const far = document.createElement("img");
      far.src = "https://evil.example/pixel.png";
      document.body.append(far);
    }""")
    page.wait_for_selector("img[onerror]")
    expect(page.locator("body")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.evaluate("() => alert('from the test')")

    found = watch.take() + page.evaluate(SCAN)
    assert any("script-src" in line for line in found), found
    assert any("img-src" in line and "evil.example" in line for line in found), found
    assert "dialog 'from the test'" in found and "IMG onerror" in found


def test_admin_login_and_api_docs_work_under_the_policy(page, live_server):
    admin = UserFactory(username="manager", is_staff=True, is_superuser=True)
    project = project_create(
        user=admin, name=payload("pn"), labels=[{"name": payload("l1")}, {"name": "B"}, {"name": "C"}]
    )
    watch = Watch(origin=live_server.url)
    watch.attach(page)
    problems: list[str] = []
    visit(page, watch, f"{live_server.url}/accounts/login/", (), problems)
    log_in(page, live_server, "manager")

    visit(page, watch, f"{live_server.url}/admin/", (), problems)
    visit(page, watch, f"{live_server.url}/admin/projects/project/", ("pn",), problems)
    visit(page, watch, f"{live_server.url}/admin/projects/project/{project.pk}/change/", ("pn", "l1"), problems)
    page.click("text=Add another Label")  # the admin's inline formset script runs
    expect(page.locator("tr.dynamic-labels")).to_have_count(4)
    check(page, watch, "admin inline added", (), problems)

    visit(page, watch, f"{live_server.url}/api/docs/", (), problems)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Quorum API")
    check(page, watch, "swagger rendered", (), problems)
    visit(page, watch, f"{live_server.url}/api/redoc/", (), problems)
    expect(page.locator("h1")).to_contain_text("Quorum API")
    check(page, watch, "redoc rendered", (), problems)
    # Redoc's "API docs by Redocly" logo comes from its CDN: the policy blocks it, as it should.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    problems = [
        line
        for line in problems
        if not (line.startswith(f"{live_server.url}/api/redoc/") or line.startswith("redoc")) or logo not in line
    ]

    assert problems == [], "\n".join(problems)
