"""Load Quorum's demo: accounts, a news-topic classification project and an
entity-span project, from the corpus written for the demo in ``apps/projects/demo_data``,
labelled in part by simulated annotators, consolidated, and models trained.

The topics project gets the demo's labelling functions (``news_functions.json``) before
anyone answers: applied at once, their weak labels train model v1 with no human label, as
the issue's "model before the first human label" promises; people's labels then train the
next version.

It drives all three apps, so it lives in the top one. Idempotent: running it again leaves
an existing demo alone (``--reset`` rebuilds it).
"""

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

import apps.projects
from apps.annotation.consensus import consolidation_request
from apps.annotation.consolidation import consolidation_run
from apps.annotation.simulation import SimulatedAnnotator, simulate_crowd
from apps.learning.models import RuleApplication, RuleVote, TrainingRun
from apps.learning.services import training_request
from apps.learning.training import training_run_execute
from apps.learning.weak import functions_import, rules_apply_here, weak_labels_fit
from apps.projects.imports import items_import_start
from apps.projects.jobs import JobState
from apps.projects.models import Item, Project, Role, TaskType
from apps.projects.services import membership_add, project_create

DEMO_DIR = Path(apps.projects.__file__).resolve().parent / "demo_data"
DEMO_PASSWORD = "quorum-demo"  # nosec B105 # published on purpose; demo_allowed_or_refuse keeps it out of production
ANNOTATORS = [f"annotator{n}" for n in range(1, 6)]
# How often each simulated annotator gives the right answer: two careful, two average,
# one careless (the kind that gold items and consolidation are there to catch).
ACCURACIES = [0.94, 0.88, 0.8, 0.72, 0.45]
TOPICS_NAME = "Newsroom topics"
# The manager's rules of thumb for the topics project, in the import format (README.md there).
TOPICS_FUNCTIONS = "news_functions.json"
ENTITIES_NAME = "Newsroom entities"

TOPIC_LABELS = [
    {"name": "World", "color": "#2563eb", "description": "International affairs, politics, conflicts, disasters."},
    {"name": "Sports", "color": "#16a34a", "description": "Matches, athletes, clubs, transfers, results."},
    {"name": "Business", "color": "#ea580c", "description": "Companies, markets, the economy, jobs."},
    {"name": "Science", "color": "#9333ea", "description": "Research, space, health, technology breakthroughs."},
]
ENTITY_LABELS = [
    {"name": "Person", "color": "#2563eb", "key": "p"},
    {"name": "Organization", "color": "#ea580c", "key": "o"},
    {"name": "Location", "color": "#16a34a", "key": "l"},
    {"name": "Date", "color": "#9333ea", "key": "d"},
]
TOPICS_INSTRUCTIONS = """\
Read the news summary and choose the **one topic** it is mostly about.

| Topic | Choose it for |
|---|---|
| World | international politics, diplomacy, conflicts, disasters |
| Sports | games, athletes, clubs, transfers |
| Business | companies, markets, central banks, jobs |
| Science | research, space, medicine, technology |

When a story fits two topics (a football club's share price), pick the one its **main
news** is about. Press the number key of a topic, then *Enter*.
"""
ENTITIES_INSTRUCTIONS = """\
Mark every **person**, **organization**, **location** and **date** in the sentence.
Select the words with the mouse, then press the label's key. Do not include
surrounding punctuation or words such as *the*.
"""


