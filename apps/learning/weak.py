"""Weak supervision: labelling functions, their votes, and the weak labels a label model
makes of them (docs/weak_supervision.md).

- Functions are stored per project in the import format (``rules``); editing one makes a
  new version, and the votes it casts record the version.
- Applying every enabled function is a job (``RuleApplication``) split into chunks of item
  ids that any number of workers apply side by side; the chunk that completes it fits the
  label model (``weak_labels_fit``).
- The label model is one source model: functions and people are sources of one Dawid-Skene
  (or the method the project chose), so each source's accuracy is estimated with the help
  of every other, and people's answers weigh ``HUMAN_WEIGHT`` times a rule's. Items that no
  person's consensus covers get a ``WeakLabel``: training data marked as weak, weighted by
  its confidence, replaced by people's labels as they arrive.
- A project with functions and no human label then trains its first model on weak labels
  alone, so ranking starts from what that model is least sure of.
"""

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from apps.annotation.selectors import consensus_for_training, given_answers
from apps.projects.answers import Answer, InvalidValue, LabelIndex, LabelPart, value_parse, value_render
from apps.projects.jobs import JobState, job_finish, job_heartbeat
from apps.projects.models import Item, Label, LabelModel, Project, TaskType
from apps.projects.selectors import gold_answers
from platform.errors import error_for_people
from platform.tasks import task_send_on_commit

from . import embeddings, label_models, modelling, rules
from .models import (
    ExternalPrediction,
    LabellingFunction,
    LabellingFunctionVersion,
    RuleApplication,
    RuleVote,
    SourceEstimate,
    SourceKind,
    TrainingRun,
    WeakLabel,
)
from .selectors import champion
from .services import training_request
from .store import backbone_resolve, embedding_cache, features_for

logger = logging.getLogger(__name__)

# Items one chunk of an application applies the functions to (one task per chunk).
APPLY_CHUNK = 5_000
# People's answers weigh this many rules' in the one source model: where both exist, people win.
HUMAN_WEIGHT = 2.0
# A function whose estimated accuracy is below chance plus this margin is flagged for review.
FLAG_MARGIN = 0.15
# Span functions are trusted this much until people's or gold spans say otherwise.
DEFAULT_SPAN_PRECISION = 0.7
# The editor's preview: labelled items to measure accuracy on, and others to show coverage.
PREVIEW_LABELLED = 1_000
PREVIEW_OTHERS = 1_000
PREVIEW_SHOWN = 25
# A preview stops after this long (it says how many items it looked at), in batches of this many.
PREVIEW_SECONDS = 1.5
PREVIEW_BATCH = 100


def _task_type(project: Project) -> str:
    return str(project.task_type)


def _labels(project: Project) -> list[Label]:
    return list(project.labels.order_by("order", "pk"))


def _refusal(error: rules.RuleError) -> ValidationError:
    return ValidationError(str(error), code="invalid_function")


def definition_parse(*, project: Project, data: Any) -> rules.RuleDefinition:
    """A function in the import format, checked against this project's labels and task type."""
    if project.task_type == TaskType.MULTI_LABEL:
        raise ValidationError(
            "Labelling functions are for single-label and entity-span projects; "
            "a multi-label project cannot use them yet."
        )
    try:
        return rules.definition_parse(
            data, label_names=[label.name for label in _labels(project)], task_type=_task_type(project)
        )
    except rules.RuleError as error:
        raise _refusal(error) from None


# --- writing functions ---------------------------------------------------------------------------


def _label_for(project: Project, definition: rules.RuleDefinition) -> Label | None:
    if definition.label is None:
        return None
    return next(label for label in _labels(project) if label.name == definition.label)


@transaction.atomic
def function_save(
    *, project: Project, data: Any, user: User | None = None, function: LabellingFunction | None = None
) -> LabellingFunction:
    """Create a function, or edit one (a new version when its definition changes)."""
    definition = definition_parse(project=project, data=data)
    document = definition.to_json()
    clash = LabellingFunction.objects.filter(project=project, name=definition.name)
    if function is not None:
        clash = clash.exclude(pk=function.pk)
    if clash.exists():
        raise ValidationError(f'This project already has a function named "{definition.name}".')
    if function is None:
        function = LabellingFunction(project=project, version=0, created_by=user)
    else:
        function = LabellingFunction.objects.select_for_update().get(pk=function.pk, project=project)
    changed = function.definition != document
    function.name, function.kind, function.description = definition.name, definition.kind, definition.description
    function.enabled = definition.enabled
    if changed:
        function.version += 1
        function.definition = document
    try:
        function.save()
    except IntegrityError:
        raise ValidationError(f'This project already has a function named "{definition.name}".') from None
    if changed:
        LabellingFunctionVersion.objects.create(
            function=function, number=function.version, definition=document, created_by=user
        )
    return function


def function_enable(*, function: LabellingFunction, enabled: bool) -> LabellingFunction:
    """Switch a function on or off; its definition (and version) stays."""
    function.enabled = enabled
    function.definition = {**function.definition, "enabled": enabled}
    function.save(update_fields=["enabled", "definition", "updated_at"])
    return function


@transaction.atomic
def function_delete(*, function: LabellingFunction) -> None:
    """A deleted function's votes and estimate go with it; the weak labels it helped make
    change at the next application."""
    SourceEstimate.objects.filter(project=function.project, kind=SourceKind.FUNCTION, key=function.name).delete()
    function.delete()


