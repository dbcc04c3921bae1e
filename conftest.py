"""Loaded by pytest before any test module, from the project root.

Quorum's settings package is ``platform``, a name the standard library also uses (see
platform/__init__.py). pytest imports the standard module before this file runs, so it
is swapped for Quorum's package here, which re-exports the same functions; only then
can Django import ``platform.settings.test``.
"""

import os
import sys

if not hasattr(sys.modules.get("platform"), "__path__"):
    sys.modules.pop("platform", None)
    import platform  # noqa: F401  (now Quorum's package)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform.settings.test")

# Conftest files below this one import models at load time, which pytest does before
# pytest-django's own set-up hook; setting Django up here is the same call, earlier.
import django  # noqa: E402

django.setup()
