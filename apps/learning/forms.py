"""The learning page's settings form (the fields are project settings, apps/projects; the
projects' settings page leaves these to this page), and the labelling-function editor's."""

from typing import Any, cast

from django import forms
from django.db import models

from apps.projects.forms import LEARNING_FIELDS
from apps.projects.models import LabelModel, PrelabelMode, Project, SamplingStrategy, TrainingMode
from apps.projects.services import STRATEGY_NAMES
from platform.backbones import backbone_choices, backbone_names

from . import rules

# One line per choice, shown beside the select: what it does, and when to choose it.
STRATEGY_HELP = {
    "margin": "Items where the two likeliest labels are closest. The default: dependable on most projects.",
    "least_confidence": "Items whose likeliest label the model is least sure of. Simple; good with few labels.",
    "entropy": "Items whose probabilities spread most evenly over the labels. With many labels, where several compete.",
    "committee": "Items on which models trained on resamples of the labels vote differently. Steadier than one "
    "model's doubt; ranking takes longer.",
    "committee_kl": "Committee disagreement measured on the members' probabilities, not their votes. Finer when "
    "votes often tie.",
    "bald": "Items the committee disagrees on although each member is sure (BALD). Skips items that are merely "
    "ambiguous.",
    "expected_model_change": "Items whose label would change the model most (expected gradient length). Favours "
    "unusual texts; may pick outliers.",
    "diversity": "The item nearest the centre of each cluster of texts, so a batch covers every kind. At the "
    "start, or when uncertainty picks near-duplicates.",
    "core_set": "Items farthest from everything labelled so far. Reaches corners of the pool the model has not seen.",
    "boundary": "Items between labelled examples of different labels, then the rest by margin. For labels "
    "confused in pairs.",
    "random": "Items in random order. A baseline, and a safe start while the model has seen few labels.",
    "mnlp": "Entity spans: sentences whose best tagging the model is least sure of, per word. Span projects "
    "always rank this way.",
    "mix": "A blend of several strategies, weighted by the numbers you give under “Weighted mix”. Balances hard "
    "items with coverage.",
}
# Strategies a mix may take that are not offered alone (apps/learning/strategies.py).
MIX_ONLY_TITLES = {"committee_kl": "Committee divergence (KL)", "core_set": "Core set (farthest from the labelled)"}
TRAINING_MODE_HELP: dict[str, str] = {
    TrainingMode.HEAD: "A small classifier on the backbone's cached embeddings: seconds on a CPU. The default; "
    "it can retrain often.",
    TrainingMode.FINETUNE: "Trains the whole transformer: often a few points better, but minutes on a GPU. When "
    "labels are plenty and the head has levelled off.",
}
LABEL_MODEL_HELP: dict[str, str] = {
    LabelModel.DAWID_SKENE: "Learns how often each source (person or function) is right, per label, and weighs "
    "its votes by that. The default; the only one that weighs people.",
    LabelModel.MAJORITY_VOTE: "The most voted label wins; every function counts the same, people twice. For a "
    "few functions of similar quality, or as a check.",
    LabelModel.SNORKEL: "Learns the functions' accuracies from how they agree and overlap; people count as one "
    "function each. For many overlapping functions.",
}
PRELABEL_HELP: dict[str, str] = {
    PrelabelMode.SHOW: "Annotators see the model's suggestion with the item and can accept it with one key. "
    "Fastest; people may lean on it.",
    PrelabelMode.AFTER: "The suggestion appears only after the person answers. Keeps answers independent of the model.",
    PrelabelMode.HIDE: "No suggestions. While the model is weak, or to measure people on their own.",
}
# The selects the page explains: their choices, and a line on each.
EXPLAINED: dict[str, tuple[type[models.TextChoices], dict[str, str]]] = {
    "sampling_strategy": (SamplingStrategy, STRATEGY_HELP),
    "training_mode": (TrainingMode, TRAINING_MODE_HELP),
    "label_model": (LabelModel, LABEL_MODEL_HELP),
    "prelabel_mode": (PrelabelMode, PRELABEL_HELP),
}
WEIGHT_PREFIX = "weight_"


