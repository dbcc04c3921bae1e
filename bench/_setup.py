"""Start Django for a benchmark script run as ``python bench/<name>.py`` from anywhere."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_setup(settings: str = "platform.settings.dev") -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # Quorum's settings package shadows the standard library's `platform` (see
    # platform/__init__.py); make sure the package is what `platform` names here.
    if "platform" in sys.modules and not hasattr(sys.modules["platform"], "__path__"):
        del sys.modules["platform"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)
    import django

    django.setup()