@transaction.atomic
def functions_import(*, project: Project, raw: bytes | str, user: User | None = None) -> dict[str, int]:
    """Every function of a file in the import format, or none: a bad file changes nothing.
    Functions with a name the project has are edited (a new version when they differ)."""
    if project.task_type == TaskType.MULTI_LABEL:
        definition_parse(project=project, data={})  # the same refusal as one function
    try:
        definitions = rules.definitions_load(
            raw, label_names=[label.name for label in _labels(project)], task_type=_task_type(project)
        )
    except rules.RuleError as error:
        raise _refusal(error) from None
    existing = {function.name: function for function in LabellingFunction.objects.filter(project=project)}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for definition in definitions:
        document = definition.to_json()
        current = existing.get(definition.name)
        if current is not None and current.definition == document:
            counts["unchanged"] += 1
            continue
        function_save(project=project, data=document, user=user, function=current)
        counts["created" if current is None else "updated"] += 1
    return counts


def functions_voting_for(*, project: Project, label: Label | None) -> int:
    """How many functions name this label (or, with None, how many the project has)."""
    functions = LabellingFunction.objects.filter(project=project)
    if label is None:
        return functions.count()
    definitions = functions.values_list("definition", flat=True)
    return sum(1 for definition in definitions if definition.get("label") == label.name)


def functions_label_renamed(*, project: Project, old_name: str, new_name: str) -> int:
    """A renamed label carries its functions along: each that named it gets a new version."""
    renamed = 0
    for function in LabellingFunction.objects.filter(project=project):
        if function.definition.get("label") == old_name:
            function_save(project=project, data={**function.definition, "label": new_name}, function=function)
            renamed += 1
    return renamed


def functions_export(*, project: Project) -> dict[str, Any]:
    """The project's functions in the import format (a file another project can import)."""
    functions = LabellingFunction.objects.filter(project=project).order_by("name")
    return {"labelling_functions": [function.definition for function in functions]}


MAX_PREDICTIONS_BYTES = 20 * 1024 * 1024
MAX_PREDICTION_PROBLEMS = 10


def _records(raw: bytes | str) -> list[Any]:
    """A JSON array or JSON lines, within the size limit; nesting too deep is refused."""
    if len(raw) > MAX_PREDICTIONS_BYTES:
        raise ValidationError(f"The predictions file is larger than {MAX_PREDICTIONS_BYTES // 2**20} MB.")
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        if text.lstrip().startswith("["):
            data = json.loads(text)
        else:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, RecursionError) as error:
        raise ValidationError(f"The predictions file is not JSON or JSON lines: {str(error)[:200]}") from None
    if not isinstance(data, list):
        raise ValidationError("The predictions file must hold a list of predictions.")
    return data


def _studio_result(result: Any) -> Any:
    """A Label Studio ``result`` list as our answer shape: choices give label names, labels
    give spans."""
    if not isinstance(result, list):
        raise InvalidValue("a Label Studio prediction needs a result list")
    names: list[Any] = []
    spans: list[dict[str, Any]] = []
    for region in result:
        value = region.get("value") if isinstance(region, dict) else None
        if not isinstance(value, dict):
            raise InvalidValue("each result needs a value object")
        if isinstance(value.get("choices"), list):
            names.extend(value["choices"])
        elif isinstance(value.get("labels"), list) and value["labels"]:
            spans.append({"start": value.get("start"), "end": value.get("end"), "label": value["labels"][0]})
        else:
            raise InvalidValue("a result value needs choices or labels")
    return spans if spans else names


def _prediction_answer(project: Project, labels: LabelIndex, record: dict[str, Any], text: str) -> tuple[Any, Any]:
    """(answer, score) of one record: ours (``label`` or ``spans``) or a Label Studio task's
    first ``predictions`` entry (``result``: choices or labels)."""
    if isinstance(record.get("predictions"), list) and record["predictions"]:
        prediction = record["predictions"][0]
        if not isinstance(prediction, dict):
            raise InvalidValue("a prediction must be an object")
        raw = _studio_result(prediction.get("result"))
        return value_parse(project=project, labels=labels, raw=raw, text=text), prediction.get("score")
    raw = record.get("spans") if project.task_type == TaskType.SPANS else record.get("label")
    return value_parse(project=project, labels=labels, raw=raw, text=text), record.get("score")


