"""Settings, deployment checks, the OpenAPI schema and the demo loader."""

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.projects.models import Item, Project

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", DJANGO_SETTINGS_MODULE="platform.settings.prod", ALLOWED_HOSTS="q.example.com")

    assert result.returncode != 0
    assert "Production needs SECRET_KEY" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_SETTINGS_MODULE="platform.settings.prod",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="quorum.example.com",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_task_is_killed_before_redis_would_deliver_it_again():
    """At least once, never twice at the same time: a task's hard time limit ends it before
    Redis gives its unacknowledged message to another worker."""
    result = manage(
        "shell", "-c",
        "from django.conf import settings as s; "
        "print(s.CELERY_TASK_TIME_LIMIT, s.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], "
        "s.CELERY_TASK_ACKS_LATE, s.CELERY_TASK_REJECT_ON_WORKER_LOST)",
        DJANGO_SETTINGS_MODULE="platform.settings.dev", CELERY_BROKER_URL="redis://127.0.0.1:1/0",
    )  # fmt: skip

    limit, visibility, acks_late, reject = result.stdout.splitlines()[-1].split()
    assert 0 < int(limit) < int(visibility) and acks_late == reject == "True", result.stderr


def test_the_openapi_schema_is_valid_and_warning_free():
    result = manage("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)

    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_are_up_to_date():
    result = manage("makemigrations", "--check", "--dry-run")

    assert result.returncode == 0, result.stdout


def test_the_platform_package_still_offers_the_standard_library_functions():
    import platform

    assert hasattr(platform, "__path__")  # Quorum's package
    assert platform.python_version().startswith("3.11")
    assert platform.system() == "Linux"


@pytest.mark.django_db
def test_demo_load_builds_both_projects_and_is_idempotent():
    call_command("demo_load", stdout=io.StringIO())
    call_command("demo_load", stdout=io.StringIO())

    topics = Project.objects.get(name="Newsroom topics")
    entities = Project.objects.get(name="Newsroom entities")
    assert Project.objects.count() == 2
    assert Item.objects.filter(project=topics).count() == 320
    assert Item.objects.filter(project=topics, is_gold=True).count() == 32
    assert Item.objects.filter(project=entities, is_gold=True).count() == 15
    assert topics.memberships.count() == 7 and entities.memberships.count() == 7
    assert set(topics.labels.values_list("name", flat=True)) == {"World", "Sports", "Business", "Science"}
    # Simulated annotators answered part of each project through the real services.
    from apps.annotation.models import Annotation

    assert Annotation.objects.filter(project=topics).count() == 560
    assert Annotation.objects.filter(project=entities).count() == 110
    assert topics.items.filter(state="complete").exists() and topics.items.filter(state="open").exists()


@pytest.mark.django_db
def test_project_from_file_loads_a_csv_with_labels_from_a_column(tmp_path):
    from tests.factories import UserFactory

    UserFactory(username="boss")
    path = tmp_path / "pool.csv"
    path.write_text('label,text\nSports,"A late goal"\nWorld,"Talks stall, again"\nSports,"Cup draw made"\n')

    call_command(
        "project_from_file",
        str(path),
        "--name",
        "Pool",
        "--labels-from",
        "label",
        "--manager",
        "boss",
        stdout=io.StringIO(),
    )

    project = Project.objects.get(name="Pool")
    assert list(project.labels.values_list("name", flat=True)) == ["Sports", "World"]
    assert [item.metadata["label"] for item in Item.objects.filter(project=project)] == ["Sports", "World", "Sports"]
