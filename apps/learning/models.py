"""The learning side: training runs, the model registry, and pool rankings. (Pre-labels,
``Suggestion``, belong to the annotation app, which shows them; learning writes them.)"""

from django.conf import settings
from django.db import models

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
    A run whose heartbeat stopped ten minutes ago is stale: its worker died."""

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
    ranking cancels a running one, whose remaining chunks then do nothing."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pool_rankings")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    item_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.JSONField(default=list, blank=True)

    class Meta(Job.Meta):
        constraints = [one_active_per_project("one_active_ranking_per_project")]

    def __str__(self) -> str:
        return f"ranking {self.pk} of project {self.project_id} ({len(self.chunks_done)}/{self.chunks_total})"