def predictions_parse(*, project: Project, raw: bytes | str) -> list[tuple[Item, Answer, float | None]]:
    """Predictions from a file: JSON lines or a JSON array of ``{"id": <item's id from its
    import>, "label": <label>, "score": <0..1, optional>}`` (``"item": <Quorum id>`` also
    works; entity projects give ``"spans": [{"start", "end", "label"}]``), or Label Studio
    tasks with a ``predictions`` block. Any bad row refuses the whole file, naming the rows."""
    records = _records(raw)
    labels = LabelIndex.for_project(project)
    by_external = {str(r.get("id", r.get("data", {}).get("id") if isinstance(r.get("data"), dict) else None))
                   for r in records if isinstance(r, dict)}  # fmt: skip
    items = {item.external_id: item for item in Item.objects.filter(project=project, external_id__in=by_external)}
    own_ids = [r["item"] for r in records if isinstance(r, dict) and isinstance(r.get("item"), int)]
    own = {item.pk: item for item in Item.objects.filter(project=project, pk__in=own_ids)}
    rows, problems = [], []
    for number, record in enumerate(records, start=1):
        try:
            if not isinstance(record, dict):
                raise InvalidValue("expected a JSON object")
            data: dict[str, Any] = record["data"] if isinstance(record.get("data"), dict) else {}
            key = record.get("item")
            item = own.get(key) if isinstance(key, int) else items.get(str(data.get("id", record.get("id"))))
            if item is None:
                raise InvalidValue("no item of this project has this id")
            answer, score = _prediction_answer(project, labels, record, item.text)
            if score is not None and (not isinstance(score, int | float) or not 0 <= score <= 1):
                raise InvalidValue("the score must be a number from 0 to 1")
            rows.append((item, answer, None if score is None else float(score)))
        except InvalidValue as error:
            problems.append(f"row {number}: {error}")
            if len(problems) >= MAX_PREDICTION_PROBLEMS:
                break
    if problems:
        raise ValidationError(["Nothing was imported."] + problems)
    return rows


def predictions_import(*, project: Project, source: str, raw: bytes | str) -> int:
    """Predictions from outside (another model), for ``external`` functions to vote with.
    A source's earlier predictions are replaced whole; a bad file changes nothing."""
    source = source.strip()
    if not source or len(source) > 100:
        raise ValidationError("A prediction source needs a name of 1 to 100 characters.")
    records = []
    for item, answer, score in predictions_parse(project=project, raw=raw):
        spans = [[part.start, part.end, part.label_id] for part in answer if part.is_span]
        label_id = None if spans else answer.label_id
        records.append(
            ExternalPrediction(project=project, source=source, item=item, label_id=label_id, spans=spans, score=score)
        )
    with transaction.atomic():
        ExternalPrediction.objects.filter(project=project, source=source).delete()
        ExternalPrediction.objects.bulk_create(records, batch_size=1000)
    return len(records)


# --- applying functions ---------------------------------------------------------------------------


def _needs(definitions: Sequence[rules.RuleDefinition], kind: str) -> bool:
    return any(definition.kind == kind for definition in definitions)


def _context(
    project: Project, item_ids: Sequence[int], definitions: Sequence[rules.RuleDefinition], *, embed: bool = True
) -> rules.Context:
    """What the functions beyond keywords and patterns look at, for these items: cached
    embeddings (similarity), the champion's probabilities (model), imported predictions
    (external). Only what some function needs is loaded. ``embed=False`` (a web request)
    uses the embeddings already cached and never computes the missing ones."""
    context = rules.Context()
    labels = _labels(project)
    if _needs(definitions, "similarity") or _needs(definitions, "model"):
        features = features_for(project) if embed else embedding_cache(project).features()
        if not features.has(item_ids).all():
            raise ValidationError(
                "Some items have no embedding yet; the preview works once embedding has finished "
                "(training or applying the functions embeds them)."
            )
    if _needs(definitions, "similarity"):
        vectors = features.raw[features.rows(item_ids)]
        context.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        backbone = embeddings.backbone_load(str(backbone_resolve(project.backbone)))

        def text_vectors(texts: list[str]) -> np.ndarray:
            found = embeddings.embed(backbone, list(texts))
            return found / np.maximum(np.linalg.norm(found, axis=1, keepdims=True), 1e-12)

        context.text_vectors = text_vectors
        label_texts = [label.description.strip() or label.name for label in labels]
        context.label_vectors = dict(zip([label.name for label in labels], text_vectors(label_texts), strict=True))
    if _needs(definitions, "model"):
        version = champion(project=project)
        if version is None:
            raise ValidationError("A model function needs a champion model; train one first.")
        predictor = modelling.predictor_load(version, features)
        names = {label.pk: label.name for label in labels}
        context.model_probs = predictor.probs_items(list(item_ids))
        context.model_labels = [names.get(label_id, str(label_id)) for label_id in predictor.classes]
    if _needs(definitions, "external"):
        names = {label.pk: label.name for label in labels}
        position = {item_id: index for index, item_id in enumerate(item_ids)}
        external: dict[str, list[tuple[str, float | None] | None]] = defaultdict(lambda: [None] * len(item_ids))
        for source, item_id, label_id, score in ExternalPrediction.objects.filter(
            project=project, item_id__in=list(item_ids), label__isnull=False
        ).values_list("source", "item_id", "label_id", "score"):
            external[source][position[item_id]] = (names[label_id], score)
        context.external = dict(external)
    return context


def _definition(function: LabellingFunction, label_names: list[str]) -> rules.RuleDefinition:
    """A stored function, checked again: a label renamed or deleted since it was saved makes
    it refuse with its name, so the application's error says which function to fix."""
    try:
        return rules.definition_parse(
            function.definition, label_names=label_names, task_type=str(function.project.task_type)
        )
    except rules.RuleError as error:
        raise ValidationError(f"{error} Edit or switch off this function, then apply again.") from None


def _votes(
    project: Project, function: LabellingFunction, item_ids: Sequence[int], application: rules.Application
) -> list[RuleVote]:
    label_ids = {label.name: label.pk for label in _labels(project)}
    spans_task = project.task_type == TaskType.SPANS
    found = []
    for fired in application.fired:
        label_id = label_ids.get(fired.label)
        if label_id is None:
            continue
        spans = [[start, end, label_id] for start, end in fired.spans] if spans_task else []
        if spans_task and not spans:
            continue
        found.append(
            RuleVote(
                project=project,
                item_id=item_ids[fired.index],
                function=function,
                version=function.version,
                label_id=None if spans_task else label_id,
                spans=spans,
            )
        )
    return found


