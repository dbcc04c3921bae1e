"""Pay: the rows of the payments page and its CSV, against the budget spent.

Answers go through the real services (lease, submit, skip, change), so the budget the
submit keeps and the pay read from the rows meet in one test."""

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.annotation.models import Annotation, ItemConsensus, PracticeAnswer, QualificationAttempt
from apps.annotation.payments import pay_rows, pay_total
from apps.annotation.services import annotation_submit, annotation_update, assignment_skip, task_next_for_annotator
from apps.projects.models import GoldLabel, Item, Membership, Project
from apps.projects.services import project_update
from tests.factories import ItemFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(cast):
    project_update(
        project=cast.project,
        data={"gold_ratio": 0.0, "overlap": 2, "price_per_annotation": Decimal("0.0450"), "currency": "EUR"},
    )
    for n in range(10):
        ItemFactory(project=cast.project, text=f"Story number {n} about the league final.")
    for n in range(4):
        gold = ItemFactory(project=cast.project, text=f"Gold story {n}.", is_gold=True)
        GoldLabel.objects.create(item=gold, label=cast.labels["Sports"])
    return Project.objects.get(pk=cast.project.pk)


def _next(project, user):
    return task_next_for_annotator(project=project, annotator=user).assignment


def answer(project, user, value):
    """Lease the next item and answer it; gold items get ``Sports`` (right) from the
    annotator and ``World`` (wrong) from anyone else."""
    assignment = _next(project, user)
    item = Item.objects.get(pk=assignment.item_id)
    if item.is_gold:
        value = "Sports" if user.username == "annotator" else "World"
    return annotation_submit(
        project=project, annotator=user, assignment_id=assignment.pk, value=value, submission_id=uuid.uuid4()
    ).annotation


def gold_round(project, user, n):
    """Answer ``n`` gold items: with gold_ratio 1 every lease tries a gold item first."""
    Project.objects.filter(pk=project.pk).update(gold_ratio=1.0)
    project.refresh_from_db()
    for _ in range(n):
        answer(project, user, "World")
    Project.objects.filter(pk=project.pk).update(gold_ratio=0.0)
    project.refresh_from_db()


@pytest.fixture
def worked(cast, project):
    """The annotator: 2 gold (right), 5 paid answers (one changed afterwards), 1 skip. The
    other annotator: 2 gold (wrong), 4 paid answers, disagreeing on two of the shared items.
    Plus a practice answer and a qualification attempt, which are never paid."""
    gold_round(project, cast.annotator, 2)
    gold_round(project, cast.other_annotator, 2)
    mine = [answer(project, cast.annotator, "World") for _ in range(5)]
    assignment_skip(project=project, annotator=cast.annotator, assignment_id=_next(project, cast.annotator).pk)
    annotation_update(project=project, annotator=cast.annotator, annotation_id=mine[-1].pk, value="Business", version=1)
    for n in range(4):
        answer(project, cast.other_annotator, "World" if n < 2 else "Science")
    item = Item.objects.filter(project=project, is_gold=False).first()
    PracticeAnswer.objects.create(
        project=project, item=item, annotator=cast.annotator, parts=[{"label_id": cast.labels["World"].pk}], score=1.0
    )
    QualificationAttempt.objects.create(project=project, annotator=cast.other_annotator, number=1, score=1.0)
    project.refresh_from_db()
    return project


def by_name(rows):
    return {row.annotator.username: row for row in rows}


def test_base_amounts_sum_to_the_budget_spent_after_skips_and_changes(cast, worked):
    rows = pay_rows(project=worked)

    paid = Annotation.objects.filter(project=worked, is_gold=False).count()
    assert worked.budget_spent == paid == 9
    assert pay_total(rows).answers == worked.budget_spent
    assert pay_total(rows).base == worked.budget_spent * worked.price_per_annotation == Decimal("0.405")
    assert {name: row.answers for name, row in by_name(rows).items()} == {"annotator": 5, "other_annotator": 4}


def test_gold_practice_and_qualification_answers_are_free_but_gold_is_scored(cast, worked):
    rows = by_name(pay_rows(project=worked))

    assert rows["annotator"].gold_answered == 2 and rows["annotator"].gold_accuracy == 1.0
    assert rows["other_annotator"].gold_answered == 2 and rows["other_annotator"].gold_accuracy == 0.0
    assert rows["annotator"].base == 5 * Decimal("0.0450")
    assert all(row.currency == "EUR" and row.bonus == 0 and row.amount == row.base for row in rows.values())


