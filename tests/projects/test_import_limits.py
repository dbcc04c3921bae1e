"""Hostile import files: every one is refused cleanly, within bounded memory, with a
message naming its row, and leaves the project as it was."""

import json
import tracemalloc

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.projects.imports import items_add, items_import_start
from apps.projects.jobs import JobState
from apps.projects.models import ImportJob, Item
from tests.helpers import api_for, client_for


def upload(name: str, content: bytes | str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def run(cast, file, **kwargs) -> ImportJob:
    return items_import_start(project=cast.project, user=cast.manager, upload=file, **kwargs)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_file(kind: str, depth: int) -> tuple[str, str]:
    """A file whose second item holds a value nested ``depth`` levels deep."""
    fine = {"text": "A fine story"}
    if kind == "json":
        return "deep.json", f'[{json.dumps(fine)}, {{"text": "Deep", "extra": {nested(depth)}}}]'
    if kind == "jsonl":
        return "deep.jsonl", f'{json.dumps(fine)}\n{{"text": "Deep", "extra": {nested(depth)}}}\n'
    # Label Studio tasks keep the fields under "data".
    return (
        "deep.json",
        f'[{{"data": {json.dumps(fine)}}}, {{"id": 7, "data": {{"text": "Deep", "x": {nested(depth)}}}}}]',
    )


# --- nesting depth -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("kind", ["json", "jsonl", "labelstudio"])
def test_a_deeply_nested_value_is_refused_by_row_in_bounded_memory(cast, kind, depth):
    name, content = hostile_file(kind, depth)

    tracemalloc.start()
    try:
        job = run(cast, upload(name, content))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert job.state == JobState.FAILED
    assert job.errors == [{"row": 2, "message": "the value nests deeper than 32 levels, the limit for one item"}]
    assert not Item.objects.filter(project=cast.project).exists()
    # ijson's own builder took memory in the square of the depth (about 1 GB at 20,000
    # levels); the reader now holds nothing of a value past the limit.
    assert peak < 8 * 1024 * 1024


def test_values_up_to_the_depth_limit_import(cast):
    with override_settings(QUORUM_IMPORT_MAX_DEPTH=4):
        # The item is level 1, so its metadata may nest three more levels.
        content = '{"text": "Fine", "extra": [[[1]]]}\n{"text": "Deep", "extra": [[[[1]]]]}\n'
        job = run(cast, upload("ok.jsonl", content))

    assert job.errors == [{"row": 2, "message": "the value nests deeper than 4 levels, the limit for one item"}]

    job = run(cast, upload("ok.json", '[{"text": "Fine", "extra": {"a": [[1, {}]]}}]'), options={})
    assert job.state == JobState.SUCCEEDED
    assert Item.objects.get(project=cast.project).metadata == {"extra": {"a": [[1, {}]]}}


def test_the_web_view_refuses_a_deep_file_and_shows_the_row(cast):
    client = client_for(cast.manager)
    name, content = hostile_file("jsonl", 100_000)

    response = client.post(
        f"/projects/{cast.project.pk}/import/",
        {"file": upload(name, content), "text_field": "text", "id_field": "id", "gold_field": "gold"},
    )

    job = ImportJob.objects.get(project=cast.project)
    assert response.status_code == 302 and job.state == JobState.FAILED
    assert not Item.objects.filter(project=cast.project).exists()
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"Rows to fix" in page.content and b"nests deeper than 32 levels" in page.content


@pytest.mark.parametrize("kind", ["json", "jsonl", "labelstudio"])
def test_the_api_refuses_a_deep_file_with_400_naming_the_row(cast, kind):
    name, content = hostile_file(kind, 100_000)

    response = api_for(cast.manager).post(
        f"/api/projects/{cast.project.pk}/imports/", {"file": upload(name, content)}, format="multipart"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["state"] == "failed" and body["errors"][0]["row"] == 2
    assert "nests deeper" in body["errors"][0]["message"]
    assert ImportJob.objects.get(project=cast.project).state == JobState.FAILED
    assert not Item.objects.filter(project=cast.project).exists()


# --- size of one item ----------------------------------------------------------------


@override_settings(QUORUM_IMPORT_ITEM_MAX_BYTES=10_000)
def test_a_json_item_larger_than_the_limit_stops_the_file_naming_it(cast):
    content = json.dumps([{"text": "fine"}, {"text": "x" * 100_000}, {"text": "fine too"}])

    job = run(cast, upload("big.json", content))

    assert job.state == JobState.FAILED
    assert job.message.startswith("Item 2 of the array is larger than 10,000 bytes, the limit for one item.")
    assert not Item.objects.filter(project=cast.project).exists()


@override_settings(QUORUM_IMPORT_ITEM_MAX_BYTES=10_000)
def test_a_json_line_longer_than_the_limit_is_refused_by_row(cast):
    content = '{"text": "fine"}\n{"text": "' + "x" * 50_000 + '"}\n{"text": "fine too"}\n'

    job = run(cast, upload("big.jsonl", content))

    assert job.errors == [{"row": 2, "message": "the line is longer than 10,000 bytes, the limit for one item"}]
    assert job.rows_total == 3  # reading went on past the long line, to the next one
    assert not Item.objects.filter(project=cast.project).exists()


@override_settings(QUORUM_IMPORT_ITEM_MAX_BYTES=10_000)
def test_a_csv_cell_left_open_is_refused_at_the_limit(cast):
    # An unclosed quote makes the rest of the file one cell, however many lines follow.
    content = 'text,source\nfine,a\n"never closed,b\n' + "more text\n" * 5_000

    job = run(cast, upload("open.csv", content))

    assert job.state == JobState.FAILED
    assert job.message.startswith("The row that starts on line 3 is longer than 10,000 bytes")
    assert not Item.objects.filter(project=cast.project).exists()


@override_settings(QUORUM_IMPORT_ITEM_MAX_BYTES=10_000)
def test_a_csv_row_of_many_short_quoted_cells_over_many_lines_is_refused(cast):
    content = 'text\n"a"' + ',"\n"' * 20_000 + "\n"

    job = run(cast, upload("wide.csv", content))

    assert job.state == JobState.FAILED and "is longer than 10,000 bytes" in job.message


@override_settings(QUORUM_IMPORT_ITEM_MAX_BYTES=10_000)
def test_a_conll_file_without_sentence_breaks_is_refused(spans_cast):
    job = run(spans_cast, upload("flat.conll", "Word\tO\n" * 5_000))

    assert job.state == JobState.FAILED
    assert job.message.startswith("The sentence that starts on line 1 is longer than 10,000 bytes")


def test_numbers_python_cannot_read_and_nan_are_row_problems(cast):
    content = '{"text": "a", "n": ' + "1" * 5_000 + '}\n{"text": "b", "n": NaN}\n{"text": "c"}\n'

    job = run(cast, upload("numbers.jsonl", content))

    assert [error["row"] for error in job.errors] == [1, 2]
    assert all(error["message"].startswith("not valid JSON") for error in job.errors)


# --- metadata ------------------------------------------------------------------------


def test_metadata_with_too_many_fields_is_refused_by_row(cast):
    many = {f"k{n}": n for n in range(20_000)}
    content = json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": "many", "meta": many}) + "\n"

    job = run(cast, upload("keys.jsonl", content))

    assert job.errors == [{"row": 2, "message": "the metadata has 20,000 fields; the limit is 200"}]
    assert not Item.objects.filter(project=cast.project).exists()


@override_settings(QUORUM_IMPORT_METADATA_MAX_BYTES=1_000)
def test_metadata_larger_than_the_limit_is_refused_by_row(cast):
    job = run(cast, upload("meta.json", json.dumps([{"text": "a", "note": "n" * 2_000}])))

    assert job.errors[0]["row"] == 1
    assert job.errors[0]["message"].startswith("the metadata takes 2,")
    assert job.errors[0]["message"].endswith("bytes as JSON; the limit is 1,000")


def test_items_sent_as_objects_meet_the_metadata_limit_too(cast):
    with pytest.raises(ValidationError) as refused:
        items_add(project=cast.project, rows=[{"text": "a", "metadata": {f"k{n}": n for n in range(201)}}])

    assert refused.value.message_dict == {"items": ["item 1: the metadata has 201 fields; the limit is 200"]}
    assert not Item.objects.filter(project=cast.project).exists()


@pytest.mark.parametrize(
    ("method", "url"),
    [("post", "/api/projects/{id}/imports/"), ("post", "/api/projects/{id}/stream/"), ("patch", "/api/projects/{id}/")],
)
def test_an_api_body_nested_too_deep_is_a_400_not_a_500(cast, method, url):
    body = '{"items": ' + nested(100_000) + "}"

    send = getattr(api_for(cast.manager), method)
    response = send(url.format(id=cast.project.pk), body, content_type="application/json")

    assert response.status_code == 400
    assert "nests too deeply" in response.json()["detail"]
    assert not Item.objects.filter(project=cast.project).exists()
