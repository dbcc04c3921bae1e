"""Exports: every item with its answers, in each format, streamed."""

import csv
import io
import json
import uuid

from apps.annotation.exports import CHUNK, export_stream
from apps.annotation.models import Annotation, AnnotationLabel
from apps.projects.models import GoldLabel
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for


def read(project, fmt):
    return "".join(export_stream(project=project, fmt=fmt))


def annotate(project, item, user, label, start=None, end=None):
    annotation = Annotation.objects.create(
        project=project, item=item, annotator=user, duration_ms=2300, submission_id=uuid.uuid4()
    )
    AnnotationLabel.objects.create(annotation=annotation, label=label, start=start, end=end)


def test_jsonl_carries_gold_and_every_annotation_with_its_annotator(cast):
    item = ItemFactory(
        project=cast.project, text="Derby ends level", external_id="d1", is_gold=True, metadata={"src": "x"}
    )
    GoldLabel.objects.create(item=item, label=cast.labels["Sports"])
    annotate(cast.project, item, cast.annotator, cast.labels["Sports"])
    annotate(cast.project, item, cast.other_annotator, cast.labels["World"])

    (row,) = [json.loads(line) for line in read(cast.project, "jsonl").splitlines()]

    assert row["external_id"] == "d1" and row["metadata"] == {"src": "x"} and row["gold"] == "Sports"
    assert [(a["annotator"], a["value"], a["duration_ms"]) for a in row["annotations"]] == [
        ("annotator", "Sports", 2300),
        ("other_annotator", "World", 2300),
    ]


def test_csv_has_one_row_per_item(cast):
    for n in range(3):
        ItemFactory(project=cast.project, text=f"line\nbreak {n}")

    rows = list(csv.DictReader(io.StringIO(read(cast.project, "csv"))))

    assert [row["text"] for row in rows] == ["line\nbreak 0", "line\nbreak 1", "line\nbreak 2"]
    assert rows[0]["annotations"] == "" and rows[0]["is_gold"] == "no"


def test_export_runs_a_constant_number_of_queries_per_chunk(cast, django_assert_max_num_queries):
    for _ in range(30):
        item = ItemFactory(project=cast.project)
        annotate(cast.project, item, cast.annotator, cast.labels["World"])

    with django_assert_max_num_queries(8):
        assert len(read(cast.project, "jsonl").splitlines()) == 30
    assert CHUNK >= 1000


def test_conll_round_trips_spans_as_bio_tags(spans_cast):
    text = "Lena Brandt joined Northwind Labs in Oslo ."
    item = ItemFactory(project=spans_cast.project, text=text, is_gold=True)
    for start, end, name in [(0, 11, "Person"), (19, 33, "Organization"), (37, 41, "Location")]:
        GoldLabel.objects.create(item=item, label=spans_cast.labels[name], start=start, end=end)
    ItemFactory(project=spans_cast.project, text="No answer yet")

    conll = read(spans_cast.project, "conll")

    assert conll == (
        "Lena\tB-Person\nBrandt\tI-Person\njoined\tO\nNorthwind\tB-Organization\nLabs\tI-Organization\n"
        "in\tO\nOslo\tB-Location\n.\tO\n\n"
    )


def test_hugging_face_layout_loads_with_datasets(cast, tmp_path):
    import datasets

    gold = ItemFactory(project=cast.project, text="Rates rise", is_gold=True, metadata={"a": 1})
    GoldLabel.objects.create(item=gold, label=cast.labels["Business"])
    ItemFactory(project=cast.project, text="Unlabelled", metadata={"b": "two"})
    path = tmp_path / "export.hf.jsonl"
    path.write_text(read(cast.project, "hf"))

    dataset = datasets.load_dataset("json", data_files=str(path), split="train")

    assert dataset.num_rows == 2
    assert dataset["text"] == ["Rates rise", "Unlabelled"]
    assert dataset["label"] == ["Business", None]
    assert json.loads(dataset["metadata"][1]) == {"b": "two"}


def test_hugging_face_layout_for_spans_has_tokens_and_ner_tags(spans_cast, tmp_path):
    import datasets

    item = ItemFactory(project=spans_cast.project, text="Ada Lovelace wrote", is_gold=True)
    GoldLabel.objects.create(item=item, label=spans_cast.labels["Person"], start=0, end=12)
    ItemFactory(project=spans_cast.project, text="Nothing here")
    path = tmp_path / "spans.hf.jsonl"
    path.write_text(read(spans_cast.project, "hf"))

    dataset = datasets.load_dataset("json", data_files=str(path), split="train")

    assert dataset["tokens"][0] == ["Ada", "Lovelace", "wrote"]
    assert dataset["ner_tags"][0] == ["B-Person", "I-Person", "O"]
    assert dataset["has_answer"] == [True, False]


# --- the export page, download and API ----------------------------------------------------


def test_export_page_offers_conll_for_span_projects(spans_cast):
    page = client_for(spans_cast.manager).get(f"/projects/{spans_cast.project.pk}/export/")

    assert b"/export/conll/" in page.content and b"/export/hf/" in page.content


def test_export_page_hides_conll_for_classification(cast):
    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/")

    assert b"/export/conll/" not in page.content
    assert client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/conll/").status_code == 404


def test_export_download_streams_csv(cast):
    ItemFactory(project=cast.project, text="Hello, world", metadata={"source": "web"})

    response = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/csv/")

    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == (
        "id,external_id,text,metadata,is_gold,gold,state,consensus,consensus_confidence,annotation_count,annotations"
    )
    assert '"Hello, world","{""source"": ""web""}"' in body


def test_export_streams_jsonl(cast):
    ItemFactory(project=cast.project, text="One")
    ItemFactory(project=cast.project, text="Two")

    response = api_for(cast.manager).get(f"/api/projects/{cast.project.pk}/export/", {"format": "jsonl"})

    assert response.status_code == 200 and response.streaming
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [row["text"] for row in rows] == ["One", "Two"]
    assert "attachment" in response["Content-Disposition"]


def test_export_rejects_an_unknown_format(cast):
    response = api_for(cast.manager).get(f"/api/projects/{cast.project.pk}/export/", {"format": "conll"})

    assert response.status_code == 400