def test_accepted_answers_equal_their_items_consensus_and_the_rest_wait(cast, worked):
    rows = by_name(pay_rows(project=worked))
    consensus = dict(ItemConsensus.objects.filter(project=worked).values_list("item_id", "parts"))
    expected = {}
    for user in (cast.annotator, cast.other_annotator):
        answers = Annotation.objects.filter(project=worked, annotator=user, is_gold=False).prefetch_related("labels")
        agree = [a for a in answers if a.item_id in consensus and [p.label_id for p in consensus[a.item_id]] == [
            label.label_id for label in a.labels.all()
        ]]  # fmt: skip
        waiting = [a for a in answers if a.item_id not in consensus]
        expected[user.username] = (len(agree), len(waiting))

    assert {name: (row.accepted, row.pending) for name, row in rows.items()} == expected
    assert rows["annotator"].pending > 0 and rows["annotator"].accepted > 0


def test_a_reviewers_final_answer_decides_what_is_accepted(cast, worked):
    before = by_name(pay_rows(project=worked))["other_annotator"]
    first, second = Annotation.objects.filter(project=worked, annotator=cast.other_annotator, is_gold=False)[:2]
    # A reviewer settles every item with Sports, which no paid answer chose, but the first
    # with the other annotator's own answer; the second item's consensus is gone.
    for item_id in ItemConsensus.objects.filter(project=worked).values_list("item_id", flat=True):
        parts = first.labels.get().label_id if item_id == first.item_id else cast.labels["Sports"].pk
        ItemConsensus.objects.filter(item_id=item_id).update(
            parts=[{"label_id": parts}], method="reviewer", reviewed_at=timezone.now()
        )
    ItemConsensus.objects.filter(item_id=second.item_id).delete()

    after = by_name(pay_rows(project=worked))["other_annotator"]

    assert before.pending == 0 and before.accepted >= 1
    assert (after.accepted, after.pending) == (1, 1)
    assert after.answers == before.answers and after.base == before.base


def test_the_bonus_goes_to_whoever_reaches_the_gold_accuracy(cast, worked):
    project_update(project=worked, data={"bonus_gold_accuracy": 0.9, "bonus_per_answer": Decimal("0.01")})

    rows = by_name(pay_rows(project=Project.objects.get(pk=worked.pk)))

    assert rows["annotator"].bonus == Decimal("0.05") and rows["annotator"].amount == Decimal("0.275")
    assert rows["other_annotator"].bonus == 0 and rows["other_annotator"].amount == 4 * Decimal("0.0450")


def test_a_period_counts_answers_by_the_day_they_were_given(cast, worked):
    old = Annotation.objects.filter(project=worked, annotator=cast.annotator, is_gold=False).order_by("id")[:3]
    Annotation.objects.filter(pk__in=[a.pk for a in old]).update(created_at=timezone.now() - timedelta(days=40))
    today = timezone.localdate()

    recent = by_name(pay_rows(project=worked, start=today - timedelta(days=7), end=today))
    earlier = by_name(pay_rows(project=worked, end=today - timedelta(days=8)))
    everything = pay_rows(project=worked)

    assert recent["annotator"].answers == 2 and recent["annotator"].gold_answered == 2
    assert earlier["annotator"].answers == 3 and earlier["annotator"].gold_answered == 0
    assert set(earlier) == {"annotator"}
    assert pay_total(everything).answers == worked.budget_spent
    assert pay_rows(project=worked, start=today + timedelta(days=1)) == []


def test_one_persons_row(cast, worked):
    rows = pay_rows(project=worked, annotator=cast.other_annotator)

    assert [(row.annotator, row.answers, row.gold_answered) for row in rows] == [(cast.other_annotator, 4, 2)]


# --- the page and the CSV -------------------------------------------------------------------------


