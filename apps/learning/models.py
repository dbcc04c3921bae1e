"""The learning side: training runs, the model registry, and pool rankings. (Pre-labels,
``Suggestion``, belong to the annotation app, which shows them; learning writes them.)"""

from typing import Any

from django.conf import settings
from django.db import models

from apps.projects.answers import AnswerField
from apps.projects.jobs import Job, one_active_per_project
from apps.projects.models import Project


class VersionStatus(models.TextChoices):
    CHALLENGER = "challenger", "Challenger"
    CHAMPION = "champion", "Champion"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    """One trained model: its artifact (safetensors), what it was trained on and how it scored.

    ``evaluation`` names the evaluation set (its item ids' hash and size) so that a
    challenger and the champion are compared on the same items; ``snapshot`` records the
    training set (how many items, which labels, which consolidation method)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.CHALLENGER)
    pinned = models.BooleanField(default=False, help_text="A pinned champion is never replaced automatically.")
    mode = models.CharField(max_length=20)
    backbone = models.CharField(max_length=500)
    artifact = models.CharField(max_length=500, blank=True, help_text="Folder under VAR_DIR/models.")
    metrics = models.JSONField(default=dict, blank=True)
    evaluation = models.JSONField(default=dict, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    train_size = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="one_version_number_per_project"),
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(status=VersionStatus.CHAMPION), name="one_champion_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"model v{self.number} of project {self.project_id} ({self.status})"


class TrainingRun(Job):
    """One training of a challenger. Claimed atomically; at most one active per project.
    A run whose heartbeat stopped is stale: its worker died (apps/projects/jobs.py)."""

    task_name = "learning.training_run"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    trigger = models.CharField(max_length=20, default="manual")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mode = models.CharField(max_length=20)
    log = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    promoted = models.BooleanField(default=False)

    class Meta(Job.Meta):
        constraints = [one_active_per_project("one_active_training_per_project")]

    def __str__(self) -> str:
        return f"training {self.pk} of project {self.project_id} ({self.state})"


class PoolRanking(Job):
    """One scoring of a large pool, split into chunks that workers score in parallel.

    Each chunk task records its index in ``chunks_done`` under a row lock; the task that
    completes the last chunk finishes the ranking (lifts a varied first batch). A newer
    ranking cancels a running one, whose remaining chunks then do nothing. A small pool (or a
    strategy that compares items) is one chunk, the whole pool. Chunks do not claim the
    ranking: it is created running, every chunk beats for it, and resuming it sends the
    chunks not done again."""

    claimed_by_task = False

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pool_rankings")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    item_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.JSONField(default=list, blank=True)
    # [first item id, last item id] of each chunk, so a resumed ranking can send the rest.
    chunk_bounds = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        constraints = [one_active_per_project("one_active_ranking_per_project")]

    def __str__(self) -> str:
        return f"ranking {self.pk} of project {self.project_id} ({len(self.chunks_done)}/{self.chunks_total})"

    def resume_messages(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [
            ("learning.pool_rank_chunk", (self.pk, index, first, last))
            for index, (first, last) in enumerate(self.chunk_bounds)
            if index not in self.chunks_done
        ]


class EmbeddingJob(Job):
    """Embedding one chunk of a project's items into its cache (new items after an import).
    Several run side by side; repeating one only rewrites the same vectors."""

    task_name = "learning.embedding_job"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="embedding_jobs")
    item_ids = models.JSONField(default=list)
    embedded = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"embedding {self.pk} of project {self.project_id} ({len(self.item_ids)} items, {self.state})"


# --- weak supervision: labelling functions, their votes, and what the label model makes of them


class LabellingFunction(models.Model):
    """A rule (or the champion, or an imported prediction source) that votes a label or
    abstains. ``definition`` is the function in the import format (apps/learning/rules.py);
    editing it makes a new version (``LabellingFunctionVersion``), and votes record the
    version they came from, so stale votes are known."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labelling_functions")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    definition = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="one_function_name_per_project")]

    def __str__(self) -> str:
        return f"labelling function {self.name} v{self.version} of project {self.project_id}"


