"""Production settings hold no defaults an attacker knows: no key written in the repository,
no host wildcard, no demo accounts (the deployment checklist itself: tests/test_platform.py)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = secrets.token_urlsafe(50)


def prod(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` under production settings, on a SQLite file of its own in ``tmp_path``."""
    environment = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    environment.update(
        DJANGO_SETTINGS_MODULE="platform.settings.prod",
        QUORUM_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="quorum.example.com",
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def keys_written_in_the_repository() -> set[str]:
    """Every literal given to SECRET_KEY in a tracked file (settings, docs, compose files)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    patterns = [
        r"""SECRET_KEY\s*[=:]\s*["']([^"'$]+)["']""",  # SECRET_KEY = "...", "SECRET_KEY": "..."
        r"""env_str\(\s*["']SECRET_KEY["']\s*,\s*["']([^"']+)["']""",  # a default from the environment
        r"""^\s*SECRET_KEY=([^\s$`"']+)\s*$""",  # .env lines in the docs
    ]
    keys = set()
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".env", ".txt", ".toml", ".cfg", ""}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in patterns:
            keys.update(re.findall(pattern, text, re.M))
    return keys


def test_production_runs_with_a_random_key_and_named_hosts(tmp_path):
    result = prod("check", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("hosts", ["*", "quorum.example.com,*", "*.example.com"])
def test_production_refuses_a_wildcard_host(tmp_path, hosts):
    result = prod("check", tmp_path=tmp_path, ALLOWED_HOSTS=hosts)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS must name the site's hosts; '*' (any host) is refused" in result.stderr


def test_production_refuses_every_key_written_in_the_repository(tmp_path):
    keys = keys_written_in_the_repository()
    assert "dev-only-insecure-key-do-not-use-in-production" in keys  # the scan finds them

    for key in keys:
        result = prod("check", tmp_path=tmp_path, SECRET_KEY=key)

        assert result.returncode != 0, key
        assert "SECRET_KEY" in result.stderr and "ImproperlyConfigured" in result.stderr, key


@pytest.mark.parametrize(
    "key",
    [
        "bench-" + "x" * 60,  # long enough, but padded
        "django-insecure-" + secrets.token_urlsafe(50),  # what startproject writes
        "a1" * 30,
    ],
)
def test_production_refuses_a_key_that_is_not_random(tmp_path, key):
    result = prod("check", tmp_path=tmp_path, SECRET_KEY=key)

    assert result.returncode != 0
    assert "SECRET_KEY is not a random key" in result.stderr


@pytest.mark.parametrize("command", ["demo_load", "demo_serve"])
def test_production_refuses_the_demo_and_creates_no_account(tmp_path, command):
    result = prod(command, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "The demo is refused under platform.settings.prod" in result.stderr
    assert not (tmp_path / "prod.sqlite3").exists()  # refused before touching the database


@pytest.mark.django_db
def test_migrations_create_no_account():
    assert not get_user_model().objects.exists()