def test_the_page_shows_every_person_and_that_the_total_is_the_budget_spent(cast, worked):
    response = client_for(cast.manager).get(f"/projects/{worked.pk}/payments/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "annotator" in body and "other_annotator" in body
    assert "The 9 paid answers are the budget spent" in body
    assert "0.41" in body  # 9 x 0.045, rounded for the page


def test_the_page_refuses_a_period_that_ends_before_it_starts(cast, worked):
    response = client_for(cast.manager).get(
        f"/projects/{worked.pk}/payments/", {"start": "2025-05-02", "end": "2025-05-01"}
    )
    csv_response = client_for(cast.manager).get(f"/projects/{worked.pk}/payments/csv/", {"start": "2025-05-02", "end": "2025-05-01"})  # fmt: skip

    assert response.status_code == 200 and b"ends before it starts" in response.content
    assert csv_response.status_code == 400 and b"ends before it starts" in csv_response.content


def test_the_htmx_filter_swaps_only_the_table(cast, worked):
    response = client_for(cast.manager).get(f"/projects/{worked.pk}/payments/", HTTP_HX_REQUEST="true")

    assert response.content.lstrip().startswith(b'<div id="pay-table">')


def test_the_csv_has_the_same_rows_with_exact_amounts(cast, worked):
    response = client_for(cast.manager).get(f"/projects/{worked.pk}/payments/csv/")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "payments" in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    rows = by_name(pay_rows(project=worked))
    assert [line["annotator"] for line in table] == ["annotator", "other_annotator"]
    for line in table:
        row = rows[line["annotator"]]
        assert (int(line["answers"]), int(line["accepted"]), int(line["pending"])) == (
            row.answers,
            row.accepted,
            row.pending,
        )
        assert Decimal(line["base"]) == row.base and Decimal(line["amount"]) == row.amount and line["currency"] == "EUR"
    assert sum(Decimal(line["base"]) for line in table) == worked.budget_spent * worked.price_per_annotation


def test_the_csv_escapes_worker_ids_a_spreadsheet_would_run(cast, worked):
    Membership.objects.filter(project=worked, user=cast.annotator).update(external_worker_id='=HYPERLINK("x")')
    client = client_for(cast.manager)

    escaped = list(csv.DictReader(io.StringIO(client.get(f"/projects/{worked.pk}/payments/csv/").content.decode())))
    raw = client.get(f"/projects/{worked.pk}/payments/csv/", {"formula_escape": "false"}).content.decode()

    assert escaped[0]["worker_id"] == '\'=HYPERLINK("x")'
    assert list(csv.DictReader(io.StringIO(raw)))[0]["worker_id"] == '=HYPERLINK("x")'


def test_the_csv_follows_the_period(cast, worked):
    today = timezone.localdate()
    response = client_for(cast.manager).get(
        f"/projects/{worked.pk}/payments/csv/", {"start": (today + timedelta(days=1)).isoformat()}
    )

    assert response.status_code == 200 and response.content.decode().strip().count("\n") == 0  # the header only


def test_a_multi_label_answer_is_accepted_when_it_has_exactly_the_consensus_labels(multi_cast):
    project = multi_cast.project
    politics, economy = multi_cast.labels["Politics"], multi_cast.labels["Economy"]
    item = ItemFactory(project=project)
    for user, labels in ((multi_cast.annotator, [economy, politics]), (multi_cast.other_annotator, [politics])):
        annotation = Annotation.objects.create(project=project, item=item, annotator=user, submission_id=uuid.uuid4())
        for label in labels:
            annotation.labels.create(label=label)
    ItemConsensus.objects.create(
        project=project, item=item, parts=[{"label_id": politics.pk}, {"label_id": economy.pk}], method="mace"
    )

    rows = by_name(pay_rows(project=project))

    assert (rows["annotator"].accepted, rows["other_annotator"].accepted) == (1, 0)
    assert rows["other_annotator"].answers == 1 and rows["other_annotator"].pending == 0


def test_an_empty_span_answer_counts_and_is_accepted_when_the_consensus_is_empty(spans_cast):
    project = spans_cast.project
    item = ItemFactory(project=project, text="Nothing to see.")
    Annotation.objects.create(project=project, item=item, annotator=spans_cast.annotator, submission_id=uuid.uuid4())
    ItemConsensus.objects.create(project=project, item=item, parts=[], method="weighted vote")

    row = by_name(pay_rows(project=project))["annotator"]

    assert (row.answers, row.accepted, row.pending) == (1, 1, 0)
