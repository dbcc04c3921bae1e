"""The items list and item page show each item's consensus (or the reviewer's final answer)
and filter on answers: consensus label, consensus confidence, disagreement, suggestion,
annotator. The page and the API take the same filters; the API refuses bad values."""

import uuid

import pytest
from django.utils import timezone

from apps.annotation.models import Annotation, AnnotationLabel, ItemConsensus, Suggestion
from apps.projects.models import Item
from apps.projects.selectors import AnswerFilters, items_list
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for

pytestmark = pytest.mark.django_db


def given(item, user, *parts):
    """An answer of ``user`` to ``item``: label parts, or (start, end, label) spans."""
    annotation = Annotation.objects.create(project=item.project, item=item, annotator=user, submission_id=uuid.uuid4())
    for part in parts:
        start, end, label = part if isinstance(part, tuple) else (None, None, part)
        AnnotationLabel.objects.create(annotation=annotation, label=label, start=start, end=end)
    Item.objects.filter(pk=item.pk).update(annotation_count=item.annotations.count())


def agreed(item, label, confidence, **fields):
    return ItemConsensus.objects.create(
        project=item.project, item=item, parts=[{"label_id": label.pk}], confidence=confidence, **fields
    )


@pytest.fixture
def items(cast):
    """i0 agreed World (sure, suggested Sports), i1 split World/Sports (unsure), i2 said
    Sports twice and World once but a reviewer settled it as Business, i3 has one answer
    and a suggestion, i4 nothing."""
    world, sports, business, science = (cast.labels[n] for n in ("World", "Sports", "Business", "Science"))
    i0, i1, i2, i3, i4 = (ItemFactory(project=cast.project, text=f"Story {n}") for n in range(5))
    given(i0, cast.annotator, world), given(i0, cast.other_annotator, world)
    given(i1, cast.annotator, world), given(i1, cast.other_annotator, sports)
    given(i2, cast.annotator, sports), given(i2, cast.other_annotator, sports), given(i2, cast.manager, world)
    given(i3, cast.annotator, science)
    agreed(i0, world, 0.95, method="dawid_skene", is_provisional=False)
    agreed(i1, world, 0.55, method="dawid_skene", is_provisional=False)
    agreed(
        i2, business, 1.0, method="reviewer", is_provisional=False, reviewed_by=cast.reviewer,
        reviewed_at=timezone.now(), review_note="about a merger",
    )  # fmt: skip
    Suggestion.objects.create(item=i0, parts=[{"label_id": sports.pk}], confidence=0.4, source="model v2")
    Suggestion.objects.create(item=i3, parts=[{"label_id": world.pk}], confidence=0.8, source="model v2")
    return [i0, i1, i2, i3, i4]


def ids(queryset):
    return [item.pk for item in queryset]


def listed(cast, **filters):
    return ids(items_list(project=cast.project, answers=AnswerFilters(**filters)))


def test_each_filter_on_answers(cast, items):
    i0, i1, i2, i3, i4 = (item.pk for item in items)

    assert listed(cast, label_id=cast.labels["World"].pk) == [i0, i1]
    assert listed(cast, label_id=cast.labels["Business"].pk) == [i2]  # the final answer counts
    assert listed(cast, label_id=cast.labels["Sports"].pk) == []
    assert listed(cast, confidence_below=0.6) == [i1]
    assert listed(cast, confidence_below=1.0) == [i0, i1]
    assert listed(cast, disagreement=True) == [i1, i2]
    assert listed(cast, suggestion=True) == [i0, i3]
    assert listed(cast, suggestion=False) == [i1, i2, i4]
    assert listed(cast, annotator="other_annotator") == [i0, i1, i2]
    assert listed(cast, annotator="manager") == [i2]
    assert listed(cast, label_id=cast.labels["World"].pk, disagreement=True, annotator="annotator") == [i1]
    assert listed(cast) == [i0, i1, i2, i3, i4]


def test_filters_stay_inside_the_project(cast, items):
    elsewhere = ItemFactory(project=cast.other_project)
    given(elsewhere, cast.outsider, cast.other_project.labels.first())
    given(elsewhere, cast.annotator, cast.other_project.labels.last())

    assert elsewhere.pk not in listed(cast, disagreement=True)
    assert elsewhere.pk not in listed(cast, annotator="annotator")


def test_disagreement_compares_whole_answers_for_multi_label(cast, multi_cast):
    politics, economy = multi_cast.labels["Politics"], multi_cast.labels["Economy"]
    same, more, none = (ItemFactory(project=multi_cast.project) for _ in range(3))
    given(same, multi_cast.annotator, politics, economy), given(same, multi_cast.other_annotator, economy, politics)
    given(more, multi_cast.annotator, politics), given(more, multi_cast.other_annotator, politics, economy)
    given(none, multi_cast.annotator, economy)

    assert listed(multi_cast, disagreement=True) == [more.pk]


