"""What annotators answered. Each answer's parts are rows pointing at a Label, like gold
answers, so label renames keep them and a used label cannot be deleted."""

from django.conf import settings
from django.db import models

from apps.projects.models import Item, Label, Project


class Annotation(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_annotation_per_item_and_annotator")
        ]
        indexes = [models.Index(fields=["project", "annotator"], name="annotation_project_annotator")]

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