def votes_compute(project: Project, functions: Sequence[LabellingFunction], item_ids: Sequence[int]) -> dict[str, Any]:
    """Apply the functions to these items and replace their stored votes there. Returns
    per function the votes cast and the texts whose pattern ran out of time."""
    texts = dict(Item.objects.filter(project=project, pk__in=list(item_ids)).values_list("pk", "text"))
    item_ids = [pk for pk in item_ids if pk in texts]
    ordered = [texts[pk] for pk in item_ids]
    label_names = [label.name for label in _labels(project)]
    definitions = {function.pk: _definition(function, label_names) for function in functions}
    context = _context(project, item_ids, list(definitions.values()))
    records, report = [], {}
    for function in functions:
        applied = rules.rule_apply(definitions[function.pk], ordered, context)
        votes = _votes(project, function, item_ids, applied)
        records.extend(votes)
        report[function.name] = {"votes": len(votes), "timeouts": applied.timeouts}
    with transaction.atomic():
        RuleVote.objects.filter(project=project, item_id__in=item_ids).delete()
        RuleVote.objects.bulk_create(records, batch_size=2000)
    return report


def rules_apply_request(*, project: Project, user: User | None = None) -> RuleApplication:
    """Apply every enabled function to every item, in chunks that workers share, then fit
    the label model. An application already running is handed back (one per project)."""
    functions = LabellingFunction.objects.filter(project=project, enabled=True)
    if not functions.exists():
        raise ValidationError("There is no enabled labelling function to apply.")
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    if not ids:
        raise ValidationError("The project has no items to apply the functions to.")
    bounds = [[ids[start], ids[min(start + APPLY_CHUNK, len(ids)) - 1]] for start in range(0, len(ids), APPLY_CHUNK)]
    now = timezone.now()
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        active = RuleApplication.objects.filter(project=project).active().first()
        if active is not None and not active.health:
            return active
        if active is not None:  # a stalled one: replaced by this request
            job_finish(active, state=JobState.CANCELLED, error="Replaced by a newer application.")
        application = RuleApplication.objects.create(
            project=project, requested_by=user, item_count=len(ids), chunks_total=len(bounds), chunk_bounds=bounds,
            state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=1,
            stage=f"Applying {functions.count()} functions to {len(ids):,} items",
            # What this application applies, so a function that fired on nothing counts as applied.
            summary={"versions": {function.name: function.version for function in functions}},
        )  # fmt: skip
        for index, (first, last) in enumerate(bounds):
            task_send_on_commit("learning.rule_apply_chunk", application.pk, index, first, last)
    return application


def rule_apply_chunk(*, application_id: int, index: int, first: int, last: int) -> dict[str, Any]:
    """Apply the enabled functions to the items with ids in [first, last]. Idempotent: a
    redelivered chunk writes the same votes and is counted once. The chunk that completes
    the application fits the label model, then finishes the job."""
    application = RuleApplication.objects.select_related("project").filter(pk=application_id).first()
    if application is None or application.state != JobState.RUNNING:
        return {}
    project = application.project
    with job_heartbeat(application):
        try:
            functions = list(LabellingFunction.objects.filter(project=project, enabled=True).select_related("project"))
            ids = list(Item.objects.filter(project=project, pk__gte=first, pk__lte=last).values_list("pk", flat=True))
            report = votes_compute(project, functions, ids)
            last_chunk = _chunk_done(application_id, index, report)
        except Exception as error:
            _application_fail(application_id, error, f"Chunk {index} of rule application {application_id}")
            raise
    if last_chunk:
        rule_application_fit(application_id=application_id)
    return report


def rule_application_fit(*, application_id: int) -> RuleApplication | None:
    """The application's last step, once every chunk is done: fit the label model, finish,
    and start a first training on weak labels when no person has labelled yet. Also what
    the job sweep sends when a worker died during the fit (``RuleApplication.resume_messages``)."""
    application = RuleApplication.objects.select_related("project", "requested_by").filter(pk=application_id).first()
    if application is None or application.state != JobState.RUNNING:
        return application
    if len(application.chunks_done) < application.chunks_total:
        return application
    project = application.project
    with job_heartbeat(application):
        try:
            summary = weak_labels_fit(project=project)
        except Exception as error:
            _application_fail(application_id, error, f"The label model of rule application {application_id}")
            raise
    application.refresh_from_db()
    job_finish(
        application,
        state=JobState.SUCCEEDED,
        stage=f"{summary['weak_labels']:,} weak labels from {summary['functions']} functions",
        summary={**application.summary, **summary},
    )
    if summary.get("train") and application.state == JobState.SUCCEEDED:
        training_request(project=project, trigger="weak", user=application.requested_by)
    return application


def _application_fail(application_id: int, error: Exception, job: str) -> None:
    message = error_for_people(error, logger=logger, job=job)
    RuleApplication.objects.filter(pk=application_id, state=JobState.RUNNING).update(
        state=JobState.FAILED, error=message, finished_at=timezone.now()
    )


