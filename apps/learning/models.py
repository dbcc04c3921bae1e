"""What the learning side gives annotators: suggested answers (pre-labels)."""

from django.db import models

from apps.projects.models import Item


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
