"""Files are never served back as something a browser would run: every view that returns a
file (exports on the page and through the API, model downloads) answers with a content type
that is not HTML, ``X-Content-Type-Options: nosniff`` and ``Content-Disposition: attachment``
with a file name of safe characters only, whatever the project is called; uploads (MEDIA)
have no URL at all, and no path reaches a file outside the static folder."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import Resolver404, get_resolver, resolve

from apps.learning.models import ModelVersion
from apps.learning.store import models_root
from apps.projects.imports import items_import_start
from apps.projects.models import ImportJob, Project
from tests.factories import ItemFactory
from tests.helpers import api_for, client_for

# What a sanitised download name may hold: no quotes, slashes, spaces, CR or LF.
SAFE_NAME = re.compile(r'attachment; filename="[A-Za-z0-9._-]+"')
HOSTILE_NAMES = [
    "../../x",
    '..\\..\\evil"; filename="payload.html',
    "News\r\nSet-Cookie: stolen=1",
    "<script>alert(1)</script>.html",
    "漢字のプロジェクト",
    "/etc/passwd",
]


def _assert_safe_download(response, *, extension: str) -> None:
    assert response.status_code == 200
    content_type = response["Content-Type"]
    assert "html" not in content_type and "xml" not in content_type and "svg" not in content_type
    assert response["X-Content-Type-Options"] == "nosniff"
    disposition = response["Content-Disposition"]
    assert SAFE_NAME.fullmatch(disposition), disposition
    name = disposition.split('"')[1]
    assert ".." not in name and name.endswith(extension)


@pytest.fixture
def hostile_project(cast):
    ItemFactory(project=cast.project, text="<script>alert(1)</script> an item that looks like HTML")
    return cast


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "hf"])
def test_export_pages_download_safely_whatever_the_project_is_called(hostile_project, name, fmt):
    cast = hostile_project
    Project.objects.filter(pk=cast.project.pk).update(name=name)

    response = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/{fmt}/")

    _assert_safe_download(response, extension=fmt.replace("hf", "hf.jsonl"))
    assert b"".join(response.streaming_content)  # the export itself still comes


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_export_api_downloads_safely_whatever_the_project_is_called(hostile_project, name):
    cast = hostile_project
    Project.objects.filter(pk=cast.project.pk).update(name=name)

    response = api_for(cast.manager).get(f"/api/projects/{cast.project.pk}/export/?format=csv")

    _assert_safe_download(response, extension="csv")


def test_a_path_in_the_project_name_does_not_reach_the_file_name(cast):
    Project.objects.filter(pk=cast.project.pk).update(name="../../x")

    response = client_for(cast.manager).get(f"/projects/{cast.project.pk}/export/jsonl/")

    name = response["Content-Disposition"].split('"')[1]
    assert name.startswith(f"x-{cast.project.pk}-") and "/" not in name


@pytest.mark.parametrize("kind", ["folder", "onnx"])
def test_model_downloads_are_zip_attachments(cast, kind):
    version = ModelVersion.objects.create(
        project=cast.project, number=3, mode="head", backbone="x", artifact=f"project-{cast.project.pk}/v3-run1"
    )
    folder = models_root() / version.artifact
    folder.mkdir(parents=True, exist_ok=True)  # VAR_DIR outlives a test
    (folder / ("model.zip" if kind == "folder" else "onnx.zip")).write_bytes(b"PK\x05\x06" + b"\0" * 18)

    response = client_for(cast.manager).get(f"/projects/{cast.project.pk}/learning/versions/3/download/{kind}/")

    _assert_safe_download(response, extension=".zip")
    assert response["Content-Type"] == "application/zip"


def test_uploads_have_no_url(cast):
    """An upload (here an import's file, HTML inside) is kept on disk for the worker, but no
    URL serves it: not under MEDIA_URL, not through the static files, not by traversal."""
    job = items_import_start(
        project=cast.project,
        user=cast.manager,
        upload=SimpleUploadedFile("page.csv", b"text\n<script>alert(1)</script>\n", content_type="text/html"),
    )
    stored = ImportJob.objects.get(pk=job.pk).file.name
    client = client_for(cast.manager)
    tries = [
        f"{settings.MEDIA_URL}{stored}" if stored else f"{settings.MEDIA_URL}imports/",
        f"{settings.MEDIA_URL}imports/",
        f"{settings.STATIC_URL}../media/{stored}",
        f"{settings.STATIC_URL}%2e%2e/%2e%2e/manage.py",
        f"{settings.STATIC_URL}..%2f..%2fmanage.py",
        "/static/../../manage.py",
    ]

    for url in tries:
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"<script>alert(1)</script>" not in response.content
    assert settings.MEDIA_URL.strip("/") not in {str(p.pattern).strip("/^$") for p in get_resolver().url_patterns}
    with pytest.raises(Resolver404):
        resolve(f"{settings.MEDIA_URL}anything.html")


def test_static_files_come_from_the_static_folder_only():
    """WhiteNoise serves STATIC_ROOT (and, in development, the apps' static folders), never
    the media folder or the repository."""
    assert Path(settings.MEDIA_ROOT).resolve() not in [Path(d).resolve() for d in settings.STATICFILES_DIRS]
    assert not str(Path(settings.STATIC_ROOT).resolve()).startswith(str(Path(settings.MEDIA_ROOT).resolve()))
    assert getattr(settings, "WHITENOISE_ROOT", None) is None  # no folder served at the site's root
