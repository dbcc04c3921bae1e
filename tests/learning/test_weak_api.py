"""The weak-supervision API: who may read and write, and what a bad body gets."""

import pytest

from apps.learning.models import LabellingFunction, WeakLabel
from apps.projects.models import Item

from ..helpers import api_for

DOCUMENT = {
    "labelling_functions": [
        {"name": "sport-words", "kind": "keywords", "label": "Sports", "keywords": ["match", "season", "coach"]},
        {"name": "money-words", "kind": "keywords", "label": "Business", "keywords": ["shares", "profit"]},
    ]
}


def url(project, tail=""):
    return f"/api/projects/{project.pk}/{tail}"


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("manager", 200, 200), ("reviewer", 200, 403), ("annotator", 403, 403), ("outsider", 404, 404)],
)
def test_functions_permissions(cast, role, read, write):
    client = api_for(cast.member(role))
    assert client.put(url(cast.project, "labelling-functions/"), DOCUMENT, format="json").status_code == write
    assert client.get(url(cast.project, "labelling-functions/")).status_code == read
    assert client.get(url(cast.project, "labelling-functions/analysis/")).status_code == read
    assert client.get(url(cast.project, "weak-labels/")).status_code == read
    body = {"source": "partner", "predictions": [{"item": 1, "label": "Sports"}]}
    assert client.put(url(cast.project, "external-predictions/"), body, format="json").status_code in (
        (write,) if write != 200 else (400,)  # item 1 is not this project's: refused, but allowed to ask
    )
    expected = LabellingFunction.objects.filter(project=cast.project).count()
    assert expected == (2 if role == "manager" else 0)


def test_import_export_apply_and_list_weak_labels(cast, django_capture_on_commit_callbacks):
    client = api_for(cast.manager)
    for n, text in enumerate(["The coach praised the season", "Shares rose on profit news", "Rain fell"]):
        Item.objects.create(project=cast.project, text=text, external_id=f"i{n}")
    assert client.put(url(cast.project, "labelling-functions/"), DOCUMENT, format="json").json() == {
        "created": 2, "updated": 0, "unchanged": 0,
    }  # fmt: skip
    exported = client.get(url(cast.project, "labelling-functions/")).json()["labelling_functions"]
    assert [f["name"] for f in exported] == ["money-words", "sport-words"]
    assert exported[1]["keywords"] == ["match", "season", "coach"] and exported[1]["label"] == "Sports"
    assert client.get(url(cast.project, "labelling-functions/application/")).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(url(cast.project, "labelling-functions/application/"))
    assert started.status_code == 202
    assert client.get(url(cast.project, "labelling-functions/application/")).json()["state"] == "succeeded"
    listed = client.get(url(cast.project, "weak-labels/")).json()
    assert listed["count"] == WeakLabel.objects.filter(project=cast.project).count() == 2
    rows = {row["external_id"]: row for row in listed["results"]}
    assert rows["i0"]["answer"][0]["label_id"] == cast.labels["Sports"].pk and 0 < rows["i0"]["confidence"] <= 1
    analysis = client.get(url(cast.project, "labelling-functions/analysis/")).json()
    assert {row["name"]: row["coverage"] for row in analysis} == pytest.approx(
        {"money-words": 1 / 3, "sport-words": 1 / 3}
    )


def test_a_bad_document_is_a_400_naming_the_function_and_changes_nothing(cast):
    client = api_for(cast.manager)
    bad = {"labelling_functions": [DOCUMENT["labelling_functions"][0], {"name": "oops", "kind": "regex",
                                                                          "label": "Sports", "pattern": "(open"}]}  # fmt: skip
    answer = client.put(url(cast.project, "labelling-functions/"), bad, format="json")
    assert answer.status_code == 400 and "oops" in str(answer.json())
    assert not LabellingFunction.objects.filter(project=cast.project).exists()
    assert client.put(url(cast.project, "labelling-functions/"), {"nope": 1}, format="json").status_code == 400


def test_applying_with_no_function_says_so(cast):
    answer = api_for(cast.manager).post(url(cast.project, "labelling-functions/application/"))
    assert answer.status_code == 400 and "no enabled labelling function" in str(answer.json())