def _chunk_done(application_id: int, index: int, report: dict[str, Any]) -> bool:
    """Count a chunk once (its timeouts added to the summary); True for the call that
    completes the application."""
    with transaction.atomic():
        application = RuleApplication.objects.select_for_update().get(pk=application_id)
        if application.state != JobState.RUNNING or index in application.chunks_done:
            return False
        application.chunks_done = sorted([*application.chunks_done, index])
        # The last tenth is the label model's.
        application.progress = round(90 * len(application.chunks_done) / application.chunks_total)
        application.heartbeat_at = timezone.now()
        timeouts = dict(application.summary.get("timeouts", {}))
        for name, counts in report.items():
            if counts["timeouts"]:
                timeouts[name] = timeouts.get(name, 0) + counts["timeouts"]
        application.summary = {**application.summary, "timeouts": timeouts}
        finished = len(application.chunks_done) == application.chunks_total
        if finished:
            application.stage = "Fitting the label model"
        application.save(update_fields=["chunks_done", "progress", "heartbeat_at", "summary", "stage"])
    return finished


# --- the label model -----------------------------------------------------------------------------


@dataclass
class Sources:
    """Every source's votes on the items any source voted on: functions first, then people."""

    item_ids: list[int]
    keys: list[tuple[str, str]]  # (kind, key) per column
    titles: list[str]
    votes: np.ndarray  # (items, sources), label index or ABSTAIN
    weights: np.ndarray
    functions: list[LabellingFunction] = field(default_factory=list)


def _current_votes(project: Project) -> list[tuple[int, int, int | None, list[Any]]]:
    """(function id, item id, label id, spans) of enabled functions' votes of their current version."""
    functions = {f.pk: f.version for f in LabellingFunction.objects.filter(project=project, enabled=True)}
    rows = RuleVote.objects.filter(project=project, function_id__in=list(functions)).values_list(
        "function_id", "item_id", "version", "label_id", "spans"
    )
    return [(f, item, label, spans) for f, item, version, label, spans in rows if functions[f] == version]


def sources_collect(project: Project) -> Sources:
    labels = _labels(project)
    column_of_label = {label.pk: index for index, label in enumerate(labels)}
    functions = list(LabellingFunction.objects.filter(project=project, enabled=True).order_by("name"))
    function_column = {function.pk: index for index, function in enumerate(functions)}
    cells: list[tuple[int, int, int]] = []
    for function_id, item_id, label_id, _ in _current_votes(project):
        if label_id in column_of_label:
            cells.append((item_id, function_column[function_id], column_of_label[label_id]))
    people = sorted({answer.annotator_id for answer in given_answers(project=project)})
    person_column = {person: len(functions) + index for index, person in enumerate(people)}
    for answer in given_answers(project=project):
        label_id = answer.answer.label_id
        if label_id in column_of_label:
            cells.append((answer.item_id, person_column[answer.annotator_id], column_of_label[label_id]))
    item_ids = sorted({item_id for item_id, _, _ in cells})
    row_of = {item_id: index for index, item_id in enumerate(item_ids)}
    votes = np.full((len(item_ids), len(functions) + len(people)), label_models.ABSTAIN, dtype=np.int16)
    for item_id, column, label in cells:
        votes[row_of[item_id], column] = label
    names = dict(project.memberships.filter(user_id__in=people).values_list("user_id", "user__username"))
    return Sources(
        item_ids=item_ids,
        keys=[(SourceKind.FUNCTION.value, f.name) for f in functions]
        + [(SourceKind.ANNOTATOR.value, str(p)) for p in people],
        titles=[f.name for f in functions] + [names.get(person, f"annotator {person}") for person in people],
        votes=votes,
        weights=np.array([1.0] * len(functions) + [HUMAN_WEIGHT] * len(people)),
        functions=functions,
    )


def _human_covered(project: Project) -> set[int]:
    """Items people's consensus (or gold) already labels: weak labels never replace those."""
    return {item_id for item_id, _, _ in consensus_for_training(project=project)} | set(
        Item.objects.filter(project=project, is_gold=True).values_list("pk", flat=True)
    )


def _fit(project: Project, sources: Sources, k: int) -> label_models.LabelModelResult:
    """The project's label model over every source. A function's silence is evidence (a
    sports-keyword function silent on an item makes Sports less likely); a person's is not
    (they were not asked), so only functions' abstentions are modelled. Snorkel's model has
    no per-source weights: there people count as one rule each."""
    method = project.label_model or LabelModel.DAWID_SKENE
    functions = np.array([kind == SourceKind.FUNCTION for kind, _ in sources.keys])
    if method == LabelModel.SNORKEL:
        return label_models.fit(sources.votes.astype(np.int64), k, method)
    return label_models.fit(
        sources.votes.astype(np.int64), k, method, weights=sources.weights, abstain_signal=functions
    )


def weak_labels_fit(*, project: Project) -> dict[str, Any]:
    """Fit the label model over every source, write weak labels and each source's estimate.
    Returns a summary; ``train`` says a first model should train on weak labels alone."""
    summary = _span_weak_labels(project) if project.task_type == TaskType.SPANS else _class_weak_labels(project)
    humans = bool(consensus_for_training(project=project))
    active = TrainingRun.objects.filter(project=project).active().exists()
    summary["train"] = summary["weak_labels"] > 0 and not humans and not active
    return summary


