"""Quorum's project package: settings, URLs, the Celery app, WSGI/ASGI.

The design fixes this package's name as ``platform``, which is also the name of a
standard-library module that Django, Celery and the Python standard library itself
(``uuid``) import. Whenever Quorum runs, this package is first on ``sys.path`` and so
*is* ``platform`` for every importer. To keep them working, the standard module is
loaded here under its own name and its whole namespace re-exported, so
``platform.system()`` and friends behave exactly as usual. Nothing else may be
imported here: this runs before Django is configured.
"""

import importlib.util
import os
import sysconfig

_stdlib_path = os.path.join(sysconfig.get_paths()["stdlib"], "platform.py")
_spec = importlib.util.spec_from_file_location("platform", _stdlib_path)
assert _spec is not None and _spec.loader is not None
_stdlib_platform = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib_platform)

globals().update({name: value for name, value in vars(_stdlib_platform).items() if not name.startswith("__")})
