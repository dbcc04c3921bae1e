from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django import template

from apps.projects import colours
from apps.projects.models import method_name as plain_method_name

register = template.Library()


@register.filter
def money(value: Decimal | float | None) -> str:
    """An amount with two decimals, or more when it has them: 0.05, 0.125, 60.00."""
    if value is None:
        return ""
    text = f"{Decimal(value):,.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


@register.filter
def lookup(mapping: Mapping[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]``, or None: for figures the apps above send by id (a member's test result)."""
    return mapping.get(key) if mapping else None


@register.filter
def text_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (a selected label's name);
    white for what is not a colour (the model's validator keeps those out)."""
    try:
        return colours.text_colour_on(colour)
    except ValueError:
        return colours.WHITE


@register.filter
def hard_to_see(colour: str) -> bool:
    """Whether a label's colour is too pale to see on a white card (below 3:1)."""
    try:
        return colours.hard_to_see(colour)
    except ValueError:
        return False


@register.filter
def method_name(value: str | None) -> str:
    """A consolidation or label-model method's plain name, its technical name beside."""
    return plain_method_name(value) if value else ""


@register.filter
def hard_to_see_labels(labels: Iterable[Any]) -> list[Any]:
    """The labels among ``labels`` whose colour is too pale to see on a white card."""
    return [label for label in labels if hard_to_see(label.color)]