def test_disagreement_compares_spans_and_empty_answers(spans_cast):
    person = spans_cast.labels["Person"]
    empty, one_empty, same, moved = (ItemFactory(project=spans_cast.project, text="Ada met Alan.") for _ in range(4))
    given(empty, spans_cast.annotator), given(empty, spans_cast.other_annotator)
    given(one_empty, spans_cast.annotator, (0, 3, person)), given(one_empty, spans_cast.other_annotator)
    given(same, spans_cast.annotator, (0, 3, person)), given(same, spans_cast.other_annotator, (0, 3, person))
    given(moved, spans_cast.annotator, (0, 3, person)), given(moved, spans_cast.other_annotator, (8, 12, person))

    assert listed(spans_cast, disagreement=True) == [one_empty.pk, moved.pk]


# --- the page ---------------------------------------------------------------------------------------


def page(cast, **params):
    return client_for(cast.reviewer).get(f"/projects/{cast.project.pk}/items/", params).content.decode()


def test_the_list_shows_the_consensus_its_method_and_confidence_and_the_override(cast, items):
    html = page(cast)

    rows = {item.pk: html[html.index(f">{item.pk}</a>") :].split("</tr>")[0] for item in items}
    assert "World" in rows[items[0].pk] and "(Dawid-Skene)" in rows[items[0].pk] and "95%" in rows[items[0].pk]
    assert "55%" in rows[items[1].pk]
    assert "Business" in rows[items[2].pk] and "final · reviewer" in rows[items[2].pk]
    assert "—" in rows[items[3].pk]


def test_the_page_filters_and_keeps_the_filters_in_its_links(cast, items):
    for n in range(60):
        item = ItemFactory(project=cast.project, text=f"More {n}")
        given(item, cast.other_annotator, cast.labels["World"])

    html = page(cast, annotator="other_annotator", suggestion="no")

    assert "Items 1–50 of 62" in html  # i1, i2 and the 60 new ones
    assert "annotator=other_annotator" in html and "suggestion=no" in html and "page=2" in html
    assert f">{items[0].pk}</a>" not in html


def test_a_bad_value_on_the_page_is_left_out_and_said(cast, items):
    html = page(cast, confidence_below="lots", label="999999", disagreement="yes")

    assert "(left out)" in html and "Consensus label" in html
    assert f">{items[1].pk}</a>" in html and f">{items[2].pk}</a>" in html and f">{items[0].pk}</a>" not in html


def test_the_htmx_filter_returns_only_the_table(cast, items):
    response = client_for(cast.reviewer).get(
        f"/projects/{cast.project.pk}/items/", {"disagreement": "yes"}, HTTP_HX_REQUEST="true"
    )

    assert response.content.lstrip().startswith(b'<div id="item-table">')


def test_the_item_page_shows_the_final_answer_and_who_settled_it(cast, items):
    html = client_for(cast.manager).get(f"/projects/{cast.project.pk}/items/{items[2].pk}/").content.decode()
    card = html[html.index('id="consensus"') :]

    assert "Final answer" in card and "Business" in card and "reviewer" in card and "about a merger" in card
    assert f"/review/{items[2].pk}/" in card


def test_the_item_page_shows_the_consensus_method_confidence_and_suggestion(cast, items):
    html = client_for(cast.reviewer).get(f"/projects/{cast.project.pk}/items/{items[0].pk}/").content.decode()
    card = html[html.index('id="consensus"') :]

    assert "(Dawid-Skene)" in card and "95%" in card and "World" in card
    assert "Suggestion" in card and "model v2" in card and "40%" in card


def test_an_item_without_consensus_says_when_it_comes(cast, items):
    html = client_for(cast.reviewer).get(f"/projects/{cast.project.pk}/items/{items[4].pk}/").content.decode()

    assert "No consensus yet" in html


# --- the API ------------------------------------------------------------------------------------------


def api(cast, **params):
    response = api_for(cast.reviewer).get(f"/api/projects/{cast.project.pk}/items/", params)
    return response


def test_the_api_takes_the_same_filters(cast, items):
    i0, i1, i2, i3, i4 = (item.pk for item in items)

    def listed_by_api(**params):
        response = api(cast, **params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert listed_by_api(label=cast.labels["World"].pk) == [i0, i1]
    assert listed_by_api(confidence_below="0.6") == [i1]
    assert listed_by_api(disagreement="true") == [i1, i2]
    assert listed_by_api(suggestion="no") == [i1, i2, i4]
    assert listed_by_api(annotator="manager") == [i2]
    assert listed_by_api(suggestion="yes", ordering="-id") == [i3, i0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label": "999999"}, "label"),
        ({"label": "x"}, "label"),
        ({"confidence_below": "1.5"}, "confidence_below"),
        ({"confidence_below": "lots"}, "confidence_below"),
        ({"disagreement": "maybe"}, "disagreement"),
        ({"suggestion": "maybe"}, "suggestion"),
        ({"annotator": "x" * 151}, "annotator"),
    ],
)
def test_the_api_refuses_bad_filter_values(cast, items, params, field):
    response = api(cast, **params)

    assert response.status_code == 400 and response.json()[field]


def test_another_projects_label_is_refused(cast, items):
    response = api(cast, label=cast.other_project.labels.first().pk)

    assert response.status_code == 400 and "label" in response.json()
