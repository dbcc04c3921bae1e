"""The learning page's settings form. The fields are project settings (apps/projects); the
projects' settings page leaves these to this page."""

from django import forms

from apps.projects.forms import LEARNING_FIELDS
from apps.projects.models import Project


class LearningSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = list(LEARNING_FIELDS)
        widgets = {
            "strategy_weights": forms.TextInput(
                attrs={"placeholder": '{"margin": 0.7, "diversity": 0.2, "random": 0.1}'}
            )
        }
