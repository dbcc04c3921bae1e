"""Labelling functions: the rules of thumb a manager writes, parsed, checked and applied.

A labelling function looks at one item's text (or at what Quorum already knows about it:
its embedding, the champion model's probabilities, an imported prediction) and either votes
one label or abstains; on an entity-span project it proposes spans instead. The functions
travel as one hand-written JSON file::

    {"labelling_functions": [
        {"name": "sports-teams", "kind": "keywords", "label": "Sports",
         "keywords": ["lakers", "chelsea"], "match": "substring"}]}

This module is pure (no Django): ``definitions_load`` / ``definition_parse`` turn that JSON
into ``RuleDefinition`` values and reject anything wrong with a ``RuleError`` that names the
function, ``definitions_dump`` writes them back, and ``rule_apply`` runs one function over a
batch of texts. Each kind is one entry of ``KINDS``: a function that parses its keys and a
function that applies it.

Invariants:
1. Nothing a file says can hang or exhaust a worker: the file, its nesting, its number of
   functions and keywords and its patterns are bounded by the limits below; a pattern runs
   under the ``regex`` package's per-call timeout (a text that hits it abstains and is counted
   in ``Application.timeouts``), and patterns whose counted repeats would make the engine
   expand a huge program at compile time are refused.
2. ``definition_parse(d.to_json(), ...) == d``: parsing fills in every default, so an
   exported file states each function completely and imports back unchanged.
"""

import json
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import regex

ABSTAIN = -1

MAX_FILE_BYTES = 1_000_000  # 1 MB of JSON
MAX_DEPTH = 20  # nesting of JSON objects and lists
MAX_FUNCTIONS = 500  # per file
MAX_NAME_CHARS = 100
MAX_KEYWORDS = 500  # keywords of one function, or phrases of one gazetteer
MAX_KEYWORD_CHARS = 200
MAX_PATTERN_CHARS = 1000
# The regex engine unrolls counted repeats when it compiles, so "(a{1000}){1000}" costs
# seconds and a third level exhausts memory; compiling has no timeout, so the product of
# a pattern's repeat counts is bounded instead (100,000 compiles in well under 0.1 s).
MAX_REPEAT_PRODUCT = 100_000
TIMEOUT = 0.05  # seconds that one pattern may spend on one text

# Values of apps.projects.models.TaskType (this module may not import it).
SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
SPANS = "spans"
CLASSIFICATION = frozenset({SINGLE_LABEL, MULTI_LABEL})
TASK_TYPES = CLASSIFICATION | {SPANS}
_PROJECT_WORDS = {
    SINGLE_LABEL: "a single-label classification project",
    MULTI_LABEL: "a multi-label classification project",
    SPANS: "an entity-span project",
}

_NAME = re.compile(r"\w[\w.-]*")
_COMMON_KEYS = ("name", "kind", "description", "enabled")


