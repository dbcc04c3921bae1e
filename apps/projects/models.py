"""Projects, their label ontology, who may work on them, and the items to label.

Label answers (gold here, annotations in ``apps.annotation``) are stored as rows that
point at a :class:`Label`, never as label names: renaming a label keeps every answer,
and the database refuses to delete a label that an answer still uses.
"""

import random
import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from platform.backbones import backbone_default

from .jobs import Job


class TaskType(models.TextChoices):
    SINGLE_LABEL = "single_label", "Single-label classification"
    MULTI_LABEL = "multi_label", "Multi-label classification"
    SPANS = "spans", "Named-entity spans"


class ConsolidationMethod(models.TextChoices):
    AUTO = "auto", "Automatic (best on gold items)"
    MAJORITY_VOTE = "majority_vote", "Majority vote"
    WAWA = "wawa", "Wawa"
    ZERO_BASED_SKILL = "zero_based_skill", "Zero-based skill"
    DAWID_SKENE = "dawid_skene", "Dawid-Skene"
    ONE_COIN_DAWID_SKENE = "one_coin_dawid_skene", "One-coin Dawid-Skene"
    GLAD = "glad", "GLAD"
    MACE = "mace", "MACE"
    MMSR = "mmsr", "M-MSR"


# What people read: a plain name with the technical one beside. Not the choices' labels above,
# which the migrations hold (a changed label would need a migration); stored values stay the same.
METHOD_NAMES: dict[str, str] = {
    ConsolidationMethod.AUTO: "Automatic: the most accurate on gold items",
    ConsolidationMethod.MAJORITY_VOTE: "Most common answer (majority vote)",
    ConsolidationMethod.WAWA: "Weighted by agreement with the majority (Wawa)",
    ConsolidationMethod.ZERO_BASED_SKILL: "Weighted by skill learnt step by step (zero-based skill)",
    ConsolidationMethod.DAWID_SKENE: "Weighted by learned skill (Dawid-Skene)",
    ConsolidationMethod.ONE_COIN_DAWID_SKENE: "Weighted by one learned accuracy per person (one-coin Dawid-Skene)",
    ConsolidationMethod.GLAD: "Weighted by skill and item difficulty (GLAD)",
    ConsolidationMethod.MACE: "Learns who answers at random (MACE)",
    ConsolidationMethod.MMSR: "Skill from how people agree with each other (M-MSR)",
    # Other methods a consensus or a weak label records (apps.annotation, apps.learning).
    "gold": "The gold answer",
    "weighted vote": "Provisional vote weighted by skill",
    "token Dawid-Skene": "Weighted by learned skill, word by word (token Dawid-Skene)",
    "span_precedence": "The most precise function's spans first (span precedence)",
    "snorkel": "Learned from the functions' agreements (Snorkel)",
}


def method_name(method: str) -> str:
    """A method's plain name, or what was stored when it has none."""
    return METHOD_NAMES.get(method, method)


class SamplingStrategy(models.TextChoices):
    RANDOM = "random", "Random"
    LEAST_CONFIDENCE = "least_confidence", "Least confidence"
    MARGIN = "margin", "Margin"
    ENTROPY = "entropy", "Entropy"
    COMMITTEE = "committee", "Committee disagreement"
    BALD = "bald", "BALD"
    DIVERSITY = "diversity", "Diversity (embedding clusters)"
    EXPECTED_MODEL_CHANGE = "expected_model_change", "Expected model change"
    BOUNDARY = "boundary", "Boundary search"
    MNLP = "mnlp", "MNLP (entity spans)"
    MIX = "mix", "Weighted mix"


class BlockedAnswers(models.TextChoices):
    EXCLUDE = "exclude", "Excluded from consolidation"
    DOWNWEIGHT = "downweight", "Kept, down-weighted"


class TrainingMode(models.TextChoices):
    HEAD = "head", "Head on cached embeddings (fast on CPU)"
    FINETUNE = "finetune", "Fine-tune the transformer"