def corpus(name: str) -> list[dict[str, Any]]:
    path = DEMO_DIR / name
    if not path.is_file():
        raise CommandError(f"The demo corpus {path} is missing.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _jsonl_upload(name: str, rows: list[dict[str, Any]]) -> SimpleUploadedFile:
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    return SimpleUploadedFile(name, payload, content_type="application/x-ndjson")


def demo_allowed_or_refuse() -> None:
    """The demo's accounts share a published password (DEMO_PASSWORD): only development and
    the tests (``QUORUM_DEMO_ALLOWED``) may create them, never production."""
    if not settings.QUORUM_DEMO_ALLOWED:
        raise CommandError(
            f"The demo is refused under {settings.SETTINGS_MODULE}: its accounts share a published "
            "password. It runs under development settings only (platform.settings.dev, manage.py's default)."
        )


class Command(BaseCommand):
    help = "Create the demo accounts and projects (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete the demo projects and load them again.")

    def handle(self, *args: Any, **options: Any) -> None:
        demo_allowed_or_refuse()
        if options["reset"]:
            Project.objects.filter(name__in=[TOPICS_NAME, ENTITIES_NAME]).delete()
        users = self._users()
        if Project.objects.filter(name=TOPICS_NAME).exists():
            self.stdout.write("The demo is loaded already (use --reset to load it again).")
            return
        with transaction.atomic():
            topics = self._topics_project(users)
            entities = self._entities_project(users)
        self._weak_start(topics, users["manager"])
        self._simulate(topics, users, "news.jsonl", lambda row: row["topic"], answers=560)
        self._simulate(entities, users, "entities.jsonl", lambda row: row["gold_spans"], answers=110)
        self._weak_refit(topics)
        self._train(topics)
        self.stdout.write(self.style.SUCCESS("Demo loaded."))

    def _train(self, project: Project) -> None:
        """A model on people's labels (and weak labels where they have none) for the topics
        project, so its model page compares it with v1 and pre-labels have something to show
        (the entities model trains when asked: it takes longer)."""
        run = training_run_execute(run_id=training_request(project=project, trigger="demo").pk)
        if run is not None and run.state == JobState.SUCCEEDED and run.version is not None:
            snapshot = run.version.snapshot
            self.stdout.write(
                f"  {project.name}: model v{run.version.number} on {snapshot.get('human_items', 0)} people's labels "
                f"and {snapshot.get('weak_items', 0)} weak labels, macro-F1 {run.metrics.get('macro_f1', 0):.2f}, "
                + ("promoted to champion" if run.promoted else "kept as challenger")
            )
        else:
            self.stdout.write(f"  {project.name}: no model ({run.error if run else 'not run'})")

    def _weak_start(self, project: Project, manager: Any) -> None:
        """Before anyone answers: the manager's functions, applied here chunk by chunk as
        workers would, and model v1 trained on their weak labels alone."""
        path = DEMO_DIR / TOPICS_FUNCTIONS
        if not path.is_file():
            raise CommandError(f"The demo's labelling functions {path} are missing.")
        try:
            functions_import(project=project, raw=path.read_bytes(), user=manager)
            application = rules_apply_here(project=project, user=manager)
        except ValidationError as error:
            raise CommandError(f"The demo's labelling functions cannot be applied: {error.messages}") from None
        self._report_application(project, application)
        self._train_weak(project)

    def _report_application(self, project: Project, application: RuleApplication) -> None:
        if application.state != JobState.SUCCEEDED:
            self.stdout.write(f"  {project.name}: functions not applied ({application.state}: {application.error})")
            return
        covered = RuleVote.objects.filter(project=project).values("item_id").distinct().count()
        summary = application.summary
        self.stdout.write(
            f"  {project.name}: {summary['functions']} labelling functions cover {covered} of "
            f"{application.item_count} items; {summary['weak_labels']} weak labels ({summary['method']})"
        )

    def _train_weak(self, project: Project) -> None:
        """The run the application requested when no person had labelled yet, run here if no
        worker has taken it."""
        run = TrainingRun.objects.filter(project=project, trigger="weak").order_by("-pk").first()
        if run is None:
            self.stdout.write(f"  {project.name}: no training on weak labels was requested")
            return
        if run.state == JobState.QUEUED:
            run = training_run_execute(run_id=run.pk) or run
        if run.state != JobState.SUCCEEDED or run.version is None:
            self.stdout.write(f"  {project.name}: no model on weak labels ({run.state} {run.error})")
            return
        version = run.version
        judged = (
            f"macro-F1 {run.metrics.get('macro_f1', 0):.2f} on {version.evaluation['size']} "
            f"{version.evaluation['source']} items"
            if version.evaluation.get("size")
            else "no evaluation yet"
        )
        self.stdout.write(
            f"  {project.name}: model v{version.number} on {version.snapshot.get('weak_items', 0)} weak labels "
            f"and no human label, {judged}"
        )

    def _weak_refit(self, project: Project) -> None:
        """With people's answers in, one label model weighs them and the functions together,
        so the reports page shows every source's estimated accuracy."""
        summary = weak_labels_fit(project=project)
        self.stdout.write(
            f"  {project.name}: label model refit with people's answers, "
            f"{summary['weak_labels']} weak labels left on items no consensus covers"
        )

    def _simulate(self, project: Project, users: dict[str, Any], corpus_name: str, truth_of: Any, answers: int) -> None:
        """Simulated annotators label part of the project, so every page has data."""
        truth_by_id = {row["id"]: truth_of(row) for row in corpus(corpus_name)}
        truth = {
            pk: truth_by_id[external]
            for pk, external in Item.objects.filter(project=project).values_list("pk", "external_id")
        }
        crowd = [
            SimulatedAnnotator(users[name], accuracy, seconds_per_item=6 + 3 * n)
            for n, (name, accuracy) in enumerate(zip(ANNOTATORS, ACCURACIES, strict=True))
        ]
        given = simulate_crowd(project=project, annotators=crowd, truth=truth, answers=answers, spread_days=12)
        run = consolidation_run(run_id=consolidation_request(project=project).pk)
        self.stdout.write(
            f"  {project.name}: {given} simulated answers, consolidated with {run.method if run else '-'}"
        )

    def _users(self) -> dict[str, Any]:
        User = get_user_model()
        users = {}
        for username in ["admin", "manager", "reviewer", *ANNOTATORS]:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.quorum.invalid"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                if username == "admin":
                    user.is_staff = user.is_superuser = True
                user.save()
            users[username] = user
        users["manager"].user_permissions.add(Permission.objects.get(codename="add_project"))
        return users

    def _members(self, project: Project, users: dict[str, Any]) -> None:
        membership_add(project=project, user_identifier="reviewer", role=Role.REVIEWER)
        for username in ANNOTATORS:
            membership_add(project=project, user_identifier=username, role=Role.ANNOTATOR)

    def _import(self, project: Project, user: Any, name: str, rows: list[dict[str, Any]]) -> None:
        job = items_import_start(project=project, user=user, upload=_jsonl_upload(name, rows), fmt="jsonl", inline=True)
        if job.state != JobState.SUCCEEDED:
            raise CommandError(f"The demo import failed: {job.message} {job.errors[:5]}")
        self.stdout.write(f"  {project.name}: {job.rows_imported} items")

    def _topics_project(self, users: dict[str, Any]) -> Project:
        project = project_create(
            user=users["manager"],
            name=TOPICS_NAME,
            task_type=TaskType.SINGLE_LABEL,
            instructions=TOPICS_INSTRUCTIONS,
            overlap=3,
            budget_max_annotations=1200,
            price_per_annotation="0.05",
            gold_ratio=0.1,
            labels=TOPIC_LABELS,
        )
        self._members(project, users)
        # Every tenth story is a gold item; the others' topics stay hidden, as the truth
        # that simulated annotators answer from.
        rows = [
            {"id": row["id"], "text": row["text"], **({"gold": row["topic"]} if n % 10 == 0 else {})}
            for n, row in enumerate(corpus("news.jsonl"))
        ]
        self._import(project, users["manager"], "news.jsonl", rows)
        return project

    def _entities_project(self, users: dict[str, Any]) -> Project:
        project = project_create(
            user=users["manager"],
            name=ENTITIES_NAME,
            task_type=TaskType.SPANS,
            instructions=ENTITIES_INSTRUCTIONS,
            overlap=2,
            gold_ratio=0.15,
            labels=ENTITY_LABELS,
        )
        self._members(project, users)
        rows = [
            {"id": row["id"], "text": row["text"], **({"gold": row["gold_spans"]} if n % 6 == 0 else {})}
            for n, row in enumerate(corpus("entities.jsonl"))
        ]
        self._import(project, users["manager"], "entities.jsonl", rows)
        return project
