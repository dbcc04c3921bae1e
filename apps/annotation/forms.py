"""Input from the annotation pages' forms, shaped and type-checked; services apply the rules."""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from apps.projects.models import Project, TaskType


def submitted_value(post: QueryDict, project: Project) -> Any:
    """The answer as the workspace and review forms send it: label ids, or spans as JSON."""
    if project.is_spans:
        try:
            return json.loads(post.get("spans") or "[]")
        except json.JSONDecodeError:
            raise ValidationError({"value": "The spans could not be read; reload the page."}) from None
    ids = []
    for raw in post.getlist("label"):
        try:
            ids.append(int(raw))
        except ValueError:
            raise ValidationError({"value": "Choose labels from the list."}) from None
    if not ids:
        raise ValidationError({"value": "Choose a label first."})
    return ids if project.task_type == TaskType.MULTI_LABEL else ids[0] if len(ids) == 1 else ids


def held_assignment_ids(post: QueryDict) -> tuple[int, ...]:
    """Leases the workspace already shows (sent as ``holding``), which must not come back."""
    held = []
    for raw in post.getlist("holding"):
        try:
            held.append(int(raw))
        except ValueError:
            continue
    return tuple(held)


class ExportOptionsForm(forms.Form):
    """Query options of a download. ``formula_escape=false`` leaves CSV cells as they are,
    for programs that read the file (the default escapes formulas for spreadsheets)."""

    formula_escape = forms.ChoiceField(choices=[("true", "true"), ("false", "false")], required=False)

    def clean_formula_escape(self) -> bool:
        return self.cleaned_data["formula_escape"] != "false"  # absent means on


class PayPeriodForm(forms.Form):
    """The period of the payments page and its CSV: both days included, either open."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    formula_escape = forms.ChoiceField(choices=[("true", "true"), ("false", "false")], required=False)

    def clean_formula_escape(self) -> bool:
        return self.cleaned_data["formula_escape"] != "false"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", "The period ends before it starts.")
        return data