class LabelModel(models.TextChoices):
    """How labelling functions' votes (and people's answers, as sources beside them) are
    combined into weak labels: docs/weak_supervision.md says why Dawid-Skene is the default."""

    DAWID_SKENE = "dawid_skene", "Dawid-Skene over every source (people and functions together)"
    MAJORITY_VOTE = "majority_vote", "Majority vote of the functions"
    SNORKEL = "snorkel", "Snorkel's label model"


class PrelabelMode(models.TextChoices):
    SHOW = "show", "Show suggestions"
    AFTER = "after", "Show only after answering"
    HIDE = "hide", "Hide suggestions"


class Role(models.TextChoices):
    MANAGER = "manager", "Manager"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"


class Project(models.Model):
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Markdown, shown to annotators.")
    task_type = models.CharField(max_length=20, choices=TaskType.choices, default=TaskType.SINGLE_LABEL)
    allow_overlapping_spans = models.BooleanField(
        default=False, help_text="Entity-span projects only: may two spans share characters?"
    )
    overlap = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="How many different annotators label each item (k).",
    )
    budget_max_annotations = models.PositiveIntegerField(
        null=True, blank=True, help_text="Maximum paid annotations; empty means no limit."
    )
    # Paid (non-gold) annotations submitted so far; kept by annotation_submit.
    budget_spent = models.PositiveIntegerField(default=0, editable=False)
    price_per_annotation = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, validators=[MinValueValidator(0)]
    )
    currency = models.CharField(
        max_length=3, default="USD", validators=[RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO code.")]
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="How long an annotator holds an item before it goes back to the pool.",
    )
    gold_ratio = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of assignments that are gold items (0 to 1).",
    )
    quality_threshold = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Minimum gold accuracy an annotator must keep (0 to 1).",
    )
    consolidation_method = models.CharField(
        max_length=30, choices=ConsolidationMethod.choices, default=ConsolidationMethod.AUTO
    )
    consolidate_every = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="Re-run consolidation over the whole project after this many new answers.",
    )
    confidence_threshold = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Dynamic overlap: an item whose consensus confidence is below this after k answers "
        "asks for another annotator (0 turns it off).",
    )
    max_overlap = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Dynamic overlap: the most annotators an item may get; empty means k.",
    )
    quality_min_gold = models.PositiveSmallIntegerField(
        default=10, help_text="Gold answers an annotator gives before the quality threshold applies."
    )
    blocked_answers = models.CharField(
        max_length=20,
        choices=BlockedAnswers.choices,
        default=BlockedAnswers.EXCLUDE,
        help_text="What happens to the answers of annotators blocked for low quality.",
    )
    # Answers since the last full consolidation; kept by annotation_submit.
    pending_consolidation = models.PositiveIntegerField(default=0, editable=False)
    sampling_strategy = models.CharField(
        max_length=30, choices=SamplingStrategy.choices, default=SamplingStrategy.MARGIN
    )
    strategy_weights = models.JSONField(
        default=dict,
        blank=True,
        help_text='For the weighted mix, e.g. {"margin": 0.7, "diversity": 0.2, "random": 0.1}.',
    )
    # A name from the site's list (settings.QUORUM_BACKBONES), never a folder: see platform/backbones.py.
    backbone = models.CharField(
        max_length=64,
        default=backbone_default,
        help_text="The model that embeds the texts, from the backbones this site offers.",
    )
    training_mode = models.CharField(
        max_length=20,
        choices=TrainingMode.choices,
        default=TrainingMode.HEAD,
    )
    train_every = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="Train a new model after this many newly labelled items.",
    )
    train_weight_by_confidence = models.BooleanField(
        default=True, help_text="Weigh each training label by its consensus confidence."
    )
    # A database default too: code from before this column (a worker mid-deploy) still inserts projects.
    label_model = models.CharField(
        max_length=20,
        choices=LabelModel.choices,
        default=LabelModel.DAWID_SKENE,
        db_default=LabelModel.DAWID_SKENE,
        help_text="How labelling functions' votes become weak labels.",
    )
    prelabel_mode = models.CharField(
        max_length=10,
        choices=PrelabelMode.choices,
        default=PrelabelMode.SHOW,
        help_text="Model suggestions in the annotate view (after answering avoids anchoring).",
    )
    auto_label_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Items the model is at least this sure of get a model label instead of annotators (empty: off).",
    )
    # --- the crowd: limits, the qualification test, training, pay (docs/crowd.md)
    max_items_per_annotator = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At most this many answers per person (empty: no limit), so one fast worker cannot take the budget.",
    )
    qualification_size = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        validators=[MaxValueValidator(100)],
        help_text="Gold items in the qualification test a newcomer must pass before real work (0: no test).",
    )
    qualification_pass_mark = models.FloatField(
        default=0.8,
        db_default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The share of test items a person must get right.",
    )
    qualification_attempts = models.PositiveSmallIntegerField(
        default=2,
        db_default=2,
        validators=[MinValueValidator(1)],
        help_text="How many times a person may take the test.",
    )
    training_items = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        validators=[MaxValueValidator(200)],
        help_text="A newcomer's first items show the right answer after they answer (gold items; never consolidated).",
    )
    suggestion_min_confidence = models.FloatField(
        default=0.5,
        db_default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A model suggestion below this confidence is shown without a one-key accept.",
    )
    bonus_gold_accuracy = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="People whose gold accuracy reaches this earn the bonus per answer on top (empty: no bonus).",
    )
    bonus_per_answer = models.DecimalField(
        max_digits=8, decimal_places=4, default=0, db_default=0, validators=[MinValueValidator(0)]
    )
    # Items newly labelled since the last training run; kept by the annotation services.
    pending_training = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Set on each request by the permission gate (selectors.project_get_for_user): the
    # requesting user's role here, and whether they are blocked (None: not asked yet).
    user_role: str | None = None
    user_blocked: bool | None = None

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_spans(self) -> bool:
        return self.task_type == TaskType.SPANS


