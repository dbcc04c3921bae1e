"""The learning side: suggested answers (pre-labels), training runs and the model registry."""

from django.conf import settings
from django.db import models

from apps.projects.models import Item, JobState, Project


class Suggestion(models.Model):
    """A model's suggested answer for an item, shown to annotators as a pre-label.

    ``parts`` holds label parts as ``[{"label_id": 3, "start": null, "end": null}]``;
    ``scores`` maps label ids to probabilities where the model gives them.
    """

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="suggestion")
    parts = models.JSONField(default=list)
    confidence = models.FloatField(null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=100, help_text="What made it, e.g. a model version.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"suggestion for item {self.item_id} from {self.source}"


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
                fields=["project"], condition=models.Q(status="champion"), name="one_champion_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"model v{self.number} of project {self.project_id} ({self.status})"


class TrainingRun(models.Model):
    """One training of a challenger. Claimed atomically; at most one active per project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    trigger = models.CharField(max_length=20, default="manual")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mode = models.CharField(max_length=20)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    log = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    promoted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_active_training_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"training {self.pk} of project {self.project_id} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)


class PoolRanking(models.Model):
    """One scoring of a large pool, split into chunks that workers score in parallel.

    Each chunk task records its index in ``chunks_done`` under a row lock; the task that
    completes the last chunk finishes the ranking (lifts a varied first batch). A newer
    ranking supersedes a running one, whose remaining chunks then do nothing."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pool_rankings")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.RUNNING)
    item_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"ranking {self.pk} of project {self.project_id} ({len(self.chunks_done)}/{self.chunks_total})"

    @property
    def progress(self) -> int:
        return round(100 * len(self.chunks_done) / self.chunks_total) if self.chunks_total else 100
