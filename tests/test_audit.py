"""make audit (.ci/audit): bandit fails on any finding not accepted with a reason, and pip-audit
says NOT AUDITED, instead of passing, when no vulnerability service answers."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def bandit(*targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "bandit"), "-c", str(ROOT / "pyproject.toml"), "-q", "-r", *targets],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_bandit_accepts_apps_and_platform_as_they_are():
    result = bandit("apps", "platform")

    assert result.returncode == 0, result.stdout


def test_bandit_fails_on_a_finding_without_a_reason(tmp_path):
    (tmp_path / "risky.py").write_text("import subprocess\n\nsubprocess.call(input(), shell=True)\n")

    result = bandit(str(tmp_path))

    assert result.returncode == 1
    assert "B602" in result.stdout  # subprocess with shell=True


def test_bandit_passes_a_finding_accepted_on_its_line(tmp_path):
    (tmp_path / "accepted.py").write_text(
        "import random\n\nORDER = random.random()  # nosec B311 # an order, not a secret\n"
    )

    assert bandit(str(tmp_path)).returncode == 0


def test_the_audit_says_not_audited_when_no_vulnerability_service_answers():
    # A proxy that refuses every connection: neither PyPI's JSON API nor OSV answers.
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "https_proxy": dead, "HTTPS_PROXY": dead, "no_proxy": "", "VENV": str(BIN.parent)}

    result = subprocess.run(
        ["bash", ".ci/audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )  # fmt: skip
    strict = subprocess.run(
        ["bash", ".ci/audit"], cwd=ROOT, env={**env, "AUDIT_REQUIRE_SERVICE": "1"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pip-audit: NOT AUDITED" in result.stdout
    assert "no known vulnerabilities" not in result.stdout
    assert "bandit: no findings" in result.stdout
    assert strict.returncode == 1
