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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.annotation.selectors import consensus_for_training, given_answers
from apps.projects.answers import Answer, InvalidValue, LabelIndex, LabelPart, value_parse
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


def _task_type(project: Project) -> str:
    return str(project.task_type)


def labels_ordered(project: Project) -> list[Label]:
    return list(project.labels.order_by("order", "pk"))


def refusal(error: rules.RuleError) -> ValidationError:
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
            data, label_names=[label.name for label in labels_ordered(project)], task_type=_task_type(project)
        )
    except rules.RuleError as error:
        raise refusal(error) from None


# --- writing functions ---------------------------------------------------------------------------


def _label_for(project: Project, definition: rules.RuleDefinition) -> Label | None:
    if definition.label is None:
        return None
    return next(label for label in labels_ordered(project) if label.name == definition.label)


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
            raw, label_names=[label.name for label in labels_ordered(project)], task_type=_task_type(project)
        )
    except rules.RuleError as error:
        raise refusal(error) from None
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


def votes_context(
    project: Project, item_ids: Sequence[int], definitions: Sequence[rules.RuleDefinition], *, embed: bool = True
) -> rules.Context:
    """What the functions beyond keywords and patterns look at, for these items: cached
    embeddings (similarity), the champion's probabilities (model), imported predictions
    (external). Only what some function needs is loaded. ``embed=False`` (a web request)
    uses the embeddings already cached and never computes the missing ones."""
    context = rules.Context()
    labels = labels_ordered(project)
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
    label_ids = {label.name: label.pk for label in labels_ordered(project)}
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
    label_names = [label.name for label in labels_ordered(project)]
    definitions = {function.pk: _definition(function, label_names) for function in functions}
    context = votes_context(project, item_ids, list(definitions.values()))
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


def rules_apply_here(*, project: Project, user: User | None = None) -> RuleApplication:
    """Request an application and run its chunks in this process, as workers would (the
    demo's loader, which runs before any worker; tests). Returns it finished."""
    application = rules_apply_request(project=project, user=user)
    for index, (first, last) in enumerate(application.chunk_bounds):
        rule_apply_chunk(application_id=application.pk, index=index, first=first, last=last)
    application.refresh_from_db()
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


def current_votes(project: Project) -> list[tuple[int, int, int | None, list[Any]]]:
    """(function id, item id, label id, spans) of enabled functions' votes of their current version."""
    functions = {f.pk: f.version for f in LabellingFunction.objects.filter(project=project, enabled=True)}
    rows = RuleVote.objects.filter(project=project, function_id__in=list(functions)).values_list(
        "function_id", "item_id", "version", "label_id", "spans"
    )
    return [(f, item, label, spans) for f, item, version, label, spans in rows if functions[f] == version]


def sources_collect(project: Project) -> Sources:
    labels = labels_ordered(project)
    column_of_label = {label.pk: index for index, label in enumerate(labels)}
    functions = list(LabellingFunction.objects.filter(project=project, enabled=True).order_by("name"))
    function_column = {function.pk: index for index, function in enumerate(functions)}
    cells: list[tuple[int, int, int]] = []
    for function_id, item_id, label_id, _ in current_votes(project):
        if label_id in column_of_label:
            cells.append((item_id, function_column[function_id], column_of_label[label_id]))
    answers = given_answers(project=project)
    people = sorted({answer.annotator_id for answer in answers})
    person_column = {person: len(functions) + index for index, person in enumerate(people)}
    for answer in answers:
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


Consensus = list[tuple[int, Answer, float]]  # consensus_for_training's rows


def truth_answers(project: Project, consensus: Consensus | None = None) -> dict[int, Answer]:
    """What functions are judged by: gold answers, then people's consensus (read here
    unless the caller has it already)."""
    if consensus is None:
        consensus = consensus_for_training(project=project)
    truth = {item_id: answer for item_id, answer, _ in consensus}
    truth.update(gold_answers(project=project))
    return truth


def _human_covered(project: Project, consensus: Consensus) -> set[int]:
    """Items people's consensus (or gold) already labels: weak labels never replace those."""
    return {item_id for item_id, _, _ in consensus} | set(
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
    consensus = consensus_for_training(project=project)  # read once for the whole fit
    spans = project.task_type == TaskType.SPANS
    summary = _span_weak_labels(project, consensus) if spans else _class_weak_labels(project, consensus)
    humans = bool(consensus)
    active = TrainingRun.objects.filter(project=project).active().exists()
    summary["train"] = summary["weak_labels"] > 0 and not humans and not active
    return summary


def _class_weak_labels(project: Project, consensus: Consensus) -> dict[str, Any]:
    labels = labels_ordered(project)
    sources = sources_collect(project)
    function_count = len(sources.functions)
    if not sources.item_ids or function_count == 0:
        _estimates_write(project, [])
        WeakLabel.objects.filter(project=project).delete()
        return {"functions": function_count, "weak_labels": 0, "method": project.label_model}
    result = _fit(project, sources, len(labels))
    human = _human_covered(project, consensus)
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


def _span_weak_labels(project: Project, consensus: Consensus) -> dict[str, Any]:
    """Entity projects: each function's proposals, most precise function first (precision
    against people's and gold spans where there are some), longer spans first, without
    overlaps. The weak label's confidence is the mean precision of the spans it keeps."""
    functions = {f.pk: f for f in LabellingFunction.objects.filter(project=project, enabled=True)}
    proposals: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)  # item -> (start, end, label, fn)
    for function_id, item_id, _, spans in current_votes(project):
        for start, end, label_id in spans:
            proposals[item_id].append((start, end, label_id, function_id))
    truth = truth_answers(project, consensus)
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
    human = _human_covered(project, consensus)
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
