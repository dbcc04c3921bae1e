"""HTML forms. They only shape and type-check input; services apply the rules."""

import re
from collections.abc import Iterable
from typing import Any, cast

from django import forms
from django.conf import settings

from .models import LABEL_PALETTE, ConsolidationMethod, ImportFormat, ItemState, Label, Project, Role, method_name
from .selectors import AnswerFilters
from .services import PROJECT_EDITABLE_FIELDS, LabelRow

# Learning settings live on the learning page (apps/learning/views.py).
LEARNING_FIELDS = (
    "sampling_strategy", "strategy_weights", "backbone", "training_mode", "train_every",
    "train_weight_by_confidence", "label_model", "prelabel_mode", "auto_label_threshold",
)  # fmt: skip


class ProjectSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = [name for name in PROJECT_EDITABLE_FIELDS if name not in LEARNING_FIELDS]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 8, "class": "mono"}),
            "gold_ratio": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "quality_threshold": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "confidence_threshold": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "price_per_annotation": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
            "qualification_pass_mark": forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": "1"}),
            "suggestion_min_confidence": forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": "1"}),
            "bonus_gold_accuracy": forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            "bonus_per_answer": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
        }
        labels = {
            "overlap": "Annotators per item",
            "budget_max_annotations": "Budget (paid annotations)",
            "allow_overlapping_spans": "Allow overlapping spans",
            "max_overlap": "Most annotators per item",
            "confidence_threshold": "Ask for more annotators below confidence",
            "quality_min_gold": "Gold answers before the threshold applies",
            "max_items_per_annotator": "Most answers per person",
            "qualification_size": "Qualification test items",
            "qualification_pass_mark": "Pass mark",  # nosec B105 # a form label, not a password
            "qualification_attempts": "Attempts allowed",
            "training_items": "Training items with feedback",
            "suggestion_min_confidence": "One-key accept from confidence",
            "bonus_gold_accuracy": "Bonus from gold accuracy",
            "bonus_per_answer": "Bonus per answer",
            "consolidate_every": "Re-consolidate after this many answers",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "consolidation_method" in self.fields:  # plain names; the stored values are the same
            methods = cast(forms.ChoiceField, self.fields["consolidation_method"])
            methods.choices = [(value, method_name(value)) for value in ConsolidationMethod.values]

    def clean_currency(self) -> str:
        return str(self.cleaned_data["currency"]).upper()


class ProjectCreateForm(ProjectSettingsForm):
    label_names = forms.CharField(
        required=False,
        label="Labels",
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "World\nSports\nBusiness\nScience"}),
        help_text="One per line. Colours and keyboard keys are assigned; change them later.",
    )

    class Meta(ProjectSettingsForm.Meta):
        fields = ["name", "task_type", "instructions", "overlap", "budget_max_annotations", "price_per_annotation",
                  "currency", "gold_ratio", "quality_threshold"]  # fmt: skip

    def clean_label_names(self) -> list[str]:
        names = [line.strip() for line in self.cleaned_data["label_names"].splitlines() if line.strip()]
        folded = [name.casefold() for name in names]
        repeated = sorted({name for name in names if folded.count(name.casefold()) > 1})
        if repeated:
            raise forms.ValidationError(f"Each label once, please: {', '.join(repeated)} repeat.")
        return names