class RuleError(ValueError):
    """A definition or file that cannot be used; ``name`` is the function's ("" for the file)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class RuleDefinition:
    name: str
    kind: str
    label: str | None  # None for kinds whose vote comes from elsewhere (model, external)
    params: dict[str, Any] = field(hash=False)  # the kind's own keys, defaults filled in
    description: str = ""
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.label is not None:
            data["label"] = self.label
        data.update({key: list(value) if isinstance(value, list) else value for key, value in self.params.items()})
        if self.description:
            data["description"] = self.description
        data["enabled"] = self.enabled
        return data


@dataclass
class Context:
    """What the non-textual kinds look at, row i of each array being text i."""

    vectors: np.ndarray | None = None  # (n, d) unit item embeddings
    # Unit vectors keyed by label name (its description, else its name) and by the own
    # "text" of similarity functions.
    label_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    model_probs: np.ndarray | None = None  # (n, k) champion model probabilities
    model_labels: list[str] = field(default_factory=list)  # label of each column of model_probs
    external: dict[str, list[tuple[str, float | None] | None]] = field(default_factory=dict)
    text_vectors: Callable[[list[str]], np.ndarray] | None = None  # embeds a text missing above


@dataclass
class Fired:
    index: int  # position of the text in the batch
    label: str
    # Character offsets: the highlighted matches of a classification function, or the
    # proposed entity spans of a spans function.
    spans: list[tuple[int, int]]


@dataclass
class Application:
    fired: list[Fired]
    timeouts: int  # texts where a pattern ran out of time (they abstain)
    seconds: float


# --- Parsing --------------------------------------------------------------------------------


class _Reader:
    """Reads one function's keys, remembering which keys the kind knows about."""

    def __init__(self, data: dict[str, Any], name: str) -> None:
        self.data = data
        self.name = name
        self.known: list[str] = list(_COMMON_KEYS)

    def error(self, message: str) -> RuleError:
        return RuleError(self.name, f'Function "{self.name}": {message}')

    def _take(self, key: str) -> Any:
        if key not in self.known:
            self.known.append(key)
        return self.data.get(key)

    def string(self, key: str, *, max_chars: int, default: str | None = None) -> str:
        value = self._take(key)
        if value is None and default is not None:
            return default
        if value is None:
            raise self.error(f'"{key}" is required.')
        if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
            raise self.error(f'"{key}" must be a non-blank string of at most {max_chars} characters.')
        return value

    def text(self, key: str) -> str:
        """Free text, possibly empty (a description)."""
        value = self._take(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(f'"{key}" must be a string.')
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f'"{key}" must be true or false.')
        return value

    def fraction(self, key: str, default: float) -> float:
        value = self._take(key)
        if value is None:
            return default
        # bool is an int in Python, but "threshold": true is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.error(f'"{key}" must be a number from 0 to 1.')
        return float(value)

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        value = self._take(key)
        if value is None:
            return default
        if value not in options:
            raise self.error(f'"{key}" must be one of {_quoted(options)}.')
        return str(value)

    def strings(self, key: str) -> list[str]:
        value = self._take(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(f'"{key}" must be a list of strings.')
        if not 1 <= len(value) <= MAX_KEYWORDS:
            raise self.error(f'"{key}" must hold from 1 to {MAX_KEYWORDS} strings; it holds {len(value)}.')
        for item in value:
            if not item.strip() or len(item) > MAX_KEYWORD_CHARS:
                raise self.error(
                    f'"{key}" must hold non-blank strings of at most {MAX_KEYWORD_CHARS} characters; '
                    f'"{item[:40]}" is not.'
                )
        return value

    def label(self, label_names: Collection[str]) -> str:
        value = self._take("label")
        if not label_names:
            raise self.error("the project has no labels yet.")
        if value is None:
            raise self.error(f'"label" is required: one of {_quoted(label_names)}.')
        if not isinstance(value, str) or value not in label_names:
            raise self.error(f"unknown label {json.dumps(value)[:60]}; the labels are {_quoted(label_names)}.")
        return value

    def reject_unknown(self, kind: str) -> None:
        unknown = [key for key in self.data if key not in self.known]
        if unknown:
            raise self.error(
                f"unknown key{'s' if len(unknown) > 1 else ''} {_quoted(unknown)}; "
                f'a "{kind}" function takes {_quoted(self.known)}.'
            )


def _quoted(values: Collection[str], limit: int = 20) -> str:
    shown = [f'"{value}"' for value in list(values)[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more


def _keywords_parse(reader: _Reader) -> dict[str, Any]:
    return {
        "keywords": reader.strings("keywords"),
        "match": reader.choice("match", ("word", "substring"), "word"),
        "case_sensitive": reader.boolean("case_sensitive", False),
    }


def _regex_parse(reader: _Reader) -> dict[str, Any]:
    pattern = reader.string("pattern", max_chars=MAX_PATTERN_CHARS)
    case_sensitive = reader.boolean("case_sensitive", False)
    problem = _pattern_problem(pattern)
    if problem is None:
        try:
            _pattern_compile(pattern, case_sensitive)
        except (regex.error, RecursionError, OverflowError) as error:
            problem = f"it does not compile: {error}"
    if problem:
        raise reader.error(f'"pattern" cannot be used: {problem}.')
    return {"pattern": pattern, "case_sensitive": case_sensitive}


def _similarity_parse(reader: _Reader) -> dict[str, Any]:
    params: dict[str, Any] = {"threshold": reader.fraction("threshold", 0.4)}
    text = reader.string("text", max_chars=MAX_PATTERN_CHARS, default="")
    if text:
        params["text"] = text
    return params


def _model_parse(reader: _Reader) -> dict[str, Any]:
    return {"threshold": reader.fraction("threshold", 0.9)}


def _external_parse(reader: _Reader) -> dict[str, Any]:
    return {"source": reader.string("source", max_chars=MAX_NAME_CHARS), "threshold": reader.fraction("threshold", 0.0)}


def _gazetteer_parse(reader: _Reader) -> dict[str, Any]:
    return {"phrases": reader.strings("phrases"), "case_sensitive": reader.boolean("case_sensitive", False)}


# Escapes (skipped), and "{...}" up to the next "}": every counted repeat's digits fall in
# one such span; the odd literal brace only makes the bound stricter.
_REPEAT_SPANS = re.compile(r"\\.|\{[^}]*\}", re.DOTALL)
# Verbose mode lets "{1 0}" or "{#}\n3}" count, which the spans above would misread.
_VERBOSE_FLAG = re.compile(r"\(\?[A-Za-z0-9^-]*x")


def _pattern_problem(pattern: str) -> str | None:
    """Why the pattern may not even be compiled, or None."""
    if _VERBOSE_FLAG.search(pattern):
        return "verbose mode (?x) is not supported"
    product = 1
    for token in _REPEAT_SPANS.findall(pattern):
        if token.startswith("{"):
            product *= max([int(digits) for digits in re.findall(r"[0-9]+", token)] + [1])
        if product > MAX_REPEAT_PRODUCT:
            return f"its repeat counts {{m,n}} multiply to more than {MAX_REPEAT_PRODUCT:,}"
    return None


def _pattern_compile(pattern: str, case_sensitive: bool) -> Any:
    return regex.compile(pattern, 0 if case_sensitive else regex.IGNORECASE)


# --- Applying -------------------------------------------------------------------------------

_Outcome = tuple[list[Fired], int]  # what fired, and how many texts timed out


def _literal_pattern(phrases: Sequence[str], *, whole_words: bool, flags: int = 0) -> re.Pattern[str]:
    """One alternation for all phrases, longest first so "new york" wins over "new".

    The phrases are escaped literals, so the standard engine cannot backtrack badly and
    needs no timeout. Whole words use look-arounds rather than \\b so a phrase that starts
    or ends with punctuation ("c++", ".net") still matches as a word."""
    alternation = "|".join(re.escape(phrase) for phrase in sorted(set(phrases), key=len, reverse=True))
    source = rf"(?<!\w)(?:{alternation})(?!\w)" if whole_words else alternation
    return re.compile(source, flags)


def _literal_fire(
    phrases: Sequence[str], *, whole_words: bool, case_sensitive: bool, label: str, texts: Sequence[str]
) -> _Outcome:
    """Every occurrence of the phrases in each text.

    Ignoring case, the lowercased phrases are matched in the lowercased text: about five
    times faster than re.IGNORECASE. lower() keeps each character's offset unless one grows
    ("İ" becomes two characters); such a text goes through the IGNORECASE pattern."""
    pattern = _literal_pattern(
        phrases if case_sensitive else [phrase.lower() for phrase in phrases], whole_words=whole_words
    )
    ignoring_case: re.Pattern[str] | None = None  # compiled for the first text that needs it
    fired: list[Fired] = []
    for index, text in enumerate(texts):
        if case_sensitive:
            matches = pattern.finditer(text)
        elif len(lowered := text.lower()) == len(text):
            matches = pattern.finditer(lowered)
        else:
            ignoring_case = ignoring_case or _literal_pattern(phrases, whole_words=whole_words, flags=re.IGNORECASE)
            matches = ignoring_case.finditer(text)
        spans = [match.span() for match in matches]
        if spans:
            fired.append(Fired(index, label, spans))
    return fired, 0


def _keywords_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    params = definition.params
    return _literal_fire(
        params["keywords"],
        whole_words=params["match"] == "word",
        case_sensitive=params["case_sensitive"],
        label=_label(definition),
        texts=texts,
    )


def _gazetteer_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    params = definition.params
    return _literal_fire(
        params["phrases"],
        whole_words=True,
        case_sensitive=params["case_sensitive"],
        label=_label(definition),
        texts=texts,
    )


def _regex_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    """Fires on a text where the pattern matches. Its spans are the non-empty matches, so a
    zero-width pattern ("^(?!.*goal)") votes on a classification project but proposes no
    span. The timeout bounds all the searches on one text together."""
    pattern = _pattern_compile(definition.params["pattern"], definition.params["case_sensitive"])
    label = _label(definition)
    fired: list[Fired] = []
    timeouts = 0
    for index, text in enumerate(texts):
        try:
            matches = [match.span() for match in pattern.finditer(text, timeout=TIMEOUT)]
        except TimeoutError:
            timeouts += 1
            continue
        if matches:
            fired.append(Fired(index, label, [(start, end) for start, end in matches if end > start]))
    return fired, timeouts


def _similarity_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    vectors = _needed(definition, context.vectors, "item embeddings (Context.vectors)")
    _check_rows(definition, vectors, len(texts), "item embeddings")
    target = _similarity_target(definition, context)
    if vectors.ndim != 2 or vectors.shape[1] != target.shape[0]:
        raise _context_error(definition, f"item embeddings of shape {vectors.shape} and a {target.shape} vector")
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(target)
    # Normalise again (cheap) so a vector that is not quite unit cannot cross the threshold.
    cosine = (vectors @ target) / np.maximum(norms, 1e-12)
    label = _label(definition)
    return [Fired(int(i), label, []) for i in np.flatnonzero(cosine >= definition.params["threshold"])], 0


def _similarity_target(definition: RuleDefinition, context: Context) -> np.ndarray:
    """The vector to compare with: the function's own text, else its label's."""
    key = definition.params.get("text") or _label(definition)
    if key in context.label_vectors:
        return np.asarray(context.label_vectors[key], dtype=np.float64).ravel()
    if "text" in definition.params and context.text_vectors is not None:
        return np.asarray(context.text_vectors([key]), dtype=np.float64).reshape(1, -1)[0]
    raise _context_error(definition, f'no vector for "{key}" (Context.label_vectors or text_vectors)')


def _model_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    probs = _needed(definition, context.model_probs, "the champion model's probabilities (Context.model_probs)")
    _check_rows(definition, probs, len(texts), "model probabilities")
    if probs.ndim != 2 or probs.shape[1] != len(context.model_labels) or not context.model_labels:
        raise _context_error(definition, f"{probs.shape[1:]} probability columns for labels {context.model_labels}")
    # An item the model has not scored (NaN row) abstains.
    clean = np.where(np.isfinite(probs), probs, -np.inf)
    best = clean.argmax(axis=1)
    top = clean[np.arange(len(texts)), best]
    threshold = definition.params["threshold"]
    return [Fired(int(i), context.model_labels[best[i]], []) for i in np.flatnonzero(top >= threshold)], 0


def _external_apply(definition: RuleDefinition, texts: Sequence[str], context: Context) -> _Outcome:
    source = definition.params["source"]
    predictions = _needed(definition, context.external.get(source), f'imported predictions from "{source}"')
    if len(predictions) != len(texts):
        raise _context_error(definition, f"{len(predictions)} predictions for {len(texts)} texts")
    threshold = definition.params["threshold"]
    fired: list[Fired] = []
    for index, prediction in enumerate(predictions):
        if prediction is None:
            continue
        label, score = prediction
        if (1.0 if score is None else score) >= threshold:
            fired.append(Fired(index, label, []))
    return fired, 0


def _label(definition: RuleDefinition) -> str:
    assert definition.label is not None  # parsing requires it for the kinds that use it
    return definition.label


def _needed(definition: RuleDefinition, value: Any, what: str) -> Any:
    if value is None:
        raise RuleError(
            definition.name,
            f'Function "{definition.name}": a "{definition.kind}" function needs {what}; none were given.',
        )
    return value


def _check_rows(definition: RuleDefinition, array: np.ndarray, rows: int, what: str) -> None:
    if array.shape[0] != rows:
        raise _context_error(definition, f"{array.shape[0]} rows of {what} for {rows} texts")


def _context_error(definition: RuleDefinition, mismatch: str) -> RuleError:
    return RuleError(definition.name, f'Function "{definition.name}": cannot apply it to {mismatch}.')


# --- The registry of kinds --------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    task_types: frozenset[str]
    has_label: bool  # votes its own "label"; model and external vote the label they are given
    parse: Callable[[_Reader], dict[str, Any]]
    apply: Callable[[RuleDefinition, Sequence[str], Context], _Outcome]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("keywords", CLASSIFICATION, True, _keywords_parse, _keywords_apply),
        Kind("regex", TASK_TYPES, True, _regex_parse, _regex_apply),
        Kind("similarity", CLASSIFICATION, True, _similarity_parse, _similarity_apply),
        Kind("model", CLASSIFICATION, False, _model_parse, _model_apply),
        Kind("external", CLASSIFICATION, False, _external_parse, _external_apply),
        Kind("gazetteer", frozenset({SPANS}), True, _gazetteer_parse, _gazetteer_apply),
    )
}


def kinds_for(task_type: str) -> list[str]:
    """The kinds a project of this task type may use, in the registry's order."""
    _check_task_type(task_type)
    return [kind.name for kind in KINDS.values() if task_type in kind.task_types]


def _check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"Unknown task type {task_type!r}; expected one of {sorted(TASK_TYPES)}.")


