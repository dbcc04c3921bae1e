"""A manager writes a labelling function in a real browser: the "n" shortcut opens the
editor, the live preview highlights the keyword with its coverage, Save puts the function
in the analysis table, whose headings sort it from the keyboard. The reports page loads
every source's estimate from learning. Screenshots at 1280 and 390 px go to
$QUORUM_SHOTS (when set) for people to look at."""

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.learning import weak
from apps.learning.models import LabellingFunction, SourceEstimate, SourceKind
from apps.projects.models import GoldLabel, Item
from tests.helpers import make_cast

from .conftest import log_in
from .test_stored_xss import Watch, check, payload, visit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEWS = Path(__file__).resolve().parents[2] / "apps" / "projects" / "demo_data" / "news.jsonl"
WIDTHS = {"desktop": 1280, "phone": 390}


def news_project(count: int = 120):
    """The demo's news texts, the first twenty gold with their true topics."""
    cast = make_cast()
    labels = cast.labels
    for n, line in enumerate(NEWS.read_text().splitlines()[:count]):
        row = json.loads(line)
        item = Item.objects.create(project=cast.project, text=row["text"], external_id=row["id"], is_gold=n < 20)
        if n < 20:
            GoldLabel.objects.create(item=item, label=labels[row["topic"]])
    return cast


def page_width(page, width: int) -> int:
    """The document's width once charts have followed a resize (Chart.js redraws on the
    next frames, so the canvas may be wider for a moment)."""
    for _ in range(20):
        found = page.evaluate("document.documentElement.scrollWidth")
        if found <= width:
            break
        page.wait_for_timeout(100)
    return found


def fits_and_shoot(page, name: str) -> None:
    """At 1280 and 390 px the page is no wider than the window (wide tables scroll inside
    their wrapper); full-page screenshots when QUORUM_SHOTS names a folder."""
    folder = os.environ.get("QUORUM_SHOTS")
    size = page.viewport_size
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        assert page_width(page, width) <= width, f"{name} overflows at {width} px"
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{folder}/{name}-{label}.png", full_page=True)
    page.set_viewport_size(size)


def test_a_manager_writes_a_keyword_function_and_sees_it_fire(page, live_server):
    cast = news_project()
    functions_url = f"{live_server.url}/projects/{cast.project.pk}/learning/functions/"
    log_in(page, live_server, "manager")

    page.goto(functions_url)
    expect(page.get_by_text("No labelling functions yet.")).to_be_visible()
    page.keyboard.press("n")
    expect(page.get_by_role("heading", name="New labelling function")).to_be_visible()

    page.fill("#id_name", "match-words")
    page.select_option("#id_label", "Sports")
    # Fields of other kinds are hidden; the keyword list is shown for "keywords".
    expect(page.locator("#id_pattern")).to_be_hidden()
    page.fill("#id_keywords", "match\ntitle")
    hits = page.locator("#preview-hits")
    expect(hits.locator("mark").first).to_have_text("match", ignore_case=True)
    expect(page.locator("#preview-coverage")).not_to_have_text("0.0%")
    expect(page.locator("#preview")).to_contain_text("known")  # accuracy against the gold items

    # A pattern that does not compile is shown in place, and the page still works.
    page.select_option("#id_kind", "regex")
    page.fill("#id_pattern", "(match")
    expect(page.locator("#preview-error")).to_contain_text('"pattern" cannot be used')
    page.select_option("#id_kind", "keywords")
    expect(hits.locator("mark").first).to_be_visible()
    fits_and_shoot(page, "function-editor")

    page.get_by_role("button", name="Save the function").click()
    page.wait_for_url(functions_url)
    expect(page.locator("#messages")).to_contain_text("“match-words” is saved")
    row = page.locator("#functions-table tbody tr", has_text="match-words")
    expect(row).to_contain_text("keywords")
    expect(row).to_contain_text("not applied yet")
    function = LabellingFunction.objects.get(project=cast.project, name="match-words")
    assert function.definition["keywords"] == ["match", "title"] and function.definition["label"] == "Sports"