def _class_weak_labels(project: Project) -> dict[str, Any]:
    labels = _labels(project)
    sources = sources_collect(project)
    function_count = len(sources.functions)
    if not sources.item_ids or function_count == 0:
        _estimates_write(project, [])
        WeakLabel.objects.filter(project=project).delete()
        return {"functions": function_count, "weak_labels": 0, "method": project.label_model}
    result = _fit(project, sources, len(labels))
    human = _human_covered(project)
    by_function = sources.votes[:, :function_count] != label_models.ABSTAIN
    weak = []
    for row, item_id in enumerate(sources.item_ids):
        if item_id in human or not by_function[row].any() or not result.covered[row]:
            continue
        probs = result.probs[row]
        best = int(np.argmax(probs))
        weak.append(
            WeakLabel(
                project=project,
                item_id=item_id,
                answer=Answer([LabelPart(None, None, labels[best].pk)]),
                confidence=float(probs[best]),
                posteriors={str(labels[i].pk): round(float(p), 4) for i, p in enumerate(probs) if p > 0.0005},
                method=result.method,
            )
        )
    chance = 1 / max(len(labels), 1)
    estimates = []
    for column, (kind, key) in enumerate(sources.keys):
        voted = sources.votes[:, column] != label_models.ABSTAIN
        accuracy = float(result.accuracies[column])
        accuracy_or_none = None if np.isnan(accuracy) else round(accuracy, 4)
        estimates.append(
            SourceEstimate(
                project=project, kind=kind, key=key, title=sources.titles[column], accuracy=accuracy_or_none,
                coverage=round(float(voted.sum()) / max(project.items.count(), 1), 4), votes=int(voted.sum()),
                flagged=kind == SourceKind.FUNCTION and accuracy_or_none is not None
                and accuracy_or_none < chance + FLAG_MARGIN,
            )
        )  # fmt: skip
    _weak_labels_write(project, weak)
    _estimates_write(project, estimates)
    return {"functions": function_count, "weak_labels": len(weak), "method": result.method}


def _span_weak_labels(project: Project) -> dict[str, Any]:
    """Entity projects: each function's proposals, most precise function first (precision
    against people's and gold spans where there are some), longer spans first, without
    overlaps. The weak label's confidence is the mean precision of the spans it keeps."""
    functions = {f.pk: f for f in LabellingFunction.objects.filter(project=project, enabled=True)}
    proposals: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)  # item -> (start, end, label, fn)
    for function_id, item_id, _, spans in _current_votes(project):
        for start, end, label_id in spans:
            proposals[item_id].append((start, end, label_id, function_id))
    truth = {item_id: answer for item_id, answer, _ in consensus_for_training(project=project)}
    truth.update(gold_answers(project=project))
    checked: dict[int, list[bool]] = defaultdict(list)
    for item_id, found in proposals.items():
        if item_id in truth:
            wanted = {(p.start, p.end, p.label_id) for p in truth[item_id] if p.is_span}
            for start, end, label_id, function_id in found:
                checked[function_id].append((start, end, label_id) in wanted)
    precision = {
        function_id: (float(np.mean(checked[function_id])) if len(checked[function_id]) >= 5 else None)
        for function_id in functions
    }
    trust = {pk: DEFAULT_SPAN_PRECISION if value is None else value for pk, value in precision.items()}
    human = _human_covered(project)
    weak = []
    for item_id, found in proposals.items():
        if item_id in human:
            continue
        kept: list[tuple[int, int, int, int]] = []
        for start, end, label_id, function_id in sorted(found, key=lambda s: (-trust[s[3]], s[0] - s[1], s[0])):
            if all(end <= s or start >= e for s, e, _, _ in kept):
                kept.append((start, end, label_id, function_id))
        weak.append(
            WeakLabel(
                project=project,
                item_id=item_id,
                answer=Answer(LabelPart(start, end, label_id) for start, end, label_id, _ in kept),
                confidence=float(np.mean([trust[span[3]] for span in kept])),
                method="span_precedence",
            )
        )
    items = max(project.items.count(), 1)
    estimates = []
    for pk, function in functions.items():
        measured = precision[pk]
        estimates.append(
            SourceEstimate(
                project=project, kind=SourceKind.FUNCTION, key=function.name, title=function.name,
                accuracy=None if measured is None else round(measured, 4),
                coverage=round(sum(1 for found in proposals.values() if any(s[3] == pk for s in found)) / items, 4),
                votes=sum(1 for found in proposals.values() for s in found if s[3] == pk),
                flagged=measured is not None and measured < 0.5,
            )
        )  # fmt: skip
    _weak_labels_write(project, weak)
    _estimates_write(project, estimates)
    return {"functions": len(functions), "weak_labels": len(weak), "method": "span_precedence"}


@transaction.atomic
def _weak_labels_write(project: Project, weak: list[WeakLabel]) -> None:
    WeakLabel.objects.filter(project=project).delete()
    WeakLabel.objects.bulk_create(weak, batch_size=2000)


@transaction.atomic
def _estimates_write(project: Project, estimates: list[SourceEstimate]) -> None:
    SourceEstimate.objects.filter(project=project).delete()
    SourceEstimate.objects.bulk_create(estimates)


# --- what the pages show -------------------------------------------------------------------------