# --- Public API -----------------------------------------------------------------------------


def definition_parse(data: Any, *, label_names: Collection[str], task_type: str) -> RuleDefinition:
    """Check one function's JSON and return its definition, or raise RuleError naming it."""
    return _definition_parse(data, label_names=label_names, task_type=task_type, position=None)


def _definition_parse(
    data: Any, *, label_names: Collection[str], task_type: str, position: int | None
) -> RuleDefinition:
    _check_task_type(task_type)
    where = "Function" if position is None else f"Function #{position}"
    if not isinstance(data, dict):
        raise RuleError("", f'{where} must be a JSON object with a "name" and a "kind".')
    name = data.get("name")
    if name is None:
        raise RuleError("", f'{where} has no "name".')
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_CHARS:
        shown = json.dumps(name)[:60]
        raise RuleError(
            name if isinstance(name, str) else "",
            f"{where} {shown}: a name must be 1 to {MAX_NAME_CHARS} letters, digits, "
            '"_", "-" or "." (not starting with "-" or ".").',
        )
    reader = _Reader(data, name)
    kind = _kind(reader, task_type)
    label = reader.label(label_names) if kind.has_label else None
    description = reader.text("description")
    enabled = reader.boolean("enabled", True)
    params = kind.parse(reader)
    reader.reject_unknown(kind.name)
    return RuleDefinition(name, kind.name, label, params, description, enabled)