class LabelRowForm(forms.Form):
    """One row of the ontology editor: a label as typed. The service checks the rows
    against each other and the project (names and keys once each, labels in use)."""

    id = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    name = forms.CharField(
        max_length=100, required=False, widget=forms.TextInput(attrs={"placeholder": "New label", "maxlength": 100})
    )
    color = forms.CharField(max_length=7, widget=forms.TextInput(attrs={"type": "color"}))
    key = forms.CharField(
        max_length=1,
        required=False,
        widget=forms.TextInput(attrs={"maxlength": 1, "size": 2, "autocomplete": "off", "class": "key-input"}),
    )
    description = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"placeholder": "When to use this label"})
    )
    position = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, widget=forms.NumberInput(attrs={"class": "position-input"})
    )
    delete = forms.BooleanField(required=False)

    def has_changed(self) -> bool:
        # The new-label row with only its colour or position touched is still empty.
        return bool(set(self.changed_data) & {"name", "key", "description"})

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("delete") and not str(data.get("name", "")).strip():
            self.add_error("name", "Give the label a name (or leave the whole row empty).")
        return data

    def row(self) -> LabelRow:
        data = self.cleaned_data
        return LabelRow(
            label_id=data.get("id"),
            name=data["name"],
            color=data["color"],
            key=data.get("key", ""),
            description=data.get("description", ""),
            delete=bool(data.get("delete")),
        )


class LabelFormSet(forms.BaseFormSet):
    """Every label of the project in one form, and an empty row for a new one. Rows come
    back in the order their positions give (the page's arrows renumber them)."""

    def taken(self) -> list[tuple[int, LabelRowForm]]:
        """The rows to save with their index on the page: every existing label, and new
        rows with something typed in them."""
        taken = [(i, form) for i, form in enumerate(self.forms) if form.has_changed() or i < self.initial_form_count()]
        return sorted(taken, key=lambda pair: (pair[1].cleaned_data.get("position") or 10_001 + pair[0], pair[0]))

    def rows(self) -> tuple[list[int], list[LabelRow]]:
        """The rows in their new order, and each one's index on the page (for errors)."""
        taken = self.taken()
        return [i for i, _ in taken], [form.row() for _, form in taken]

    def refuse(self, problems: dict[int, dict[str, list[str]]], indexes: list[int]) -> None:
        """Show a service's refusal under the rows (and fields) it names."""
        for position, fields in problems.items():
            form = self.forms[indexes[position]]
            for field, messages in fields.items():
                form.add_error(field if field in form.fields else None, messages)

    def preview_labels(self) -> list[Label]:
        """The labels as typed, unsaved, for the live preview: in position order, without
        deleted rows or empty new ones; a colour that does not parse shows grey."""
        shown = []
        for index, form in enumerate(self.forms):
            values = {
                name: form.data.get(form.add_prefix(name), "")
                for name in ("name", "color", "key", "description", "position", "delete")
            }
            if values["delete"] or not str(values["name"]).strip():
                continue
            color = str(values["color"]).lower()
            label = Label(
                pk=-(index + 1),
                name=str(values["name"]).strip()[:100],
                color=color if re.fullmatch(r"#[0-9a-f]{6}", color) else "#94a3b8",
                key=str(values["key"]).strip().lower()[:1],
                description=str(values["description"]),
            )
            try:
                position = int(values["position"])
            except (TypeError, ValueError):
                position = 10_001 + index
            shown.append((position, index, label))
        return [label for _, _, label in sorted(shown, key=lambda each: (each[0], each[1]))]


def label_formset(*, labels: list[Label], data: Any = None) -> LabelFormSet:
    """The ontology editor's rows: the project's labels, and one empty row whose colour is
    the palette's next."""
    formset_class = forms.formset_factory(
        LabelRowForm, formset=LabelFormSet, extra=1, max_num=settings.QUORUM_LABELS_MAX, validate_max=True
    )
    initial = [
        {"id": label.pk, "name": label.name, "color": label.color, "key": label.key,
         "description": label.description, "position": position}
        for position, label in enumerate(labels, start=1)
    ]  # fmt: skip
    # A posted form is read as posted: rows are the labels the page showed (their ids ride
    # along), however many labels the project has by now.
    formset = formset_class(data, initial=initial if data is None else None, prefix="labels")
    if data is None:
        for form in formset.forms[len(initial) :]:
            form.fields["color"].initial = LABEL_PALETTE[len(labels) % len(LABEL_PALETTE)]
            form.fields["position"].initial = len(labels) + 1
    return cast(LabelFormSet, formset)


class InstructionsForm(forms.Form):
    instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}),
        help_text="Markdown, shown to annotators above each item.",
    )


