"""Who works on which item (assignments, i.e. leases), what they answered, what the crowd's
answers add up to (consensus, annotator quality, consolidation runs), and the pre-labels
shown beside an item.

An annotation's parts are rows pointing at a Label, like gold answers, so label renames
keep them and a used label cannot be deleted. Consensus labels and suggestions keep their
answer in an ``AnswerField`` (apps/projects/answers.py).
"""

from django.conf import settings
from django.db import models

from apps.projects.answers import Answer, AnswerField
from apps.projects.jobs import Job, one_active_per_project
from apps.projects.models import Item, Label, Project


class AssignmentState(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """One annotator's claim on one item. There is at most one per (item, annotator): a
    lease that expired is reused if the item comes back to the same annotator, so no
    annotator ever holds or answers an item twice."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=20, choices=AssignmentState.choices, default=AssignmentState.LEASED)
    is_gold = models.BooleanField(default=False)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["leased_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_assignment_per_item_and_annotator")
        ]
        indexes = [
            models.Index(fields=["project", "state", "expires_at"], name="assignment_live"),
            models.Index(fields=["annotator", "project", "state"], name="assignment_annotator"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}: item {self.item_id} to {self.annotator_id} ({self.state})"


class Annotation(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )
    # Made by the client for each answer it sends; a repeated submit carries the same id.
    submission_id = models.UUIDField()
    # Gold answers are free: they test annotators rather than label data.
    is_gold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Goes up by one with each change; a change names the version it started from, so a
    # stale one is refused instead of overwriting a newer answer.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_annotation_per_item_and_annotator"),
            models.UniqueConstraint(fields=["annotator", "submission_id"], name="one_annotation_per_submission"),
        ]
        indexes = [
            models.Index(fields=["project", "annotator"], name="annotation_project_annotator"),
            models.Index(fields=["project", "created_at"], name="annotation_project_created"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} by {self.annotator_id} on item {self.item_id}"


class AnnotationLabel(models.Model):
    """One part of an answer: a chosen label, or a labelled character span."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="labels")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    start = models.PositiveIntegerField(null=True, blank=True)
    end = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["start", "label_id"]
        indexes = [models.Index(fields=["label"], name="annotationlabel_label")]

    def __str__(self) -> str:
        where = f" {self.start}-{self.end}" if self.start is not None else ""
        return f"label {self.label_id}{where} of annotation {self.annotation_id}"


class ItemConsensus(models.Model):
    """An item's consolidated answer: what training data and exports use.

    ``parts`` is the answer; ``posteriors`` maps label ids to probabilities where the
    method gives them. A reviewer's answer is kept as it is by every later consolidation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="consensus")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="consensus")
    parts = AnswerField(default=Answer)
    confidence = models.FloatField(null=True, blank=True)
    posteriors = models.JSONField(default=dict, blank=True)
    method = models.CharField(max_length=40)
    is_provisional = models.BooleanField(default=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # A label the model gave on its own (auto-labelling), never mixed with human labels.
    is_model_label = models.BooleanField(default=False)
    review_note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "confidence"], name="consensus_project_confidence")]

    def __str__(self) -> str:
        return f"consensus for item {self.item_id} ({self.method})"

    @property
    def is_reviewed(self) -> bool:
        return self.reviewed_at is not None


class AnnotatorQuality(models.Model):
    """What the last full consolidation learnt about one annotator."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotator_quality")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    skill = models.FloatField(null=True, blank=True)
    # P(given label | true label) as {true label id: {given label id: p}}.
    confusion = models.JSONField(default=dict, blank=True)
    agreement = models.FloatField(null=True, blank=True, help_text="Mean score of answers against the consensus.")
    gold_answered = models.PositiveIntegerField(default=0)
    gold_accuracy = models.FloatField(null=True, blank=True)
    method = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator"], name="one_quality_per_annotator")]

    def __str__(self) -> str:
        return f"quality of {self.annotator_id} in project {self.project_id}"


class ConsolidationRun(Job):
    """One full consolidation of a project. At most one is queued or running at a time."""

    task_name = "annotation.consolidation_run"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="consolidation_runs")
    requested_method = models.CharField(max_length=40)
    method = models.CharField(max_length=40, blank=True, help_text="The method used (auto's choice).")
    choice_scores = models.JSONField(default=dict, blank=True)
    choice_reason = models.CharField(max_length=300, blank=True)
    items = models.PositiveIntegerField(default=0)
    annotations = models.PositiveIntegerField(default=0)
    # Agreement figures computed with the run, for the reports (see apps/annotation/reports.py).
    report = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        constraints = [one_active_per_project("one_active_consolidation_per_project")]

    def __str__(self) -> str:
        return f"consolidation {self.pk} of project {self.project_id} ({self.state})"


class Suggestion(models.Model):
    """A suggested answer for an item (a pre-label), shown to annotators: a model's guess
    today; labelling functions and imported predictions are sources too.

    ``scores`` maps label ids to probabilities where the source gives them."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="suggestion")
    parts = AnswerField(default=Answer)
    confidence = models.FloatField(null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=100, help_text="What made it, e.g. a model version.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"suggestion for item {self.item_id} from {self.source}"


class QualificationAttempt(models.Model):
    """One sitting of a project's qualification test: gold items drawn for this person, their
    answers, and the score against the gold answers. Test answers never enter consolidation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField()
    item_ids = models.JSONField(default=list)
    answers = models.JSONField(default=dict, blank=True)  # item id -> answer (JSON parts)
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "annotator", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator", "number"], name="one_attempt_number_per_person")
        ]

    def __str__(self) -> str:
        return f"qualification attempt {self.number} of {self.annotator_id} in {self.project_id}"


class PracticeAnswer(models.Model):
    """An answer given in training mode: the person sees the right answer right after, and
    the answer never enters consolidation, the budget or pay."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    parts = AnswerField(default=Answer)
    score = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "item", "annotator"], name="one_practice_answer_per_item")
        ]

    def __str__(self) -> str:
        return f"practice answer of {self.annotator_id} on {self.item_id}"


class FeedbackKind(models.TextChoices):
    AMBIGUOUS = "ambiguous", "Ambiguous"
    OFFENSIVE = "offensive", "Offensive"
    BROKEN = "broken", "Broken text"
    OTHER = "other", "Other"


class ItemFeedback(models.Model):
    """What an annotator says about an item (beside skipping it), for reviewers."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="feedback")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=FeedbackKind.choices)
    text = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} feedback on item {self.item_id}"
