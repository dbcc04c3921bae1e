"""Joining by link in a real browser: a manager makes a link on the members page and copies
it; a stranger opens it, signs up, labels their items and gets the completion code; a
Prolific worker arrives with their id and leaves early with the code. The join page and the
members page fit 1280 and 390 px; screenshots go to $QUORUM_SHOTS when it is set."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from apps.annotation.models import Annotation
from apps.projects.models import Item, JoinLink, Membership
from apps.projects.services import join_link_create, project_update
from tests.helpers import make_cast

from .conftest import log_in
from .test_functions_editor import fits_and_shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CURRENT = "#current form.task"
STRONG = "plum-harbour-47-lantern"


def crowd_project():
    cast = make_cast()
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 1, "max_items_per_annotator": 2})
    Item.objects.bulk_create(Item(project=cast.project, text=f"Story {n} about the cup final.") for n in range(6))
    return cast


def label_one(page, key: str) -> None:
    before = page.locator(CURRENT).get_attribute("data-assignment") or ""
    page.locator(f"{CURRENT} label.choice").nth(int(key) - 1).click()
    page.locator(f"{CURRENT} button[type=submit]").first.click()
    expect(page.locator(CURRENT)).not_to_have_attribute("data-assignment", before)


def test_a_stranger_joins_by_link_labels_and_gets_the_completion_code(browser, page, live_server):
    cast = crowd_project()
    log_in(page, live_server, "manager")
    page.goto(f"{live_server.url}/projects/{cast.project.pk}/members/")
    page.fill("#id_name", "Spring class")
    page.fill("#id_max_uses", "30")
    page.get_by_role("button", name="Create link").click()
    row = page.locator("table.join-links tbody tr").first
    expect(row).to_contain_text("Spring class")
    expect(row).to_contain_text("0 of 30")
    row.get_by_role("button", name="Copy").click()
    expect(row.get_by_role("button")).to_have_text(["Copied", "Revoke"])
    address = row.get_by_role("textbox").input_value()
    link = JoinLink.objects.get(project=cast.project)
    assert address == f"{live_server.url}/join/{link.token}/"
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar stays on top in the full-page shot
    fits_and_shoot(page, "members")

    stranger = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    stranger.set_default_timeout(10_000)
    stranger.goto(address)
    expect(stranger.get_by_role("heading", name="Join “News”")).to_be_visible()
    fits_and_shoot(stranger, "join")
    stranger.fill("#id_username", "ada")
    stranger.fill("#id_password1", STRONG)
    stranger.fill("#id_password2", STRONG)
    stranger.get_by_role("button", name="Sign up and join").click()
    stranger.wait_for_url(f"{live_server.url}/projects/{cast.project.pk}/annotate/")

    label_one(stranger, "2")
    before = stranger.locator(CURRENT).get_attribute("data-assignment")
    stranger.locator(f"{CURRENT} label.choice").first.click()
    stranger.locator(f"{CURRENT} button[type=submit]").first.click()
    expect(stranger.locator(f"{CURRENT}[data-assignment='{before}']")).to_have_count(0)
    expect(stranger.locator("#current")).to_contain_text("as many items as one person may")
    stranger.get_by_role("link", name="Finished? Get your completion code").click()
    expect(stranger.locator("#completion-code")).to_have_value(link.completion_code)
    fits_and_shoot(stranger, "done")
    stranger.context.close()

    ada = User.objects.get(username="ada")
    assert ada.check_password(STRONG)
    assert Membership.objects.get(project=cast.project, user=ada).join_link == link
    assert Annotation.objects.filter(annotator=ada).count() == 2
    assert JoinLink.objects.get(pk=link.pk).uses == 1


def test_a_prolific_worker_arrives_with_their_id_and_leaves_with_the_code(browser, live_server):
    cast = crowd_project()
    link = join_link_create(project=cast.project, by=cast.manager, worker_id_param="PROLIFIC_PID")
    worker = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    worker.set_default_timeout(10_000)

    worker.goto(f"{live_server.url}/join/{link.token}/?PROLIFIC_PID=5f3a9c1e2b&STUDY_ID=s1&SESSION_ID=x")
    worker.wait_for_url(f"{live_server.url}/projects/{cast.project.pk}/annotate/")
    label_one(worker, "1")
    worker.get_by_role("link", name="Finished? Get your completion code").click()
    worker.get_by_role("button", name="I am finished: show my code").click()

    expect(worker.locator("#completion-code")).to_have_value(link.completion_code)
    back = worker.get_by_role("link", name="Back to Prolific with this code")
    expect(back).to_have_attribute("href", f"https://app.prolific.com/submissions/complete?cc={link.completion_code}")
    assert worker.evaluate("document.documentElement.scrollWidth") <= 390
    worker.context.close()
    membership = Membership.objects.get(project=cast.project, external_worker_id="5f3a9c1e2b")
    assert Annotation.objects.filter(annotator=membership.user).count() == 1
