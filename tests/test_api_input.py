"""Every query parameter of the API is validated (400 with a message keyed by the parameter),
ids out of range are a 404, and lists filter and order only by the fields on their list: a
parameter that walks relations (``annotator__password``) is refused or ignored, never applied.
The schema describes the parameters as they are checked."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from apps.annotation.models import Annotation, ItemConsensus
from apps.annotation.selectors import annotations_list
from apps.learning.models import WeakLabel
from apps.projects.models import Item
from apps.projects.selectors import items_list
from platform.drf import Pagination
from tests.helpers import api_for
from tests.projects.test_permissions import MATRIX, url_kwargs, world  # noqa: F401  (world is a fixture)

TOO_BIG = str(2**64)


def _api_patterns(resolver: URLResolver | None = None):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _api_patterns(entry)
        elif isinstance(entry, URLPattern) and (entry.name or "").startswith("api-"):
            yield entry


def _list_endpoints() -> list[str]:
    """URL names of every paginated list (their views declare the pagination)."""
    return sorted(p.name for p in _api_patterns() if getattr(p.callback.cls, "pagination_class", None) is Pagination)


def _get(user, name: str, kwargs: dict, params: dict | None = None):
    return api_for(user).get(reverse(name, kwargs=kwargs), params or {})


@pytest.fixture
def lists(world):  # noqa: F811  (the permission matrix's fixture)
    """Every list holds rows, so a filter that were applied would show."""
    item = Item.objects.filter(project=world.project).first()
    ItemConsensus.objects.create(
        project=world.project, item=item, parts=[{"start": None, "end": None, "label_id": world.labels["World"].pk}],
        confidence=1.0, method="majority_vote", is_provisional=False,
    )  # fmt: skip
    for name in ("api-training-run", "api-consolidation", "api-version"):
        url_kwargs(world, name)  # creates a run, a consolidation, a version
    other = Item.objects.filter(project=world.project).exclude(pk=item.pk).first()
    WeakLabel.objects.create(
        project=world.project, item=other, answer=[{"start": None, "end": None, "label_id": world.labels["World"].pk}],
        confidence=0.8, method="dawid_skene",
    )  # fmt: skip
    return world


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("api-annotations", {"item": "abc"}, "item"),
        ("api-annotations", {"item": TOO_BIG}, "item"),
        ("api-annotations", {"item": "0"}, "item"),
        ("api-annotations", {"annotator": "x" * 151}, "annotator"),
        ("api-annotations", {"ordering": "annotator__password"}, "ordering"),
        ("api-items", {"state": "zzz"}, "state"),
        ("api-items", {"gold": "maybe"}, "gold"),
        ("api-items", {"q": "x" * 501}, "q"),
        ("api-items", {"ordering": "text"}, "ordering"),
        ("api-items", {"label": TOO_BIG}, "label"),
        ("api-items", {"label": "0"}, "label"),
        ("api-items", {"confidence_below": "2"}, "confidence_below"),
        ("api-items", {"disagreement": "maybe"}, "disagreement"),
        ("api-items", {"suggestion": "maybe"}, "suggestion"),
        ("api-items", {"annotator": "x" * 151}, "annotator"),
        ("api-items", {"page": "abc"}, "page"),
        ("api-items", {"page": "0"}, "page"),
        ("api-items", {"page": "last"}, "page"),
        ("api-items", {"page": TOO_BIG}, "page"),
        ("api-items", {"page_size": "abc"}, "page_size"),
        ("api-items", {"page_size": "0"}, "page_size"),
        ("api-items", {"page_size": "501"}, "page_size"),
        ("api-consensus", {"disagreement": "maybe"}, "disagreement"),
        ("api-imports", {"page_size": "-1"}, "page_size"),
        ("api-versions", {"page": "1.5"}, "page"),
        ("api-export", {"format": "exe"}, "format"),
    ],
)
def test_it_refuses_bad_query_parameters_with_a_message(lists, name, params, field):
    response = _get(lists.manager, name, url_kwargs(lists, name), params)

    assert response.status_code == 400, response.content[:300]
    assert field in response.json() and response.json()[field]


@pytest.mark.parametrize("name", ["api-projects", *_list_endpoints()])
def test_every_list_validates_its_page_parameters(lists, name):
    kwargs = url_kwargs(lists, name) if name != "api-projects" else {}

    assert _get(lists.manager, name, kwargs, {"page_size": "x"}).status_code == 400
    assert _get(lists.manager, name, kwargs, {"page": "-3"}).status_code == 400
    past_the_end = _get(lists.manager, name, kwargs, {"page": "999"})
    assert past_the_end.status_code == 404 and past_the_end.json()["detail"]


def test_the_annotations_filter_that_gave_500_works(lists):
    annotation = Annotation.objects.filter(project=lists.project).first()

    response = _get(lists.manager, "api-annotations", {"project_id": lists.project.pk}, {"item": annotation.item_id})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [annotation.pk]


def test_allow_listed_orderings_apply(lists):
    kwargs = {"project_id": lists.project.pk}
    items = _get(lists.manager, "api-items", kwargs, {"ordering": "-id"}).json()["results"]
    answers = _get(lists.manager, "api-annotations", kwargs, {"ordering": "-id"}).json()["results"]

    assert [row["id"] for row in items] == sorted(
        Item.objects.filter(project=lists.project).values_list("pk", flat=True)
    )[::-1]
    assert [row["id"] for row in answers] == sorted((row["id"] for row in answers), reverse=True) and len(answers) == 2


# Parameters that would filter or order through relations if a view handed the query string
# to the ORM; each would change these lists, which hold rows that do not match.
RELATION_WALKS = {
    "annotator__password__startswith": "!",
    "annotator__username": "nobody",
    "project__name": "nothing",
    "item__text__icontains": "zzz",
    "user__password__startswith": "!",
    "requested_by__password__startswith": "!",
    "id": "0",
    "pk__in": "0",
    "o": "annotator__password",
    "order_by": "-annotator__password",
    "sort": "annotator__password",
    "search": "zzz",
}


@pytest.mark.parametrize("name", ["api-projects", *_list_endpoints()])
def test_no_list_filters_or_orders_by_fields_off_its_list(lists, name):
    kwargs = url_kwargs(lists, name) if name != "api-projects" else {}
    baseline = _get(lists.manager, name, kwargs).json()
    assert baseline["count"] >= 1, f"{name} has no rows to filter"

    walked = _get(lists.manager, name, kwargs, RELATION_WALKS)
    ordered = _get(lists.manager, name, kwargs, {"ordering": "annotator__password"})

    assert walked.status_code == 200 and walked.json() == baseline
    # An ordering is refused where a list offers one, and ignored where it does not.
    assert ordered.status_code == 400 or ordered.json() == baseline
    if ordered.status_code == 400:
        assert "ordering" in ordered.json()


def test_selectors_refuse_orderings_off_their_list(lists):
    with pytest.raises(ValueError):
        items_list(project=lists.project, ordering="annotator__password")
    with pytest.raises(ValueError):
        annotations_list(project=lists.project, ordering="-annotator__password")


API_IDS = sorted({(name, method) for name, method, _ in MATRIX if name.startswith("api-")})


@pytest.mark.parametrize(("name", "method"), API_IDS, ids=[f"{m} {n}" for n, m in API_IDS])
def test_ids_out_of_range_are_not_found(world, name, method):  # noqa: F811
    """Each id of the path in turn is too big for the database; the answer is a 404 (or a
    400 where the body is checked first), never a server error."""
    real = url_kwargs(world, name)
    client = api_for(world.manager)
    client.raise_request_exception = False
    for key in [k for k in real if k.endswith("_id") or k == "number"]:
        path = reverse(name, kwargs={**real, key: 2**64})
        response = getattr(client, method)(path, {} if method != "get" else None, format="json")

        expected = {404} if method in ("get", "delete") or key == "project_id" else {400, 404}
        assert response.status_code in expected, (key, path, response.status_code, response.content[:200])
        assert response.json()


def test_the_schema_describes_the_parameters_as_they_are_checked(cast):
    response = api_for(cast.manager).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    paths = schema["paths"]

    def params(path: str) -> dict:
        return {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    annotations = params("/api/projects/{project_id}/annotations/")
    items = params("/api/projects/{project_id}/items/")
    assert annotations["item"]["type"] == "integer" and annotations["item"]["maximum"] == 2**63 - 1
    assert set(annotations["ordering"]["enum"]) == {"id", "-id"}
    assert items["page_size"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert set(items["state"]["enum"]) >= {"open", "in_progress", "complete"}
    # Lists answer the page envelope, and errors are described.
    ok = paths["/api/projects/{project_id}/items/"]["get"]["responses"]
    assert ok["200"]["content"]["application/json"]["schema"]["$ref"].endswith("PaginatedItemOutputList")
    assert {"400", "403", "404"} <= set(ok)


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_the_schema_and_its_docs_need_an_account(cast, url):
    anonymous = APIClient().get(url)
    signed_in = api_for(cast.annotator).get(url)

    assert anonymous.status_code == 403
    assert b"/api/projects/" not in anonymous.content
    assert signed_in.status_code == 200


def test_an_api_url_that_matches_no_route_is_a_json_404(cast):
    client = api_for(cast.manager)

    api = client.get("/api/projects/-1/labels/")
    page = client.get("/projects/-1/")

    assert api.status_code == 404 and api.json() == {"detail": "Not found."}
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