# Distinct, readable colours handed to new labels in turn.
LABEL_PALETTE = [
    "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2",
    "#a16207", "#db2777", "#4f46e5", "#059669", "#b91c1c", "#7c3aed",
]  # fmt: skip


class Label(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    color = models.CharField(
        max_length=7,
        default="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #2563eb.")],
    )
    key = models.CharField(
        max_length=1,
        blank=True,
        validators=[RegexValidator(r"^[a-z0-9]$", "Use one lower-case letter or digit.")],
        help_text="Keyboard shortcut in the annotate view.",
    )
    description = models.TextField(blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "project",
                name="label_name_unique_in_project",
                violation_error_message="This project already has a label with that name.",
            ),
            models.UniqueConstraint(
                fields=["project", "key"],
                condition=~models.Q(key=""),
                name="label_key_unique_in_project",
                violation_error_message="Another label of this project already uses that key.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


def _link_token() -> str:
    return secrets.token_urlsafe(24)


def _completion_code() -> str:
    return secrets.token_hex(4).upper()


class JoinLink(models.Model):
    """A link a stranger opens to join a project (docs/crowd.md): they sign up or log in, or,
    when ``worker_id_param`` names the parameter an external crowd platform adds (e.g.
    ``PROLIFIC_PID``), an account linked to that worker id is found or made without a
    password. People who finish their quota or leave see ``completion_code``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="join_links")
    token = models.CharField(max_length=64, unique=True, default=_link_token, editable=False)
    name = models.CharField(max_length=100, blank=True, help_text='What it is for, e.g. "Prolific batch 3".')
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    uses = models.PositiveIntegerField(default=0, editable=False)
    worker_id_param = models.CharField(
        max_length=40,
        blank=True,
        validators=[RegexValidator(r"^[A-Za-z][A-Za-z0-9_]*$", "Letters, digits and _, starting with a letter.")],
        help_text="The query parameter an external platform sends the worker id in (empty: people sign up).",
    )
    completion_code = models.CharField(max_length=40, default=_completion_code)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"join link {self.name or self.pk} of project {self.project_id}"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    # A blocked annotator gets no new items; the reason says who or what blocked them.
    is_blocked = models.BooleanField(default=False)
    blocked_reason = models.CharField(max_length=300, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    # Gold answers before this count no more toward automatic blocking (a fresh start).
    unblocked_at = models.DateTimeField(null=True, blank=True)
    # How they joined: the link, and the worker id an external crowd platform gave them.
    join_link = models.ForeignKey(JoinLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    external_worker_id = models.CharField(max_length=200, blank=True, default="", db_default="")
    # The qualification test (apps/annotation): passed when, or never.
    qualified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user"),
            # One account per crowd worker in a project, even when two links are opened at once.
            models.UniqueConstraint(
                fields=["project", "external_worker_id"],
                condition=~models.Q(external_worker_id=""),
                name="one_account_per_worker_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class ItemState(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETE = "complete", "Complete"


def _random_key() -> float:
    return random.random()  # nosec B311 # an order to hand items out in, not a secret


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=255, blank=True, default="")
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    # A gold item's answer lives in GoldLabel rows; the flag is separate because an
    # entity-span gold item may rightly have no spans at all.
    is_gold = models.BooleanField(default=False)
    state = models.CharField(max_length=20, choices=ItemState.choices, default=ItemState.OPEN)
    # Written by active learning; until then items go out in the stable random order.
    priority = models.FloatField(default=0.0)
    random_key = models.FloatField(default=_random_key)
    annotation_count = models.PositiveIntegerField(default=0)
    # Live leases on the item; with annotation_count it decides whether the item still
    # has room for another annotator. Kept by the task-distribution services.
    lease_count = models.PositiveIntegerField(default=0)
    # Dynamic overlap: annotators asked for beyond the project's k.
    extra_annotations = models.PositiveSmallIntegerField(default=0)
    # Set when consolidation gives the item a label; annotators can no longer change it.
    consolidated_at = models.DateTimeField(null=True, blank=True)
    import_job = models.ForeignKey("ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~models.Q(external_id=""),
                name="item_external_id_unique_in_project",
                violation_error_message="This project already has an item with that external id.",
            )
        ]
        indexes = [
            models.Index(fields=["project", "state", "id"], name="item_project_state"),
            models.Index(fields=["project", "is_gold", "id"], name="item_project_gold"),
            # The annotation queue: open, non-gold items in priority order.
            models.Index(
                fields=["project", "-priority", "random_key"],
                name="item_project_queue",
                condition=models.Q(is_gold=False) & ~models.Q(state=ItemState.COMPLETE),
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"item {self.pk}"


class GoldLabel(models.Model):
    """One part of a gold answer: a label for classification, a labelled span for NER."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="gold_labels")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["start", "label_id"]
        indexes = [models.Index(fields=["label"], name="goldlabel_label")]

    def __str__(self) -> str:
        where = f" {self.start}-{self.end}" if self.start is not None else ""
        return f"gold label {self.label_id}{where} of item {self.item_id}"


class ImportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"
    JSON = "json", "JSON (array, Label Studio tasks)"
    CONLL = "conll", "CoNLL (entity spans)"


class ImportJob(Job):
    """One uploaded file and what became of it. A file is imported whole or not at all.
    While it runs, its progress lives in the shared cache (see ``selectors.import_progress``):
    its database writes stay invisible until the import commits as a whole."""

    task_name = "projects.import_job"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=10, choices=ImportFormat.choices)
    options = models.JSONField(default=dict, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"import {self.pk} ({self.original_name})"

    @property
    def message(self) -> str:
        """How the import ended, for people: why it failed, or what it imported."""
        return self.error or self.stage

    def on_end(self) -> None:
        # An ended job never reads its file again: keep no user upload on disk.
        self.upload_delete()

    def upload_delete(self) -> None:
        """Delete the stored upload (safe to call again: a missing file is not an error)."""
        if not self.file:
            return
        self.file.delete(save=False)
        ImportJob.objects.filter(pk=self.pk).update(file="")
