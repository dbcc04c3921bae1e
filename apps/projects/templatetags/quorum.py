from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(value: Decimal | float | None) -> str:
    """An amount with two decimals, or more when it has them: 0.05, 0.125, 60.00."""
    if value is None:
        return ""
    text = f"{Decimal(value):,.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"
