"""Importing items: one test per format, one per kind of bad file. Every rejected file
must leave the project exactly as it was."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from apps.projects.imports import import_job_run, items_import_start
from apps.projects.jobs import JobState
from apps.projects.models import GoldLabel, ImportJob, Item
from apps.projects.services import project_update

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def upload(name: str, content: bytes | str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def fixture(name: str) -> SimpleUploadedFile:
    return upload(name, (FIXTURES / name).read_bytes())


def run(cast, file, **kwargs) -> ImportJob:
    return items_import_start(project=cast.project, user=cast.manager, upload=file, **kwargs)


def gold_names(item: Item) -> list[str]:
    return sorted(g.label.name for g in GoldLabel.objects.filter(item=item).select_related("label"))


def assert_nothing_written(cast, job: ImportJob) -> None:
    assert job.state == JobState.FAILED
    assert not Item.objects.filter(project=cast.project).exists()
    assert not GoldLabel.objects.filter(item__project=cast.project).exists()


# --- formats -----------------------------------------------------------------------


def test_it_imports_csv_with_ids_gold_and_metadata(cast):
    job = run(cast, fixture("topics.csv"))

    assert job.state == JobState.SUCCEEDED, job.errors
    assert job.rows_imported == 6
    items = {item.external_id: item for item in Item.objects.filter(project=cast.project)}
    assert set(items) == {"t1", "t2", "t3", "t4", "t5", "t6"}
    assert items["t1"].metadata == {"source": "wire"}
    assert items["t1"].is_gold and gold_names(items["t1"]) == ["World"]
    assert not items["t3"].is_gold and gold_names(items["t3"]) == []
    assert all(item.import_job_id == job.pk and item.state == "open" for item in items.values())


def test_it_imports_jsonl_and_merges_nested_metadata(cast):
    job = run(cast, fixture("topics.jsonl"))

    assert job.state == JobState.SUCCEEDED, job.errors
    items = {item.external_id: item for item in Item.objects.filter(project=cast.project)}
    assert items["j2"].metadata == {"source": "wire", "lang": "en"}
    assert gold_names(items["j1"]) == ["Sports"]
    assert gold_names(items["j3"]) == ["Science"]


def test_it_imports_label_studio_json_tasks(cast):
    job = run(cast, fixture("topics_labelstudio.json"))

    assert job.state == JobState.SUCCEEDED, job.errors
    items = list(Item.objects.filter(project=cast.project).order_by("id"))
    assert [item.external_id for item in items] == ["101", "102", ""]
    assert items[0].metadata == {"region": "east"}
    assert gold_names(items[1]) == ["Sports"]


def test_it_imports_conll_sentences_with_bio_spans(spans_cast):
    job = run(spans_cast, fixture("entities.conll"))

    assert job.state == JobState.SUCCEEDED, job.errors
    first, second = Item.objects.filter(project=spans_cast.project).order_by("id")
    assert first.text == "Maria Okafor visited Lisbon on 3 May ."
    spans = [(g.start, g.end, g.label.name) for g in first.gold_labels.select_related("label").order_by("start")]
    assert spans == [(0, 12, "Person"), (21, 27, "Location"), (31, 36, "Date")]
    assert [(g.start, g.end) for g in second.gold_labels.all()] == [(4, 21)]
    assert second.text[4:21] == "Harbor City Kings"


def test_it_imports_span_gold_from_jsonl(spans_cast):
    job = run(spans_cast, fixture("entities.jsonl"))

    assert job.state == JobState.SUCCEEDED, job.errors
    item = Item.objects.get(project=spans_cast.project, external_id="e1")
    assert [(g.start, g.end) for g in item.gold_labels.order_by("start")] == [(0, 11), (19, 33), (37, 41)]


def test_it_imports_multi_label_gold_from_a_csv_cell(multi_cast):
    job = run(multi_cast, upload("m.csv", 'text,gold\n"Budget cuts hit hospitals",Economy|Health\n'))

    assert job.state == JobState.SUCCEEDED, job.errors
    assert gold_names(Item.objects.get(project=multi_cast.project)) == ["Economy", "Health"]


def test_it_reads_semicolon_csv_with_a_byte_order_mark_and_custom_columns(cast):
    content = "\ufeffcode;body;answer\nx1;Rain delays the final;Sports\n".encode()
    job = run(
        cast, upload("semi.csv", content), options={"text_field": "body", "id_field": "code", "gold_field": "answer"}
    )

    assert job.state == JobState.SUCCEEDED, (job.message, job.errors)
    item = Item.objects.get(project=cast.project)
    assert (item.external_id, item.text, gold_names(item)) == ("x1", "Rain delays the final", ["Sports"])


def test_gold_labels_match_names_case_insensitively(cast):
    job = run(cast, upload("c.jsonl", '{"text": "Derby ends level", "gold": "sPoRtS"}\n'))

    assert job.state == JobState.SUCCEEDED
    assert gold_names(Item.objects.get(project=cast.project)) == ["Sports"]


# --- bad files: each rejected whole, with row numbers -------------------------------


def test_it_rejects_a_file_that_is_not_utf8(cast):
    job = run(cast, upload("latin.csv", "text\nCaf\xe9 opens\n".encode("latin-1")))

    assert_nothing_written(cast, job)
    assert "not UTF-8" in job.message


def test_it_rejects_a_csv_without_a_text_column(cast):
    job = run(cast, upload("cols.csv", "title,summary\nA,B\n"))

    assert_nothing_written(cast, job)
    assert "no 'text' column" in job.message and "title, summary" in job.message


def test_it_rejects_empty_texts_and_reports_their_rows(cast):
    job = run(cast, upload("e.csv", 'text\n"Fine text"\n"   "\n"Another"\n""\n'))

    assert_nothing_written(cast, job)
    # Row 5 is a line with an empty cell; rows of nothing but commas are skipped as blank.
    assert job.errors == [{"row": 3, "message": "the text is empty"}]
    assert job.error_count == 1


def test_it_rejects_an_unknown_gold_label(cast):
    job = run(cast, upload("bad.csv", "text,gold\nA story,Weather\nOther,World\n"))

    assert_nothing_written(cast, job)
    assert job.errors[0]["row"] == 2
    assert "unknown label 'Weather'" in job.errors[0]["message"]


def test_it_rejects_duplicate_ids_within_the_file(cast):
    job = run(
        cast,
        upload("d.jsonl", '{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "a", "text": "three"}\n'),
    )

    assert_nothing_written(cast, job)
    assert job.errors == [{"row": 3, "message": "the id 'a' is used already on row 1"}]


def test_duplicate_ids_are_found_on_rows_with_other_problems_too(cast):
    job = run(cast, upload("d.csv", "id,text,gold\nx1,Fine,Weather\nx2,,\nx1,Again,\n"))

    assert_nothing_written(cast, job)
    assert [(e["row"], e["message"][:20]) for e in job.errors] == [
        (2, "unknown label 'Weath"),
        (3, "the text is empty"),
        (4, "the id 'x1' is used "),
    ]


def test_it_rejects_ids_that_the_project_already_has(cast):
    assert run(cast, upload("first.jsonl", '{"id": "a", "text": "one"}\n')).state == JobState.SUCCEEDED

    job = run(cast, upload("second.jsonl", '{"id": "z", "text": "new"}\n{"id": "a", "text": "again"}\n'))

    assert job.state == JobState.FAILED
    assert list(Item.objects.filter(project=cast.project).values_list("external_id", flat=True)) == ["a"]
    assert "already has an item with the id 'a'" in job.errors[0]["message"]


@override_settings(QUORUM_TEXT_MAX_CHARS=50)
def test_it_rejects_oversized_texts(cast):
    job = run(cast, upload("long.jsonl", json.dumps({"text": "x" * 51}) + "\n"))

    assert_nothing_written(cast, job)
    assert job.errors == [{"row": 1, "message": "the text has 51 characters; the limit is 50"}]


@override_settings(QUORUM_IMPORT_MAX_BYTES=100)
def test_it_refuses_an_oversized_file_before_storing_it(cast):
    with pytest.raises(ValidationError) as error:
        run(cast, upload("big.csv", "text\n" + "y" * 200 + "\n"))

    assert "the limit is" in str(error.value)
    assert not ImportJob.objects.exists()


def test_it_refuses_an_empty_file(cast):
    with pytest.raises(ValidationError, match="empty"):
        run(cast, upload("empty.csv", b""))


def test_it_refuses_a_file_whose_format_cannot_be_told(cast):
    with pytest.raises(ValidationError, match="format"):
        run(cast, upload("items.xlsx", b"PK\x03\x04"))


def test_it_refuses_conll_for_a_classification_project(cast):
    with pytest.raises(ValidationError, match="CoNLL"):
        run(cast, fixture("entities.conll"))


def test_it_reports_broken_json_lines_with_their_line_numbers(cast):
    job = run(cast, upload("broken.jsonl", '{"text": "ok"}\n{"text": "missing brace"\n[1, 2]\n'))

    assert_nothing_written(cast, job)
    assert [e["row"] for e in job.errors] == [2, 3]
    assert "not valid JSON" in job.errors[0]["message"]
    assert "expected a JSON object" in job.errors[1]["message"]


def test_it_rejects_a_json_file_that_is_not_an_array(cast):
    job = run(cast, upload("obj.json", '{"text": "one object"}'))

    assert_nothing_written(cast, job)
    assert "must be an array" in job.message


def test_it_rejects_truncated_json(cast):
    job = run(cast, upload("cut.json", '[{"text": "one"}, {"text": "tw'))

    assert_nothing_written(cast, job)
    assert "breaks after item 1" in job.message


def test_it_rejects_rows_with_more_cells_than_the_header(cast):
    job = run(cast, upload("cells.csv", 'text\nfine\n"a","b"\n'))

    assert_nothing_written(cast, job)
    assert job.errors[0]["row"] == 3


def test_it_rejects_out_of_range_and_overlapping_spans(spans_cast):
    rows = [
        {"text": "Short text", "gold": [{"start": 0, "end": 40, "label": "Person"}]},
        {
            "text": "Ada Lovelace",
            "gold": [{"start": 0, "end": 8, "label": "Person"}, {"start": 4, "end": 12, "label": "Person"}],
        },
        {"text": "Ada", "gold": [{"start": 0, "end": 3, "label": "Planet"}]},
    ]
    job = run(spans_cast, upload("s.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))

    assert_nothing_written(spans_cast, job)
    messages = [e["message"] for e in job.errors]
    assert "outside the text" in messages[0]
    assert "overlap" in messages[1]
    assert "unknown label 'Planet'" in messages[2]


def test_overlapping_spans_pass_where_the_project_allows_them(spans_cast):
    project_update(project=spans_cast.project, data={"allow_overlapping_spans": True})
    row = {
        "text": "Ada Lovelace",
        "gold": [{"start": 0, "end": 12, "label": "Person"}, {"start": 4, "end": 12, "label": "Organization"}],
    }

    job = run(spans_cast, upload("s.jsonl", json.dumps(row) + "\n"))

    assert job.state == JobState.SUCCEEDED, job.errors


def test_it_lists_every_problem_but_stores_a_bounded_report(cast):
    with override_settings(QUORUM_IMPORT_MAX_REPORTED_ERRORS=5):
        job = run(cast, upload("many.csv", "text\n" + '" "\n' * 12))

    assert_nothing_written(cast, job)
    assert job.error_count == 12
    assert len(job.errors) == 5
    assert "12 rows of 12" in job.message


def test_a_file_with_only_a_header_imports_nothing_and_says_so(cast):
    job = run(cast, upload("header.csv", "text,gold\n"))

    assert_nothing_written(cast, job)
    assert job.message == "The file has no items to import."


# --- jobs -------------------------------------------------------------------------------


def test_large_files_go_to_a_worker_after_commit(cast, django_capture_on_commit_callbacks):
    rows = "".join(json.dumps({"id": f"r{n}", "text": f"Story number {n}"}) + "\n" for n in range(3000))
    with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=1000):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = run(cast, upload("big.jsonl", rows))
        assert job.state == JobState.QUEUED
        assert not Item.objects.filter(project=cast.project).exists()
        for callback in callbacks:
            callback()  # the Celery task, run eagerly in tests

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert Item.objects.filter(project=cast.project).count() == 3000


def test_running_a_finished_job_again_writes_nothing(cast):
    job = run(cast, fixture("topics.csv"))

    again = import_job_run(job_id=job.pk)

    assert again is not None and again.state == JobState.SUCCEEDED
    assert Item.objects.filter(project=cast.project).count() == 6


def test_a_job_interrupted_while_running_can_be_run_again(cast, django_capture_on_commit_callbacks):
    """A worker that died mid-import left the job RUNNING, with no heartbeat since, and
    (its transaction rolled back) no items; the redelivered task takes it over and
    finishes it exactly once. A job that still beats is left to its live worker."""
    with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=10), django_capture_on_commit_callbacks(execute=False):
        job = run(cast, fixture("topics.csv"))
    ImportJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1, heartbeat_at=timezone.now())
    assert import_job_run(job_id=job.pk).state == JobState.RUNNING  # alive: not ours
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 2
    assert Item.objects.filter(project=cast.project).count() == 6
