"""What Quorum's code never does with what users send (issue 10's permanent suite): Celery
accepts JSON only; models load from safetensors only; no module evaluates code, runs a
shell, renders a template built from a string, or fetches a URL. The scans read the
source (AST) of every module under apps/ and platform/, so a new offender fails here
with its file and line; the few legitimate uses are allow-listed with a reason."""

import ast
import pickle
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from platform.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(path for folder in ("apps", "platform") for path in (ROOT / folder).rglob("*.py"))

# Builtins that run code given as data.
CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}
# Modules that run programs or fetch URLs, and deserialisers that run code (pickle and kin).
FORBIDDEN_MODULES = {
    "subprocess": "runs programs",
    "pty": "runs programs",
    "urllib.request": "fetches URLs",
    "http.client": "fetches URLs",
    "requests": "fetches URLs",
    "httpx": "fetches URLs",
    "urllib3": "fetches URLs",
    "aiohttp": "fetches URLs",
    "pickle": "unpickling runs code",
    "cPickle": "unpickling runs code",
    "dill": "unpickling runs code",
    "joblib": "loads pickles",
    "marshal": "loads code objects",
    "shelve": "loads pickles",
}
# os functions that run programs.
OS_RUNNERS = {"system", "popen", "execv", "execve", "execvp", "execl", "execlp", "spawnv", "spawnl", "startfile"}
# Legitimate uses, each with why it is safe.
ALLOWED = {
    ("apps/learning/management/commands/demo_serve.py", "subprocess"): (
        "make demo starts the Celery worker next to the development server: a fixed argv of "
        "sys.executable and constants, no shell, nothing from a user"
    ),
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _name(node: ast.expr) -> str:
    """The dotted name a call goes to (``np.load``, ``AutoModel.from_pretrained``), or ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _name(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def _calls(path: Path) -> list[tuple[ast.Call, str]]:
    return [(node, _name(node.func)) for node in ast.walk(_tree(path)) if isinstance(node, ast.Call)]


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_no_module_evaluates_code_given_as_data():
    offences = [
        f"{_where(path, call)} calls {name}()"
        for path in SOURCES
        for call, name in _calls(path)
        if name in CODE_RUNNERS or name in {"builtins.eval", "builtins.exec"}
    ]
    assert not offences, "\n".join(offences)


def test_no_module_runs_a_shell_fetches_a_url_or_unpickles_except_the_allowed():
    offences = []
    for path in SOURCES:
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                if module in FORBIDDEN_MODULES and (relative, module) not in ALLOWED:
                    offences.append(f"{_where(path, node)} imports {module} ({FORBIDDEN_MODULES[module]})")
        offences += [
            f"{_where(path, call)} calls {name}() (runs a program)"
            for call, name in _calls(path)
            if name.startswith("os.") and name.split(".", 1)[1] in OS_RUNNERS
        ]
    assert not offences, "\n".join(offences)


def test_no_template_is_built_from_a_string():
    """Templates come from files under templates/; a Template made from a string at run time
    could carry what a user wrote into the template engine."""
    offences = [
        f"{_where(path, call)} calls {name}()"
        for path in SOURCES
        for call, name in _calls(path)
        if name.split(".")[-1] in {"Template", "from_string"} or name.endswith("Engine")
    ]
    assert not offences, "\n".join(offences)


def test_models_load_from_safetensors_only():
    """Every model load says use_safetensors=True (and stays offline); nothing calls
    torch.load, and numpy never allows pickles."""
    offences = []
    for path in SOURCES:
        for call, name in _calls(path):
            loads_weights = name.endswith("from_pretrained") and not name.startswith("AutoTokenizer")
            if loads_weights and _keyword(call, "use_safetensors") is not True:
                offences.append(f"{_where(path, call)} {name}() without use_safetensors=True")
            if name.endswith("from_pretrained") and _keyword(call, "local_files_only") is not True:
                offences.append(f"{_where(path, call)} {name}() without local_files_only=True")
            if name in {"torch.load", "torch.hub.load", "load_state_dict_from_url"}:
                offences.append(f"{_where(path, call)} calls {name}() (unpickles)")
            if name.endswith(("np.load", "numpy.load")) and _keyword(call, "allow_pickle") is True:
                offences.append(f"{_where(path, call)} lets numpy load pickles")
    assert not offences, "\n".join(offences)


def test_the_scans_see_the_code_they_guard():
    """The scans above would pass on an empty list: make sure they read the real modules,
    including the loaders they check."""
    names = {name for path in SOURCES for _, name in _calls(path)}
    assert len(SOURCES) > 50
    assert "AutoModel.from_pretrained" in names and "subprocess.Popen" in names


# --- Celery: JSON only ---------------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file: the proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_celery_accepts_and_sends_json_only():
    conf = celery_app.conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.result_accept_content in (None, ["json"])  # None: the same as accept_content
    assert conf.result_serializer == "json" and conf.event_serializer == "json"


@pytest.mark.parametrize("serializer", ["pickle", "yaml"])
def test_the_workers_consumer_refuses_a_message_that_is_not_json(tmp_path, serializer):
    """A message in another format (a pickle that would run code, YAML) is refused by the
    consumer the worker builds (``app.amqp.TaskConsumer``, which takes the app's
    accept_content), and its body is never deserialised; a JSON message goes through."""
    if serializer == "yaml":
        pytest.importorskip("yaml")
    marker = tmp_path / "unpickled"
    queue = Queue("quorum-test", Exchange("quorum-test"), "quorum-test")
    received, refused = [], []
    with Connection("memory://") as connection:
        producer = connection.Producer()
        body = _Payload(marker) if serializer == "pickle" else {"task": "x"}
        producer.publish(
            body, exchange=queue.exchange, routing_key="quorum-test", declare=[queue], serializer=serializer
        )
        producer.publish(
            {"task": "ok"}, exchange=queue.exchange, routing_key="quorum-test", declare=[queue], serializer="json"
        )
        consumer = celery_app.amqp.TaskConsumer(
            connection.default_channel,
            queues=[queue],
            callbacks=[lambda payload, message: (received.append(payload), message.ack())],
            on_decode_error=lambda message, error: (refused.append((message.content_type, error)), message.ack()),
        )
        with consumer:
            for _ in range(2):
                connection.drain_events(timeout=2)

    assert received == [{"task": "ok"}]
    assert len(refused) == 1 and "Refusing to deserialize" in str(refused[0][1])
    assert not marker.exists()


def test_the_pickle_payload_would_run_if_it_were_deserialised(tmp_path):
    """The control for the test above: the payload is a real exploit."""
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_Payload(marker)))  # noqa: S301 (the point of the test)
    assert marker.exists()
