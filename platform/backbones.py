"""The backbones a site offers: names that the operator maps to local Hugging Face model
folders (``settings.QUORUM_BACKBONES``, docs/operations.md).

A project stores a backbone's name, never a folder: what a manager types is checked against
the configured names, and only workers turn a name into a folder. So no path from a user
reaches a model loader, and no server path leaves the server (pages and the API show names).
"""

from pathlib import Path

from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError

# Files whose presence makes a folder loadable. Weights load from safetensors only: a folder
# with pickled weights (pytorch_model.bin) and no safetensors is refused, never unpickled.
REQUIRED_FILE = "config.json"
WEIGHTS_GLOB = "*.safetensors"


class BackboneUnavailable(ValidationError):
    """A backbone that cannot be used: unknown to this site, or its folder is not a model.
    The message names the backbone, not its folder."""


def backbone_names() -> list[str]:
    return sorted(settings.QUORUM_BACKBONES)


def backbone_default() -> str:
    """The backbone of a new project (and of rows made before backbones had names)."""
    return str(settings.QUORUM_BACKBONE_DEFAULT)


def backbone_choices() -> list[tuple[str, str]]:
    default = backbone_default()
    return [(name, f"{name} (default)" if name == default else name) for name in backbone_names()]


def backbone_check(name: str) -> None:
    """ValidationError naming the allowed backbones unless ``name`` is one of them."""
    if name not in settings.QUORUM_BACKBONES:
        raise ValidationError(
            {"backbone": f"Choose one of the backbones this site offers: {', '.join(backbone_names())}."}
        )


def backbone_folder(name: str) -> Path:
    """The folder of a configured backbone, checked to hold a model with safetensors weights."""
    if name not in settings.QUORUM_BACKBONES:
        raise BackboneUnavailable(f"The backbone {name!r} is not offered by this site (any more).")
    folder = Path(settings.QUORUM_BACKBONES[name])
    if not (folder / REQUIRED_FILE).is_file() or not any(folder.glob(WEIGHTS_GLOB)):
        raise BackboneUnavailable(
            f"The backbone {name!r} is not installed correctly on the server (it needs config.json and "
            "safetensors weights); ask the site's operator."
        )
    return folder


def backbone_name_of(folder: str | Path) -> str | None:
    """The configured name whose folder is ``folder`` (a path that older code stored), if any."""
    try:
        wanted = Path(folder).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    for name, configured in settings.QUORUM_BACKBONES.items():
        if Path(configured).resolve() == wanted:
            return name
    return None


@checks.register("quorum")
def backbones_installed(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """``manage.py check`` warns the operator of a configured backbone that cannot load (its
    folder is named here: this goes to the operator's console, not to users)."""
    problems: list[checks.CheckMessage] = []
    for name in backbone_names():
        try:
            backbone_folder(name)
        except BackboneUnavailable:
            problems.append(
                checks.Warning(
                    f"Backbone {name!r}: {settings.QUORUM_BACKBONES[name]} holds no config.json or no "
                    "safetensors weights; projects that use it cannot train.",
                    hint="Fix the folder or its entry in QUORUM_BACKBONES (docs/operations.md#backbones).",
                    id="quorum.W001",
                )
            )
    return problems