def _kind(reader: _Reader, task_type: str) -> Kind:
    value = reader.data.get("kind")
    allowed = kinds_for(task_type)
    if not isinstance(value, str) or value not in KINDS:
        shown = '"kind" is required' if value is None else f"unknown kind {json.dumps(value)[:60]}"
        raise reader.error(f"{shown}; {_PROJECT_WORDS[task_type]} takes {_quoted(allowed)}.")
    if value not in allowed:
        raise reader.error(
            f'"{value}" functions do not fit {_PROJECT_WORDS[task_type]}, which takes {_quoted(allowed)}.'
        )
    return KINDS[value]


def definitions_load(raw: bytes | str, *, label_names: Collection[str], task_type: str) -> list[RuleDefinition]:
    """Parse an import file: every function checked, names unique, or a RuleError."""
    items = _function_list(_json_load(raw))
    definitions = [
        _definition_parse(item, label_names=label_names, task_type=task_type, position=position)
        for position, item in enumerate(items, start=1)
    ]
    first_position: dict[str, int] = {}
    for position, definition in enumerate(definitions, start=1):
        if definition.name in first_position:
            raise RuleError(
                definition.name,
                f'Function "{definition.name}": functions #{first_position[definition.name]} and #{position} '
                "have this name; names must be unique.",
            )
        first_position[definition.name] = position
    return definitions