def _truth(project: Project) -> dict[int, Answer]:
    """What functions are judged by: gold answers, then people's consensus."""
    truth = {item_id: answer for item_id, answer, _ in consensus_for_training(project=project)}
    truth.update(gold_answers(project=project))
    return truth


def functions_analysis(*, project: Project) -> list[dict[str, Any]]:
    """One row per function, like Snorkel's LF analysis, from the stored votes: polarity,
    coverage, overlaps, conflicts, correct and incorrect against gold and consensus, empirical
    and estimated accuracy, whether its votes are stale (edited since the last application)."""
    functions = list(LabellingFunction.objects.filter(project=project).order_by("name"))
    labels = _labels(project)
    column_of_label = {label.pk: index for index, label in enumerate(labels)}
    item_ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    row_of = {item_id: index for index, item_id in enumerate(item_ids)}
    column_of = {function.pk: index for index, function in enumerate(functions)}
    votes = np.full((len(item_ids), len(functions)), label_models.ABSTAIN, dtype=np.int64)
    applied: dict[int, set[int]] = defaultdict(set)
    spans_task = project.task_type == TaskType.SPANS
    for function_id, item_id, version, label_id, spans in RuleVote.objects.filter(project=project).values_list(
        "function_id", "item_id", "version", "label_id", "spans"
    ):
        applied[function_id].add(version)
        if spans_task:
            # One "label" per item for span functions: the first type proposed (coverage, overlaps).
            votes[row_of[item_id], column_of[function_id]] = column_of_label.get(spans[0][2], 0) if spans else -1
        elif label_id in column_of_label:
            votes[row_of[item_id], column_of[function_id]] = column_of_label[label_id]
    gold = np.full(len(item_ids), label_models.ABSTAIN, dtype=np.int64)
    if not spans_task:
        for item_id, answer in _truth(project).items():
            if item_id in row_of and answer.label_id in column_of_label:
                gold[row_of[item_id]] = column_of_label[answer.label_id]
    summary = label_models.lf_analysis(votes, max(len(labels), 1), gold if (gold >= 0).any() else None)
    estimates = {e.key: e for e in SourceEstimate.objects.filter(project=project, kind=SourceKind.FUNCTION)}
    last = RuleApplication.objects.filter(project=project, state=JobState.SUCCEEDED).first()
    timed_out = last.summary.get("timeouts", {}) if last else {}
    versions_applied = last.summary.get("versions", {}) if last else {}
    rows = []
    for function, analysis in zip(functions, summary, strict=True):
        estimate = estimates.get(function.name)
        rows.append(
            {
                "function": function,
                "label": function.definition.get("label") or "(its own)",
                "polarity_names": [labels[index].name for index in analysis["polarity"] if index < len(labels)],
                "coverage": analysis["coverage"],
                "overlaps": analysis["overlaps"],
                "conflicts": analysis["conflicts"],
                "correct": analysis["correct"],
                "incorrect": analysis["incorrect"],
                "empirical_accuracy": _number(analysis["accuracy"]),
                "estimated_accuracy": estimate.accuracy if estimate else None,
                "flagged": bool(estimate and estimate.flagged),
                "applied": function.version in applied.get(function.pk, set())
                or versions_applied.get(function.name) == function.version,
                "timeouts": timed_out.get(function.name, 0),
            }
        )
    return rows


