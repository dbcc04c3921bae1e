"""Tiny helpers that read settings from environment variables, failing loudly on bad values."""

import json
import os
import re

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_mapping(name: str) -> dict[str, str]:
    """A name-to-value mapping: a JSON object (``{"a": "x"}``) or ``a=x,b=y`` pairs; empty when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError as error:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {error}.") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ImproperlyConfigured(f"{name} must be a JSON object of strings.")
        return {str(k).strip(): v.strip() for k, v in parsed.items()}
    pairs = [part.split("=", 1) for part in raw.split(",") if part.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ImproperlyConfigured(f"{name} must be a JSON object or name=value pairs separated by commas.")
    return {key.strip(): value.strip() for key, value in pairs}


BACKBONE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def env_backbones(name: str, builtin: dict[str, str]) -> dict[str, str]:
    """The backbones the site offers: ``builtin`` plus those named in the variable, each a
    lower-case name for an absolute folder (see platform/backbones.py)."""
    added = env_mapping(name)
    for key, folder in added.items():
        if not BACKBONE_NAME.fullmatch(key):
            raise ImproperlyConfigured(f"{name}: {key!r} is not a backbone name (a-z, 0-9, '.', '_', '-').")
        if not os.path.isabs(folder):
            raise ImproperlyConfigured(f"{name}: the folder of {key!r} must be an absolute path.")
    return {**builtin, **added}