def mix_strategies() -> list[tuple[str, str]]:
    """(name, title) of every strategy a mix may weigh, in the order the page explains them."""
    titles = {**dict(SamplingStrategy.choices), **MIX_ONLY_TITLES}
    return [(name, titles[name]) for name in STRATEGY_HELP if name in STRATEGY_NAMES]


class LearningSettingsForm(forms.ModelForm):
    """The learning settings, with the strategy mix as one number per strategy: ``clean``
    turns them into the stored JSON (``{"margin": 0.7, "diversity": 0.2, "random": 0.1}``),
    which the service checks as it checks the API's."""

    # A name from the site's list, never a folder (platform/backbones.py).
    backbone = forms.ChoiceField(choices=backbone_choices, help_text="The model that embeds the texts.")

    class Meta:
        model = Project
        fields = [name for name in LEARNING_FIELDS if name != "strategy_weights"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not echoing the input: it may be long, and it is not needed to correct it.
        message = f"Not a backbone this site offers; choose one of: {', '.join(backbone_names())}."
        self.fields["backbone"].error_messages["invalid_choice"] = message
        weights = self.instance.strategy_weights if isinstance(self.instance.strategy_weights, dict) else {}
        for name, title in mix_strategies():
            self.fields[WEIGHT_PREFIX + name] = forms.FloatField(
                label=title,
                # Strategies offered only in a mix are explained here; the others beside the select.
                help_text=STRATEGY_HELP[name] if name in MIX_ONLY_TITLES else "",
                required=False,
                min_value=0,
                initial=weights.get(name),
                error_messages={"min_value": "A weight cannot be negative."},
                widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
            )

    def weight_fields(self) -> list[forms.BoundField]:
        return [self[WEIGHT_PREFIX + name] for name, _ in mix_strategies()]

    def weight_errors(self) -> bool:
        """Whether a weight was refused (the page then shows the mix whatever the strategy)."""
        return any(field.errors for field in self.weight_fields())

    def explained(self, name: str) -> list[dict[str, Any]]:
        """A select's choices with their one-line explanations, the one the form shows marked."""
        current = self[name].value()
        choices, lines = EXPLAINED[name]
        return [
            {"value": value, "title": title, "help": lines[value], "current": value == current}
            for value, title in choices.choices
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = {name: data.get(WEIGHT_PREFIX + name) for name, _ in mix_strategies()}
        weights = {name: weight for name, weight in given.items() if weight}
        if not weights and any(weight == 0 for weight in given.values()):
            raise forms.ValidationError(
                "Give at least one strategy of the mix a weight above 0, or leave them all empty for the default "
                "mix (70% margin, 20% diversity, 10% random)."
            )
        data["strategy_weights"] = weights
        return data


# The editor's fields that belong to each kind, in the import format's keys (rules.py).
KIND_FIELDS = {
    "keywords": ("keywords", "match", "case_sensitive"),
    "regex": ("pattern", "case_sensitive"),
    "similarity": ("threshold", "text"),
    "model": ("threshold",),
    "external": ("source", "threshold"),
    "gazetteer": ("phrases", "case_sensitive"),
}
KIND_TITLES = {
    "keywords": "Keywords",
    "regex": "Regular expression",
    "similarity": "Similar to the label's description",
    "model": "The champion model, when confident",
    "external": "Imported predictions",
    "gazetteer": "Gazetteer (phrases of an entity type)",
}
LIST_FIELDS = ("keywords", "phrases")
# What a kind cannot do without (the rest have defaults); every kind with a label needs it too.
KIND_NEEDS = {
    "keywords": ("keywords", "match"),
    "regex": ("pattern",),
    "external": ("source",),
    "gazetteer": ("phrases",),
}
NEEDED_SOMEWHERE = ("label", "keywords", "match", "pattern", "source", "phrases")
# A preview may be asked for before the function has a name.
PREVIEW_NAME = "new-function"


class LabellingFunctionForm(forms.Form):
    """A labelling function as the editor shows it. ``definition()`` turns it into the import
    format, keeping only the chosen kind's keys; the service checks the rest (rules.py).

    Which fields are required depends on the kind, which the person may change on the page:
    so no ``required`` attribute in the HTML (hidden fields of other kinds would block the
    submit), and each kind's own fields are required only when that kind is submitted."""

    use_required_attribute = False

    name = forms.CharField(
        max_length=rules.MAX_NAME_CHARS,
        help_text='Letters, digits, "_", "-" and "."; unique in the project.',
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "sports-teams"}),
    )
    kind = forms.ChoiceField()
    label = forms.ChoiceField(required=False, help_text="The label it votes for.")
    keywords = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "lakers\nchelsea\nworld cup"}),
        help_text="One per line; it votes when any of them occurs.",
    )
    match = forms.ChoiceField(
        required=False,
        choices=[("word", "Whole words"), ("substring", "Anywhere, even inside words")],
        initial="word",
    )
    phrases = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "New York\nBank of England"}),
        help_text="One per line; each whole-word occurrence is proposed as a span.",
    )
    pattern = forms.CharField(
        required=False,
        max_length=rules.MAX_PATTERN_CHARS,
        widget=forms.TextInput(attrs={"class": "mono", "autocomplete": "off", "placeholder": r"\b(?:Dow|Nasdaq)\b"}),
        help_text="A regular expression (Python syntax); it votes when it matches.",
    )
    case_sensitive = forms.BooleanField(required=False, label="Case-sensitive")
    threshold = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
        help_text="From 0 to 1. Empty: 0.4 for similarity (cosine), 0.9 for the model, 0 for predictions.",
    )
    text = forms.CharField(
        required=False,
        max_length=rules.MAX_PATTERN_CHARS,
        label="Compare with",
        help_text="Empty: the label's description, else its name.",
    )
    source = forms.CharField(
        required=False, max_length=rules.MAX_NAME_CHARS, help_text="The name predictions were imported under."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled (votes when functions are applied)")

    def __init__(self, *args: Any, project: Project, preview: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds = rules.kinds_for(str(project.task_type))
        cast(forms.ChoiceField, self.fields["kind"]).choices = [(kind, KIND_TITLES.get(kind, kind)) for kind in kinds]
        names = list(project.labels.order_by("order", "pk").values_list("name", flat=True))
        choices = [("", "Choose a label…"), *((name, name) for name in names)]
        cast(forms.ChoiceField, self.fields["label"]).choices = choices
        if preview:
            self.fields["name"].required = False
        if self.is_bound:
            self._require_for(str(self.data.get("kind", "")))
        else:
            # Shown empty, each kind's own fields look required (each is, for its kind).
            for key in NEEDED_SOMEWHERE:
                self.fields[key].required = True

    def _require_for(self, kind: str) -> None:
        """A submitted function: the fields its kind needs are required, the others' are not."""
        needed = set(KIND_NEEDS.get(kind, ()))
        if kind in rules.KINDS and rules.KINDS[kind].has_label:
            needed.add("label")
        for key in NEEDED_SOMEWHERE:
            self.fields[key].required = key in needed

    @staticmethod
    def initial_for(definition: dict[str, Any]) -> dict[str, Any]:
        """The form's values for a function in the import format."""
        initial = {key: value for key, value in definition.items() if key not in LIST_FIELDS}
        for key in LIST_FIELDS:
            if key in definition:
                initial[key] = "\n".join(definition[key])
        return initial

    def definition(self) -> dict[str, Any]:
        """The function in the import format (call after ``is_valid()``)."""
        data = self.cleaned_data
        kind = data["kind"]
        found: dict[str, Any] = {"name": data["name"] or PREVIEW_NAME, "kind": kind}
        if rules.KINDS[kind].has_label and data["label"]:
            found["label"] = data["label"]
        for key in KIND_FIELDS.get(kind, ()):
            value = data[key]
            if key in LIST_FIELDS:
                found[key] = [line.strip() for line in value.splitlines() if line.strip()]
            elif value not in (None, ""):
                found[key] = value
        if data["description"].strip():
            found["description"] = data["description"].strip()
        found["enabled"] = data["enabled"]
        return found

    def kind_fields(self) -> dict[str, list[str]]:
        """For each field shown for some kinds only: those kinds (the editor hides the rest)."""
        shown: dict[str, list[str]] = {"label": [k for k, kind in rules.KINDS.items() if kind.has_label]}
        for kind, keys in KIND_FIELDS.items():
            for key in keys:
                shown.setdefault(key, []).append(kind)
        return shown


class FunctionsImportForm(forms.Form):
    file = forms.FileField(help_text="A JSON file in the import format, up to 1 MB.")