def _number(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


@dataclass
class Preview:
    definition: rules.RuleDefinition
    sample_size: int  # items looked at: all of the sample, unless the time ran out
    sample_total: int
    fired: list[dict[str, Any]]  # the first items it fires on: id, text segments, label, truth
    fired_count: int
    coverage: float
    overlaps: float
    conflicts: float
    checked: int  # fired on items with a known answer
    correct: int
    timeouts: int
    seconds: float

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.checked if self.checked else None


def _sample(project: Project) -> list[tuple[int, str]]:
    """Labelled items (to measure accuracy) first, then a fixed spread of the others (coverage)."""
    truth_ids = list(_truth(project))[:PREVIEW_LABELLED]
    labelled = list(Item.objects.filter(project=project, pk__in=truth_ids).values_list("pk", "text"))
    others = list(
        Item.objects.filter(project=project).exclude(pk__in=truth_ids).order_by("random_key")
        .values_list("pk", "text")[:PREVIEW_OTHERS]
    )  # fmt: skip
    return sorted(labelled) + sorted(others)


def _segments(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, highlighted) so a template can mark matches without HTML."""
    pieces, at = [], 0
    for start, end in sorted(spans):
        if start < at:
            continue
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


@dataclass
class _Partial:
    fired: list[rules.Fired]
    timeouts: int
    seconds: float
    texts: int  # how many of the texts were looked at before the deadline


def _apply_within(
    definition: rules.RuleDefinition, texts: list[str], context: rules.Context, deadline: float
) -> _Partial:
    """Apply in batches until the texts or the time run out: a pattern that is slow on
    every text (each within its own time limit) cannot hold a request for long."""
    partial = _Partial([], 0, 0.0, 0)
    while partial.texts < len(texts) and (partial.texts == 0 or time.monotonic() < deadline):
        batch = slice(partial.texts, partial.texts + PREVIEW_BATCH)
        try:
            part = rules.rule_apply(definition, texts[batch], _context_slice(context, batch))
        except rules.RuleError as error:
            raise _refusal(error) from None
        partial.fired.extend(rules.Fired(hit.index + partial.texts, hit.label, hit.spans) for hit in part.fired)
        partial.timeouts += part.timeouts
        partial.seconds += part.seconds
        partial.texts += len(texts[batch])
    return partial


def _context_slice(context: rules.Context, rows: slice) -> rules.Context:
    return rules.Context(
        vectors=None if context.vectors is None else context.vectors[rows],
        label_vectors=context.label_vectors,
        model_probs=None if context.model_probs is None else context.model_probs[rows],
        model_labels=context.model_labels,
        external={source: values[rows] for source, values in context.external.items()},
        text_vectors=context.text_vectors,
    )


def function_preview(*, project: Project, data: Any, function: LabellingFunction | None = None) -> Preview:
    """What a function (as written, not yet saved) does on a sample of the project: the
    items it fires on with the matches highlighted, its coverage, overlaps and conflicts with
    the other enabled functions' stored votes, and its accuracy on items with known answers."""
    definition = definition_parse(project=project, data=data)
    sample = _sample(project)
    ids = [pk for pk, _ in sample]
    texts = [text for _, text in sample]
    context = _context(project, ids, [definition], embed=False)
    applied = _apply_within(definition, texts, context, deadline=time.monotonic() + PREVIEW_SECONDS)
    sample_total, sample = len(sample), sample[: applied.texts]
    names = {label.pk: label.name for label in _labels(project)}
    others: dict[int, set[str]] = defaultdict(set)
    other_votes = [row for row in _current_votes(project) if function is None or row[0] != function.pk]
    for _, item_id, label_id, _ in other_votes:
        others[item_id].add(names.get(label_id, "") if label_id else "span")
    truth = _truth(project)
    fired: list[dict[str, Any]] = []
    overlaps = conflicts = checked = correct = 0
    for hit in applied.fired:
        item_id = ids[hit.index]
        other = others.get(item_id, set())
        overlaps += bool(other)
        conflicts += bool(other - {hit.label}) if project.task_type != TaskType.SPANS else 0
        known = truth.get(item_id)
        right = None
        if known is not None and project.task_type != TaskType.SPANS:
            right = names.get(known.label_id or -1) == hit.label
        elif known is not None:
            wanted = {(p.start, p.end, names.get(p.label_id)) for p in known if p.is_span}
            right = all((s, e, hit.label) in wanted for s, e in hit.spans)
        if right is not None:
            checked += 1
            correct += right
        if len(fired) < PREVIEW_SHOWN:
            fired.append(
                {
                    "item_id": item_id,
                    "segments": _segments(texts[hit.index], hit.spans),
                    "label": hit.label,
                    "right": right,
                }
            )
    count = max(len(sample), 1)
    return Preview(
        definition=definition, sample_size=len(sample), sample_total=sample_total, fired=fired,
        fired_count=len(applied.fired),
        coverage=len(applied.fired) / count, overlaps=overlaps / count, conflicts=conflicts / count,
        checked=checked, correct=correct, timeouts=applied.timeouts, seconds=applied.seconds,
    )  # fmt: skip


def sources_estimates(*, project: Project) -> list[SourceEstimate]:
    """Every source's estimated accuracy from the last fit: people and functions together."""
    return list(SourceEstimate.objects.filter(project=project).order_by("-accuracy", "title"))


def weak_labels(*, project: Project) -> "QuerySet[WeakLabel]":
    return WeakLabel.objects.filter(project=project).select_related("item").order_by("item_id")


def weak_labels_jsonl(*, project: Project) -> Iterator[str]:
    """Every weak label as a JSON line: the item (its import id, its Quorum id, its text), the
    answer as the import format writes it, its confidence and posteriors by label name, and
    ``"weak": true``, so it cannot be mistaken for people's labels."""
    labels = LabelIndex.for_project(project)
    names = {str(label.pk): label.name for label in labels.labels}
    for weak_label in weak_labels(project=project).iterator(chunk_size=2000):
        item = weak_label.item
        value = value_render(project=project, labels=labels, parts=weak_label.answer, text=item.text)
        yield json.dumps(
            {
                "id": item.external_id or None, "item": item.pk, "text": item.text,
                ("spans" if project.task_type == TaskType.SPANS else "label"): value,
                "confidence": round(weak_label.confidence, 4),
                "posteriors": {names.get(key, key): p for key, p in weak_label.posteriors.items()},
                "method": weak_label.method, "weak": True,
            },
            ensure_ascii=False,
        ) + "\n"  # fmt: skip


def application_latest(*, project: Project) -> RuleApplication | None:
    return RuleApplication.objects.filter(project=project).first()


def function_get(*, project: Project, function_id: Any) -> LabellingFunction:
    """A function of this project by id; any other id (another project's too) is a 404."""
    try:
        function_id = int(function_id)
    except (TypeError, ValueError):
        raise Http404("No such labelling function in this project.") from None
    # Ids are 64-bit: a larger number names nothing (and SQLite could not even bind it).
    found = None
    if 0 < function_id < 2**63:
        found = LabellingFunction.objects.filter(project=project, pk=function_id).first()
    if found is None:
        raise Http404("No such labelling function in this project.")
    return found


def function_versions(*, function: LabellingFunction) -> list[LabellingFunctionVersion]:
    """Every definition the function has had, newest first."""
    return list(function.versions.select_related("created_by").order_by("-number"))