def test_the_table_sorts_from_the_keyboard_and_the_reports_page_shows_the_sources(page, live_server):
    cast = news_project()
    for name, label, keywords in [
        ("money-words", "Business", ["revenue", "percent", "shares"]),
        ("sport-words", "Sports", ["match", "title", "season", "coach"]),
        ("rare-words", "Science", ["telescope"]),
    ]:
        weak.function_save(
            project=cast.project, data={"name": name, "kind": "keywords", "label": label, "keywords": keywords}
        )
    functions = list(LabellingFunction.objects.filter(project=cast.project))
    weak.votes_compute(cast.project, functions, list(cast.project.items.values_list("pk", flat=True)))
    for title, kind, accuracy in [
        ("sport-words", SourceKind.FUNCTION, 0.81),
        ("annotator", SourceKind.ANNOTATOR, 0.93),
    ]:
        SourceEstimate.objects.create(project=cast.project, kind=kind, key=title, title=title, accuracy=accuracy)
    log_in(page, live_server, "manager")

    page.goto(f"{live_server.url}/projects/{cast.project.pk}/learning/functions/")
    names = page.locator("#functions-table tbody tr td:first-child strong")
    expect(names).to_have_text(["money-words", "rare-words", "sport-words"])
    coverage = page.get_by_role("button", name="Coverage")
    coverage.focus()
    page.keyboard.press("Enter")  # coverage in these texts: 0, 6 and 23 items
    expect(names).to_have_text(["rare-words", "sport-words", "money-words"])
    expect(page.locator("th", has=coverage)).to_have_attribute("aria-sort", "ascending")
    page.keyboard.press("Enter")
    expect(names).to_have_text(["money-words", "sport-words", "rare-words"])
    expect(page.locator("#sources canvas[data-drawn]")).to_be_attached()
    fits_and_shoot(page, "functions")

    page.goto(f"{live_server.url}/projects/{cast.project.pk}/reports/")
    sources = page.locator("#weak-sources #sources")
    expect(sources).to_contain_text("93.0%")
    expect(sources.locator("canvas[data-drawn]")).to_be_attached()  # drawn after htmx swapped it in
    fits_and_shoot(page, "reports")


def test_payloads_in_functions_texts_and_sources_run_nowhere(page, live_server):
    """Stored XSS on these pages, under the CSP (the watch of test_stored_xss.py): a label
    name, a function's description and keywords, item texts (highlighted by the preview)
    and a source's title hold script; none runs and each is shown as text."""
    cast = make_cast(label_names=("Plain", payload("l1")))
    labelled = payload("l1")
    for n in range(3):
        Item.objects.create(project=cast.project, text=f"{payload('tx')} story {n}")
    data = {"name": "xss", "kind": "keywords", "label": labelled, "keywords": ["story", "<script>"]}
    function = weak.function_save(project=cast.project, data={**data, "description": payload("de")})
    weak.votes_compute(cast.project, [function], list(cast.project.items.values_list("pk", flat=True)))
    SourceEstimate.objects.create(project=cast.project, kind=SourceKind.ANNOTATOR, key="1", title=payload("so"))
    watch = Watch(origin=live_server.url)
    watch.attach(page)
    problems: list[str] = []
    log_in(page, live_server, "manager")
    base = f"{live_server.url}/projects/{cast.project.pk}"

    visit(page, watch, f"{base}/learning/functions/", ("l1", "de", "so"), problems)
    page.goto(f"{base}/learning/functions/{function.pk}/edit/")
    expect(page.locator("#preview-hits mark").first).to_have_text("story")
    check(page, watch, "editor with its preview", ("l1", "de", "tx"), problems)
    page.goto(f"{base}/reports/")
    expect(page.locator("#weak-sources #sources")).to_be_visible()
    check(page, watch, "reports with the sources", ("so",), problems)

    assert problems == [], "\n".join(problems)
