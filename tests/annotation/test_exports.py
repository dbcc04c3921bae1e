"""Exports: every item with its answers, in each format, streamed."""

import csv
import io
import json
import uuid

from apps.annotation.exports import CHUNK, export_stream
from apps.annotation.models import Annotation, AnnotationLabel, ItemConsensus
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


# --- formulas in CSV (OWASP's CSV injection) --------------------------------------------------

FORMULAS = ["=1+2", "+SUM(A1)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tTAB=1", "\rCR=1"]


def csv_rows(body):
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_escapes_cells_that_spreadsheets_would_run(cast):
    label = cast.labels["World"]
    label.name = '=HYPERLINK("http://evil.example")'
    label.save(update_fields=["name"])
    for text in FORMULAS:
        item = ItemFactory(project=cast.project, text=text, external_id=text[:5], is_gold=True)
        GoldLabel.objects.create(item=item, label=label)

    rows = csv_rows(read(cast.project, "csv"))

    assert [row["text"] for row in rows] == ["'" + text for text in FORMULAS]
    assert [row["external_id"] for row in rows] == ["'" + text[:5] for text in FORMULAS]
    assert {row["gold"] for row in rows} == {'\'=HYPERLINK("http://evil.example")'}


def test_csv_leaves_plain_numbers_and_ordinary_text_alone(cast):
    item = ItemFactory(project=cast.project, text="-3", external_id="+1.5e3", metadata={"score": -2})
    ItemConsensus.objects.create(project=cast.project, item=item, method="mv", confidence=-0.25)
    ItemFactory(project=cast.project, text="A - B = C, said the @user", external_id="-x")

    first, second = csv_rows(read(cast.project, "csv"))

    assert (first["text"], first["external_id"], first["consensus_confidence"]) == ("-3", "+1.5e3", "-0.25")
    assert first["metadata"] == '{"score": -2}'
    assert (second["text"], second["external_id"]) == ("A - B = C, said the @user", "'-x")


def test_csv_formula_escape_can_be_turned_off_for_programs(cast):
    for text in FORMULAS:
        ItemFactory(project=cast.project, text=text)

    body = "".join(export_stream(project=cast.project, fmt="csv", formula_escape=False))

    assert [row["text"] for row in csv_rows(body)] == FORMULAS


def test_csv_formula_escape_option_on_the_download_and_the_api(cast):
    ItemFactory(project=cast.project, text="=1+2")
    url = f"/projects/{cast.project.pk}/export/csv/"
    api_url = f"/api/projects/{cast.project.pk}/export/"

    def texts(response):
        assert response.status_code == 200
        return [row["text"] for row in csv_rows(b"".join(response.streaming_content).decode())]

    page = client_for(cast.manager)
    api = api_for(cast.manager)
    assert texts(page.get(url)) == ["'=1+2"]
    assert texts(page.get(url, {"formula_escape": "false"})) == ["=1+2"]
    assert texts(api.get(api_url, {"format": "csv"})) == ["'=1+2"]
    assert texts(api.get(api_url, {"format": "csv", "formula_escape": "false"})) == ["=1+2"]
    assert texts(api.get(api_url, {"format": "csv", "formula_escape": "true"})) == ["'=1+2"]


def test_csv_formula_escape_refuses_a_value_it_does_not_know(cast):
    bad = "x" * 10_000

    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/csv/", {"formula_escape": bad})
    api = api_for(cast.manager).get(
        f"/api/projects/{cast.project.pk}/export/", {"format": "csv", "formula_escape": bad}
    )

    assert page.status_code == 400 and b"formula_escape" in page.content
    assert api.status_code == 400 and "formula_escape" in api.json()


def test_export_page_offers_the_formula_option_for_csv(cast):
    page = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/")

    assert b'name="formula_escape" value="false"' in page.content
