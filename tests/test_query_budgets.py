"""Query-count budgets for the hot pages and endpoints.

A budget is how many SQL queries one request may make. Each test builds the same
scenario twice, in a project of 10 items (30 where a model is trained) and in one of
1,000, makes the request once in each, and checks that both cost the same number of
queries (a request whose cost grows with the project gets slower as the project does)
and exactly what the budget says.

The budgets below are what each request costs today, so a change that adds a query (or
saves one) fails here. To change one, edit its number and its comment in the same commit, saying what the
new query is for. When the two counts differ, fix the query (a missing select_related or
prefetch_related, a query in a loop) rather than the budget.

The counts include the SAVEPOINT and RELEASE statements of ``transaction.atomic`` (tests
run inside a transaction, so where production sends BEGIN and COMMIT the test sends a
savepoint pair). They are the same on SQLite and PostgreSQL; should they ever differ,
keep one budget per ``connection.vendor`` rather than a looser one for both.
"""

import difflib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.annotation import services as annotation_services
from apps.annotation.consensus import consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.models import Annotation, AnnotationLabel, Assignment, AssignmentState, ItemConsensus, Suggestion
from apps.learning import services as learning_services
from apps.learning import training
from apps.projects.jobs import JobState
from apps.projects.models import GoldLabel, Item, ItemState, Project
from apps.projects.services import project_update
from tests.helpers import Cast, api_for, client_for, make_cast

# own_var_dir is autouse: every test here keeps VAR_DIR (model files, embeddings) in a
# temporary folder, and the demo texts are embedded once per test process.
from tests.learning.conftest import news, own_var_dir  # noqa: F401

pytestmark = pytest.mark.django_db

# Session and user, gate, labels, lease sweep, two leases (own lease, budget lock and count, candidate, insert,
# lease count), progress and the project's counts, recent answers, the membership (a join link's completion
# code), session clock saved.
WORKSPACE = 31
# Session and user, gate, labels; the submit (locks, answer and its label, assignment and item, provisional
# consensus, counters); then a sweep and a new lease, the project's answers re-read (the submit added one),
# progress and the project's counts, recent answers.
WORKSPACE_SUBMIT = 43
# Gate, labels, lease sweep, a new lease (own lease, budget lock and count, candidate, insert, lease count).
API_TASK_NEXT = 13
# Gate, labels, the submit as in the workspace (without the labels loaded twice), a sweep and a new lease.
API_SUBMIT_AND_NEXT = 36
# Session and user, gate, labels and members who answer (the filters' menus), item counts by state, gold count,
# one page of items, their consensus (with reviewer).
ITEMS_PAGE = 9
# The same with every filter on answers: the per-state counts are kept, the matches counted (up to the cap).
ITEMS_PAGE_FILTERED = 10
# Gate, labels, count, one page of items, their gold labels.
API_ITEMS = 5
# Session and user, gate, item and its gold labels, labels, consensus, qualities, answers and their labels,
# the next item in disagreement, annotators' notes on the item.
REVIEW_PAGE = 12
# Session and user, gate, latest and active run, labels, qualities, memberships, durations, answers per annotator,
# confidences, items in disagreement, and for them the labels and every answer (how their answers split).
REPORTS_PAGE = 14
# Session and user, gate, versions, training runs (with requester and version), pool ranking (with version).
LEARNING_PAGE = 6
# Gate, the champion, labels.
PREDICT = 3

SIZES = (10, 1000)


@dataclass
class Measured:
    queries: list[str]
    response: Any

    @property
    def count(self) -> int:
        return len(self.queries)


def measure(request: Callable[[], Any]) -> Measured:
    """The queries of one request. The periodic work falls due in every measured request
    alike: the cached count of items left is dropped (so it is counted again) and the
    expired-lease sweep, run at most every few seconds per project, is due."""
    cache.clear()
    annotation_services._last_sweep.clear()
    with CaptureQueriesContext(connection) as captured:
        response = request()
    return Measured([query["sql"] for query in captured.captured_queries], response)