def definitions_dump(definitions: Sequence[RuleDefinition]) -> dict[str, Any]:
    return {"labelling_functions": [definition.to_json() for definition in definitions]}


def rule_apply(definition: RuleDefinition, texts: Sequence[str], context: Context | None = None) -> Application:
    """Run one function over a batch (disabled or not: choosing what to run is the caller's)."""
    kind = KINDS.get(definition.kind)
    if kind is None:
        raise RuleError(definition.name, f'Function "{definition.name}": unknown kind "{definition.kind}".')
    started = time.perf_counter()
    fired, timeouts = kind.apply(definition, texts, context or Context())
    return Application(fired, timeouts, time.perf_counter() - started)


# --- The file -------------------------------------------------------------------------------


def _json_load(raw: bytes | str) -> Any:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise RuleError("", f"The file has {size:,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MB).")
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise RuleError("", "The file is not UTF-8 text.") from None
    try:
        data = json.loads(text, object_pairs_hook=_object_without_repeats)
    except json.JSONDecodeError as error:
        raise RuleError(
            "", f"The file is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from None
    except RecursionError:
        # The C decoder stops at the interpreter's recursion limit, long before memory runs out.
        raise RuleError("", _TOO_DEEP) from None
    if _depth(data) > MAX_DEPTH:
        raise RuleError("", _TOO_DEEP)
    return data


_TOO_DEEP = f"The file nests objects and lists more than {MAX_DEPTH} deep."


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys; in a hand-written file that hides a mistake.
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise RuleError("", f'The file repeats the key "{key}" inside one object.')
        data[key] = value
    return data


def _depth(value: Any) -> int:
    """Nesting depth of objects and lists, walked without recursion; stops past MAX_DEPTH."""
    deepest = 0
    stack = [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _function_list(data: Any) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("labelling_functions"), list):
        raise RuleError("", 'The file must be a JSON object with a "labelling_functions" list.')
    extra = [key for key in data if key != "labelling_functions"]
    if extra:
        raise RuleError("", f'The file has unknown keys {_quoted(extra)}; it takes only "labelling_functions".')
    functions: list[Any] = data["labelling_functions"]
    if len(functions) > MAX_FUNCTIONS:
        raise RuleError("", f"The file has {len(functions)} functions; the limit is {MAX_FUNCTIONS}.")
    return functions
