"""The learning page's settings form. The fields are project settings (apps/projects); the
projects' settings page leaves these to this page."""

from typing import Any

from django import forms

from apps.projects.forms import LEARNING_FIELDS
from apps.projects.models import Project
from platform.backbones import backbone_choices, backbone_names


class LearningSettingsForm(forms.ModelForm):
    # A name from the site's list, never a folder (platform/backbones.py).
    backbone = forms.ChoiceField(choices=backbone_choices, help_text="The model that embeds the texts.")

    class Meta:
        model = Project
        fields = list(LEARNING_FIELDS)
        widgets = {
            "strategy_weights": forms.TextInput(
                attrs={"placeholder": '{"margin": 0.7, "diversity": 0.2, "random": 0.1}'}
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not echoing the input: it may be long, and it is not needed to correct it.
        message = f"Not a backbone this site offers; choose one of: {', '.join(backbone_names())}."
        self.fields["backbone"].error_messages["invalid_choice"] = message