def _shapes(queries: list[str]) -> list[str]:
    """Queries without their column lists and numbers, to compare and read."""
    return [
        re.sub(r"\d+", "N", re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", " ".join(q.split())))[:240] for q in queries
    ]


def assert_budget(budget: int, small: Measured, large: Measured) -> None:
    small_count, large_count = small.count, large.count
    grown = "\n".join(
        difflib.unified_diff(_shapes(small.queries), _shapes(large.queries), "small", "large", lineterm="", n=0)
    )
    assert small_count == large_count, (
        f"{small_count} queries in the small project, {large_count} in the large:\n{grown}"
    )
    listed = "\n".join(_shapes(large.queries))
    # Exact, as zulip's budgets are: a query saved lowers the budget in the same commit.
    assert large_count == budget, f"{large_count} queries, the budget is {budget}:\n{listed}"


# --- scenarios ----------------------------------------------------------------------------------


def project_with_items(n: int, *, overlap: int, answered_by: tuple[str, ...] = ()) -> Cast:
    """The standard cast's project with ``n`` items: every fifth one gold (with its gold
    label), the others with a model suggestion, and every item answered, in bulk, by each
    member named in ``answered_by`` (the second of them disagrees on odd items).

    make_cast finds its users by name, so a second project in the same test has the
    same members: its counts must not depend on the first project either."""
    cast = make_cast()
    project_update(
        project=cast.project,
        data={
            "overlap": overlap,
            "gold_ratio": 0.0,  # no random gold draw: the same path every time
            "budget_max_annotations": 100_000,  # leases check the budget
            "consolidation_method": "dawid_skene",
        },
    )
    cast.project = project = Project.objects.get(pk=cast.project.pk)
    labels = list(cast.labels.values())
    items = Item.objects.bulk_create(
        Item(project=project, external_id=f"story-{i}", text=f"Story {i}: the derby ended level.", is_gold=i % 5 == 4)
        for i in range(n)
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(item=item, label=labels[i % 4]) for i, item in enumerate(items) if item.is_gold
    )
    Suggestion.objects.bulk_create(
        Suggestion(item=item, parts=[{"start": None, "end": None, "label_id": labels[i % 4].pk}], confidence=0.6, source="model v1")
        for i, item in enumerate(items)
        if not item.is_gold
    )  # fmt: skip
    members = [getattr(cast, role) for role in answered_by]
    answers = [(i, j, item, member) for i, item in enumerate(items) for j, member in enumerate(members)]
    annotations = Annotation.objects.bulk_create(
        Annotation(project=project, item=item, annotator=member, submission_id=uuid.uuid4(), is_gold=item.is_gold, duration_ms=3000 + 500 * j)
        for i, j, item, member in answers
    )  # fmt: skip
    AnnotationLabel.objects.bulk_create(
        AnnotationLabel(annotation=annotation, label=labels[(i + (1 if j == 1 and i % 2 else 0)) % 4])
        for annotation, (i, j, _, _) in zip(annotations, answers, strict=True)
    )
    if members:
        state = ItemState.COMPLETE if len(members) >= overlap else ItemState.IN_PROGRESS
        Item.objects.filter(project=project).update(annotation_count=len(members), state=state)
    return cast


def half_done(n: int) -> Cast:
    """k = 2, the other annotator has answered every item and the annotator three of them
    (through the services), so each answer now completes its item."""
    cast = project_with_items(n, overlap=2, answered_by=("other_annotator",))
    for _ in range(3):
        task = annotation_services.task_next_for_annotator(project=cast.project, annotator=cast.annotator).assignment
        annotation_services.annotation_submit(
            project=cast.project,
            annotator=cast.annotator,
            assignment_id=task.pk,
            value="World",
            submission_id=uuid.uuid4(),
        )
    return cast


def consolidated(n: int) -> Cast:
    """k = 3, every item answered by three members, and a full consolidation run."""
    cast = project_with_items(n, overlap=3, answered_by=("annotator", "other_annotator", "manager"))
    run = consolidation_run(run_id=consolidation_request(project=cast.project).pk)
    assert run.state == JobState.SUCCEEDED, run.error
    return cast


def leases(cast: Cast) -> list[Assignment]:
    return list(
        Assignment.objects.filter(
            project=cast.project, annotator=cast.annotator, state=AssignmentState.LEASED
        ).order_by("id")
    )


# --- annotating ---------------------------------------------------------------------------------


def workspace_queries(n: int) -> Measured:
    # The annotator's first visit in this browser session: it leases a new current item and a
    # new one ahead (a reload would only hand back the leases held), and starts the session clock.
    cast = half_done(n)
    client = client_for(cast.annotator)
    measured = measure(lambda: client.get(f"/projects/{cast.project.pk}/annotate/"))
    assert len(leases(cast)) == 2
    return measured


def test_the_workspace_costs_the_same_queries_at_10_and_1000_items():
    small, large = (workspace_queries(n) for n in SIZES)

    assert_budget(WORKSPACE, small, large)
    assert small.response.status_code == large.response.status_code == 200


def workspace_submit_queries(n: int) -> Measured:
    # The script posts the current item's answer while it holds the one ahead; the reply
    # leases a new item (the one after next).
    cast = half_done(n)
    client = client_for(cast.annotator)
    client.get(f"/projects/{cast.project.pk}/annotate/")
    current, ahead = leases(cast)
    form = {
        "assignment": current.pk,
        "submission_id": str(uuid.uuid4()),
        "label": cast.labels["Sports"].pk,
        "holding": [ahead.pk],
    }
    measured = measure(
        lambda: client.post(f"/projects/{cast.project.pk}/annotate/submit/", form, HTTP_ACCEPT="application/json")
    )
    held = leases(cast)
    assert Annotation.objects.filter(assignment=current).exists()
    assert len(held) == 2 and held[0].pk == ahead.pk
    return measured


def test_a_workspace_submit_costs_the_same_queries_at_10_and_1000_items():
    small, large = (workspace_submit_queries(n) for n in SIZES)

    assert_budget(WORKSPACE_SUBMIT, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert small.response.json()["saved"] and large.response.json()["next_html"]


def api_task_next_queries(n: int) -> Measured:
    # The annotator holds no lease, so the call leases a new item.
    cast = half_done(n)
    api = api_for(cast.annotator)
    measured = measure(lambda: api.post(f"/api/projects/{cast.project.pk}/tasks/next/", {}, format="json"))
    assert len(leases(cast)) == 1
    return measured


def test_the_api_next_task_costs_the_same_queries_at_10_and_1000_items():
    small, large = (api_task_next_queries(n) for n in SIZES)

    assert_budget(API_TASK_NEXT, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert small.response.json()["task"] and large.response.json()["task"]


def api_submit_queries(n: int) -> Measured:
    # An answer with next=true: the item is answered and a new one is leased.
    cast = half_done(n)
    api = api_for(cast.annotator)
    task = api.post(f"/api/projects/{cast.project.pk}/tasks/next/", {}, format="json").json()["task"]
    body = {"assignment_id": task["assignment_id"], "value": "Sports", "submission_id": str(uuid.uuid4()), "next": True}
    measured = measure(lambda: api.post(f"/api/projects/{cast.project.pk}/annotations/", body, format="json"))
    assert Annotation.objects.filter(assignment_id=task["assignment_id"]).exists()
    assert [lease.pk for lease in leases(cast)] == [measured.response.json()["next"]["task"]["assignment_id"]]
    return measured


def test_an_api_submit_with_next_costs_the_same_queries_at_10_and_1000_items():
    small, large = (api_submit_queries(n) for n in SIZES)

    assert_budget(API_SUBMIT_AND_NEXT, small, large)
    assert small.response.status_code == large.response.status_code == 201


# --- items --------------------------------------------------------------------------------------


def items_page_queries(n: int) -> Measured:
    cast = project_with_items(n, overlap=2, answered_by=("other_annotator",))
    client = client_for(cast.reviewer)
    return measure(lambda: client.get(f"/projects/{cast.project.pk}/items/"))


def test_the_items_page_costs_the_same_queries_at_10_and_1000_items():
    small, large = (items_page_queries(n) for n in SIZES)

    assert_budget(ITEMS_PAGE, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert b"story-9" in small.response.content and b"story-49" in large.response.content


def items_page_filtered_queries(n: int) -> Measured:
    # Consolidated, so every item has a consensus; the second annotator disagrees on odd items.
    cast = consolidated(n)
    client = client_for(cast.reviewer)
    filters = {
        "label": cast.labels["Sports"].pk,
        "confidence_below": "1",
        "disagreement": "yes",
        "suggestion": "yes",
        "annotator": "other_annotator",
    }
    return measure(lambda: client.get(f"/projects/{cast.project.pk}/items/", filters))


def test_the_filtered_items_page_costs_the_same_queries_at_10_and_1000_items():
    small, large = (items_page_filtered_queries(n) for n in SIZES)

    assert_budget(ITEMS_PAGE_FILTERED, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert b"No items match" not in large.response.content and b"Answered by other_annotator" in large.response.content


def api_items_queries(n: int) -> Measured:
    cast = project_with_items(n, overlap=2, answered_by=("other_annotator",))
    api = api_for(cast.reviewer)
    return measure(lambda: api.get(f"/api/projects/{cast.project.pk}/items/"))


def test_the_api_items_list_costs_the_same_queries_at_10_and_1000_items():
    small, large = (api_items_queries(n) for n in SIZES)

    assert_budget(API_ITEMS, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert len(small.response.json()["results"]) == 10 and len(large.response.json()["results"]) == 50
    assert large.response.json()["results"][4]["gold"] == "World"  # gold answers come from the prefetch


# --- review and reports -------------------------------------------------------------------------


def review_page_queries(n: int) -> Measured:
    # An item the annotators disagree on (odd items), with three answers and a consensus.
    cast = consolidated(n)
    item = Item.objects.filter(project=cast.project).order_by("id")[1]
    assert ItemConsensus.objects.filter(item=item).exists()
    client = client_for(cast.reviewer)
    return measure(lambda: client.get(f"/projects/{cast.project.pk}/review/{item.pk}/"))


def test_the_review_page_costs_the_same_queries_at_10_and_1000_items():
    small, large = (review_page_queries(n) for n in SIZES)

    assert_budget(REVIEW_PAGE, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert b"3 answers" in small.response.content and b"3 answers" in large.response.content


def reports_page_queries(n: int) -> Measured:
    cast = consolidated(n)
    client = client_for(cast.reviewer)
    return measure(lambda: client.get(f"/projects/{cast.project.pk}/reports/"))


def test_the_reports_page_costs_the_same_queries_at_10_and_1000_items():
    small, large = (reports_page_queries(n) for n in SIZES)

    assert_budget(REPORTS_PAGE, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert b"Krippendorff" in large.response.content and b"Items in most disagreement" in large.response.content


# --- learning -----------------------------------------------------------------------------------

# The smallest project here that a model trains in and is judged on gold items: 10
# labelled items and 20 gold ones (with fewer gold items a held-out fifth of the labels,
# picked by id, would judge it, and which fifth that is would differ between runs).
TRAINED_SIZES = (30, 1000)


def trained(n: int) -> Cast:
    """A champion trained on demo news (one training run), then the project grown to ``n``
    items. The items added after training have no embeddings: neither the learning page
    nor predictions read them, and embedding them would only slow the test down."""
    cast = make_cast()
    cast.project = project = Project.objects.get(pk=cast.project.pk)
    labels = {label.name: label for label in project.labels.all()}
    for position, row in enumerate(news(30)):
        item = Item.objects.create(project=project, text=row["text"], external_id=row["id"], is_gold=position >= 10)
        label = labels[row["topic"]]
        if item.is_gold:
            GoldLabel.objects.create(item=item, label=label)
        else:
            ItemConsensus.objects.create(
                project=project, item=item, parts=[{"start": None, "end": None, "label_id": label.pk}],
                confidence=1.0, method="majority_vote", is_provisional=False,
            )  # fmt: skip
    run = learning_services.training_request(project=project, user=cast.manager)
    run = training.training_run_execute(run_id=run.pk)
    assert run.state == JobState.SUCCEEDED and run.promoted, run.error
    Item.objects.bulk_create(Item(project=project, text=f"Story {i}: markets closed higher.") for i in range(n - 30))
    assert Item.objects.filter(project=project).count() == n
    return cast


def learning_page_queries(n: int) -> Measured:
    cast = trained(n)
    client = client_for(cast.reviewer)
    return measure(lambda: client.get(f"/projects/{cast.project.pk}/learning/"))


def test_the_learning_page_costs_the_same_queries_at_30_and_1000_items():
    small, large = (learning_page_queries(n) for n in TRAINED_SIZES)

    assert_budget(LEARNING_PAGE, small, large)
    assert small.response.status_code == large.response.status_code == 200
    assert b"v1" in large.response.content and b"champion" in large.response.content


def predict_queries(n: int) -> Measured:
    cast = trained(n)
    api = api_for(cast.reviewer)
    texts = {"texts": ["The striker scored twice in the cup final.", "Shares fell after the bank raised rates."]}
    return measure(lambda: api.post(f"/api/projects/{cast.project.pk}/predict/", texts, format="json"))


def test_predictions_cost_the_same_queries_at_30_and_1000_items():
    small, large = (predict_queries(n) for n in TRAINED_SIZES)

    assert_budget(PREDICT, small, large)
    assert small.response.status_code == large.response.status_code == 200
    results = large.response.json()["results"]
    assert len(results) == 2 and {result["label"] for result in results} <= {"World", "Sports", "Business", "Science"}
