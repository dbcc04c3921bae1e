"""The conventions of Quorum's code (docs/architecture.md), checked rather than hoped for.
import-linter (``make check``) keeps the order of the apps and of the layers inside them;
these tests keep what it cannot see."""

import ast
import inspect
import re
from importlib import import_module
from pathlib import Path

import pytest

from apps.annotation import events as annotation_events
from apps.projects import events as project_events
from platform.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    path for folder in ("apps", "platform") for path in (ROOT / folder).rglob("*.py") if "migrations" not in path.parts
)
# Libraries heavy enough to load only where they run (never when a web process starts).
DEFERRED_LIBRARIES = {"torch", "transformers", "matplotlib", "snorkel"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_project(node: ast.ImportFrom | ast.Import) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").startswith(("apps", "platform"))
    return any(alias.name.startswith(("apps.", "platform.")) for alias in node.names)


def _function_imports(path: Path) -> list[tuple[str, ast.ImportFrom | ast.Import]]:
    found = []
    for function in ast.walk(_tree(path)):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [
                (function.name, node) for node in ast.walk(function) if isinstance(node, ast.Import | ast.ImportFrom)
            ]
    return found


def test_no_module_imports_a_private_name_of_another():
    offences = [
        f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}"
        for path in SOURCES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and _is_project(node)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not offences, "\n".join(offences)


def test_platform_imports_no_app():
    """platform sits below every app (import-linter cannot see it: see pyproject.toml)."""
    offences = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in SOURCES
        if path.relative_to(ROOT).parts[0] == "platform"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom | ast.Import) and _imported_names(node, path)[0].startswith("apps")
    ]
    assert not offences, "platform imports an app: " + ", ".join(offences)


def _imported_names(node: ast.ImportFrom | ast.Import, path: Path) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] if node.level == 0 else [f"{path.parent.name}.{node.module or ''}"]
    return [alias.name for alias in node.names]


def test_imports_inside_functions_only_defer_heavy_libraries():
    """No import inside a function hides a cycle: the project's own modules are imported
    at the top (receivers too: Django's autodiscovery imports them, see apps/projects/apps.py).
    A heavy library may load late, saying so on the line."""
    offences = []
    for path in SOURCES:
        lines = path.read_text().splitlines()
        for function, node in _function_imports(path):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if _is_project(node):
                offences.append(f"{where}: imports the project's own code inside {function}()")
                continue
            names = _imported_names(node, path)
            if any(name.split(".")[0] not in DEFERRED_LIBRARIES for name in names):
                offences.append(f"{where}: imports {', '.join(names)} inside {function}(); import it at the top")
            elif "deferred" not in lines[node.lineno - 1] and "deferred" not in lines[node.lineno - 2]:
                offences.append(f"{where}: a deferred import needs a comment saying why")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("name", ["views", "api"])
def test_views_and_api_views_read_through_selectors(name):
    """Views parse, call a service or a selector, and render; they do not query the ORM."""
    offences = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in SOURCES
        if path.stem == name
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute) and node.attr == "objects"
    ]
    assert not offences, "queries in views: " + ", ".join(offences)


@pytest.mark.parametrize("app", ["projects", "annotation", "learning"])
def test_services_take_keyword_arguments_only(app):
    module = import_module(f"apps.{app}.services")
    positional = [
        f"{name}({parameter})"
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and not name.startswith("_")
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    assert not positional, f"apps.{app}.services takes positional arguments: {', '.join(positional)}"


def test_every_task_sent_by_name_exists():
    """Services send Celery tasks by name (platform/tasks.py); a typo would send a task
    that no worker knows."""
    sent = {
        name for path in SOURCES for name in re.findall(r"task_send(?:_on_commit)?\(\s*\"([\w.]+)\"", path.read_text())
    }
    celery_app.loader.import_default_modules()
    assert sent and sent <= set(celery_app.tasks), sorted(sent - set(celery_app.tasks))


@pytest.mark.parametrize("events", [project_events, annotation_events], ids=["projects", "annotation"])
def test_every_event_of_a_lower_app_has_a_receiver_above(events):
    signals = {name: value for name, value in vars(events).items() if type(value).__name__ == "Signal"}
    unheard = [name for name, signal in signals.items() if not signal.has_listeners()]
    assert signals and not unheard, f"nobody listens to {', '.join(unheard)}"