class MemberAddForm(forms.Form):
    user = forms.CharField(label="Username or e-mail", max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class JoinLinkForm(forms.Form):
    """A new join link; the service checks the rest (an expiry in the future)."""

    name = forms.CharField(
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Prolific batch 3"}),
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    max_uses = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Most people")
    worker_id_param = forms.CharField(
        max_length=40,
        required=False,
        label="Worker id parameter",
        widget=forms.TextInput(attrs={"placeholder": "e.g. PROLIFIC_PID", "autocomplete": "off"}),
        help_text="Only for an external crowd platform, which adds the worker's id to the address.",
    )


class InviteForm(forms.Form):
    entries = forms.CharField(
        label="Usernames or e-mail addresses",
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "ada@example.org, grace@example.org\nlinus"}),
        help_text="Separated by commas, spaces or lines. New e-mail addresses get a personal link by e-mail.",
    )


class SignUpForm(forms.Form):
    """Sign-up through a join link. The service applies the username and password rules."""

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    email = forms.EmailField(required=False, label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, JSON Lines, JSON (Label Studio tasks too) or CoNLL; UTF-8.")
    format = forms.ChoiceField(choices=[("", "Tell from the file name"), *ImportFormat.choices], required=False)
    text_field = forms.CharField(initial="text", label="Text column")
    id_field = forms.CharField(initial="id", label="External id column")
    gold_field = forms.CharField(initial="gold", label="Gold label column")
    conll_tags_are_gold = forms.BooleanField(required=False, initial=True, label="CoNLL tags are gold answers")


class ItemFilterForm(forms.Form):
    """The items list's filters. A value that does not check out is left out and said, so
    a hand-edited address still shows a list."""

    q = forms.CharField(required=False, strip=True)
    state = forms.ChoiceField(choices=[("", "Any state"), *ItemState.choices], required=False)
    gold = forms.ChoiceField(
        choices=[("", "Gold and not gold"), ("yes", "Gold only"), ("no", "Not gold")], required=False
    )
    label = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Consensus label")
    confidence_below = forms.FloatField(min_value=0.0, max_value=1.0, required=False)
    disagreement = forms.ChoiceField(choices=[("", "Agreeing or not"), ("yes", "Answers differ")], required=False)
    suggestion = forms.ChoiceField(
        choices=[("", "With or without a suggestion"), ("yes", "With a suggestion"), ("no", "Without")],
        required=False,
    )
    annotator = forms.ChoiceField(required=False)
    # Offered in the confidence menu; any other value in the address works too.
    CONFIDENCE_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

    def __init__(self, data: Any, *, labels: Iterable[Label], annotators: Iterable[str]) -> None:
        super().__init__(data)
        label_field = cast(forms.TypedChoiceField, self.fields["label"])
        label_field.choices = [("", "Any consensus label"), *((label.pk, label.name) for label in labels)]
        annotator_field = cast(forms.ChoiceField, self.fields["annotator"])
        annotator_field.choices = [("", "Anyone"), *((name, name) for name in annotators)]

    def clean_q(self) -> str:
        return str(self.cleaned_data["q"])[:200]

    def chosen(self) -> dict[str, Any]:
        """The filters that checked out and are set."""
        self.is_valid()
        values = getattr(self, "cleaned_data", {})
        return {name: values[name] for name in self.fields if values.get(name) not in (None, "")}

    def answer_filters(self) -> AnswerFilters:
        chosen = self.chosen()
        return AnswerFilters(
            label_id=chosen.get("label"),
            confidence_below=chosen.get("confidence_below"),
            disagreement=chosen.get("disagreement") == "yes",
            suggestion=None if "suggestion" not in chosen else chosen["suggestion"] == "yes",
            annotator=chosen.get("annotator", ""),
        )

    def query(self) -> dict[str, str]:
        """The chosen filters as an address's query, for the pagination links."""
        return {name: str(value) for name, value in self.chosen().items()}