class LabellingFunctionVersion(models.Model):
    """Every definition a function has had, newest last."""

    function = models.ForeignKey(LabellingFunction, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["function", "number"]
        constraints = [models.UniqueConstraint(fields=["function", "number"], name="one_function_version_number")]

    def __str__(self) -> str:
        return f"{self.function.name} v{self.number}"


class RuleVote(models.Model):
    """A function's vote on an item (abstentions are not stored): a label for classification,
    proposed spans for entity projects (``spans``: [[start, end, label id], ...])."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("projects.Item", on_delete=models.CASCADE, related_name="+")
    function = models.ForeignKey(LabellingFunction, on_delete=models.CASCADE, related_name="votes")
    version = models.PositiveIntegerField()
    label = models.ForeignKey("projects.Label", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    spans = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["function", "item"], name="one_vote_per_function_item")]
        indexes = [models.Index(fields=["project", "item"])]

    def __str__(self) -> str:
        return f"vote of {self.function_id} on item {self.item_id}"


class ExternalPrediction(models.Model):
    """A prediction imported from outside (another team's model, a Label Studio
    ``predictions`` block), which an ``external`` function turns into votes."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=100)
    item = models.ForeignKey("projects.Item", on_delete=models.CASCADE, related_name="+")
    label = models.ForeignKey("projects.Label", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    spans = models.JSONField(default=list, blank=True)
    score = models.FloatField(null=True, blank=True)
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "source", "item"], name="one_prediction_per_source_item")
        ]

    def __str__(self) -> str:
        return f"{self.source} on item {self.item_id}"


class WeakLabel(models.Model):
    """The label model's label for an item no person has labelled yet: training data marked
    as weak, kept apart from people's answers and the consensus, weighted by ``confidence``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField("projects.Item", on_delete=models.CASCADE, related_name="weak_label")
    answer = AnswerField(default=list)
    confidence = models.FloatField()
    posteriors = models.JSONField(default=dict, blank=True)  # label id -> probability
    method = models.CharField(max_length=40)
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"weak label of item {self.item_id}"


class SourceKind(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    FUNCTION = "function", "Labelling function"


class SourceEstimate(models.Model):
    """What the one source model learnt about one source: people and functions side by side."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    key = models.CharField(max_length=100)  # user id or function name
    title = models.CharField(max_length=200)
    accuracy = models.FloatField(null=True, blank=True)
    coverage = models.FloatField(default=0.0)
    votes = models.PositiveIntegerField(default=0)
    flagged = models.BooleanField(default=False)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "-accuracy"]
        constraints = [models.UniqueConstraint(fields=["project", "kind", "key"], name="one_estimate_per_source")]

    def __str__(self) -> str:
        return f"{self.kind} {self.title}: {self.accuracy}"


class RuleApplication(Job):
    """Applying every enabled function to the project's items, then fitting the label model.

    Like a pool ranking, it is split into chunks of item ids that any number of workers apply
    side by side; the chunk that completes it fits the label model (``weak.weak_labels_fit``)."""

    claimed_by_task = False

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rule_applications")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    item_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.JSONField(default=list, blank=True)
    chunk_bounds = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        constraints = [one_active_per_project("one_active_rule_application_per_project")]

    def __str__(self) -> str:
        return f"rule application {self.pk} of project {self.project_id} ({self.state})"

    def resume_messages(self) -> list[tuple[str, tuple[Any, ...]]]:
        if len(self.chunks_done) == self.chunks_total:  # its worker died fitting the label model
            return [("learning.rule_application_fit", (self.pk,))]
        return [
            ("learning.rule_apply_chunk", (self.pk, index, first, last))
            for index, (first, last) in enumerate(self.chunk_bounds)
            if index not in self.chunks_done
        ]
