"""Work inside a request is bounded (an inline import past its time budget moves to a
worker), and uploads are stored under generated names and deleted when their job ends."""

import json
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.projects.imports import items_import_start
from apps.projects.jobs import JobState, jobs_recover
from apps.projects.models import ImportJob, Item
from tests.helpers import api_for


def upload(name: str, content: bytes | str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode() if isinstance(content, str) else content)


def run(cast, file, **kwargs) -> ImportJob:
    return items_import_start(project=cast.project, user=cast.manager, upload=file, **kwargs)


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def stored_files(media: Path) -> list[Path]:
    return [path for path in media.rglob("*") if path.is_file()]


# --- time spent inside a request -----------------------------------------------------


def test_an_inline_import_past_its_time_budget_moves_to_a_worker(cast, django_capture_on_commit_callbacks):
    content = "".join(json.dumps({"id": f"r{n}", "text": f"Story {n}"}) + "\n" for n in range(50))
    with override_settings(QUORUM_IMPORT_INLINE_MAX_SECONDS=0):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = run(cast, upload("small.jsonl", content))

        assert job.state == JobState.QUEUED and job.stage == "Continuing in the background"
        assert job.attempts == 0  # the worker gets every attempt a job has
        assert not Item.objects.filter(project=cast.project).exists()
        for callback in callbacks:
            callback()  # the worker's task, run eagerly in tests: it has no deadline

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.rows_imported == 50
    assert Item.objects.filter(project=cast.project).count() == 50


def test_the_api_answers_202_when_an_inline_import_moves_to_a_worker(cast, django_capture_on_commit_callbacks):
    with override_settings(QUORUM_IMPORT_INLINE_MAX_SECONDS=0), django_capture_on_commit_callbacks(execute=False):
        response = api_for(cast.manager).post(
            f"/api/projects/{cast.project.pk}/imports/",
            {"file": upload("a.csv", "text\nOne\nTwo\n")},
            format="multipart",
        )

    assert response.status_code == 202 and response.json()["state"] == "queued"
    assert not Item.objects.filter(project=cast.project).exists()


# --- stored uploads ------------------------------------------------------------------


def test_uploads_are_deleted_when_the_import_succeeds_or_fails(cast, media):
    succeeded = run(cast, upload("good.csv", "text\nOne\n"))
    failed = run(cast, upload("bad.csv", "text,gold\nOne,Nope\n"))

    assert succeeded.state == JobState.SUCCEEDED and failed.state == JobState.FAILED
    assert stored_files(media) == []
    assert ImportJob.objects.filter(file="").count() == 2


def test_a_file_problem_and_a_crash_delete_the_upload_too(cast, media, monkeypatch):
    assert run(cast, upload("cut.json", '[{"text": "one"}, {"text": "tw')).state == JobState.FAILED

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("apps.projects.imports._rows_write", crash)
    with pytest.raises(RuntimeError):
        run(cast, upload("fine.csv", "text\nOne\n"))

    assert ImportJob.objects.filter(state=JobState.FAILED).count() == 2
    assert stored_files(media) == []


@pytest.mark.parametrize("name", ["../../etc/passwd.json", "<script>alert(1)</script>.json", "/tmp/x.json"])
def test_the_users_file_name_never_reaches_the_filesystem(cast, media, name, django_capture_on_commit_callbacks):
    with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=0), django_capture_on_commit_callbacks(execute=False) as sent:
        file = upload(name, '[{"text": "One"}]')
        job = run(cast, file)

    assert re.fullmatch(r"imports/\d{4}/\d{2}/[0-9a-f]{32}\.json", job.file.name)
    assert job.original_name == file.name  # shown to people, never used as a path
    assert [path.name for path in stored_files(media)] == [Path(job.file.name).name]
    assert not any(part in str(path) for path in media.rglob("*") for part in ("passwd", "script", "tmp/x"))
    for callback in sent:
        callback()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and stored_files(media) == []


def test_the_upload_of_a_job_failed_as_stale_is_deleted(cast, media, django_capture_on_commit_callbacks, settings):
    with override_settings(QUORUM_IMPORT_INLINE_MAX_BYTES=0), django_capture_on_commit_callbacks(execute=False):
        job = run(cast, upload("slow.csv", "text\nOne\n"))
    # Its worker took it, then died: running, no heartbeat for longer than allowed, no attempts left.
    settings.QUORUM_JOB_MAX_ATTEMPTS = 1
    ImportJob.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, attempts=1, heartbeat_at="2000-01-01T00:00:00Z", started_at="2000-01-01T00:00:00Z"
    )
    assert stored_files(media)

    jobs_recover()

    job.refresh_from_db()
    assert job.state == JobState.FAILED and stored_files(media) == []
