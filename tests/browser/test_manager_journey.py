"""A manager's first hour, in a real browser: log in, create a project with labels,
import a file, find an item, fix a label, export the data."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from apps.projects.models import Item, Label, Project
from tests.factories import UserFactory

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_manager_creates_imports_browses_and_exports(page, live_server, tmp_path):
    manager = UserFactory(username="maria")
    manager.user_permissions.add(Permission.objects.get(codename="add_project"))
    log_in(page, live_server, "maria")

    page.click("text=New project")
    page.fill("#id_name", "Customer e-mails")
    page.fill("#id_label_names", "Complaint\nQuestion\nPraise")
    page.fill("#id_instructions", "Pick the **main** intent.")
    page.click("button:has-text('Create project')")
    page.wait_for_selector("h1:has-text('Customer e-mails')")
    project = Project.objects.get(name="Customer e-mails")
    assert list(project.labels.values_list("name", flat=True)) == ["Complaint", "Question", "Praise"]

    upload = tmp_path / "mails.csv"
    upload.write_text(
        "id,text,gold\n"
        + "".join(
            f'm{n},"Message number {n}: {"my parcel never came" if n % 3 else "thanks a lot"}",{"Praise" if n == 3 else ""}\n'
            for n in range(1, 121)
        )
    )
    page.click("nav >> text=Import")
    page.set_input_files("#id_file", str(upload))
    page.click("button:has-text('Import')")
    page.wait_for_selector("text=120 items imported")
    assert Item.objects.filter(project=project).count() == 120

    page.click("text=See the items")
    page.fill("#item-search", "parcel")
    expect(page.locator("#item-table .pagination")).to_contain_text("of 80")
    page.select_option("select[name=gold]", "yes")
    page.fill("#item-search", "")
    expect(page.locator("#item-table .pagination")).to_contain_text("of 1")
    page.screenshot(path=str(tmp_path / "items.png"), full_page=True)

    page.click("nav >> text=Labels")
    row = page.locator(f"#label-{Label.objects.get(project=project, name='Praise').pk}")
    row.locator("input[name$='-name']").fill("Thanks")
    page.click("button:has-text('Save labels')")
    page.wait_for_selector("text=Labels saved.")
    assert Label.objects.filter(project=project, name="Thanks").exists()

    page.click("nav >> text=Export")
    with page.expect_download() as download:
        page.click("a[href$='/export/jsonl/']")
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert len(rows) == 120
    assert next(row for row in rows if row["external_id"] == "m3")["gold"] == "Thanks"
