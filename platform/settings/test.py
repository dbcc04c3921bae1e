"""The test suite. SQLite unless DATABASE_URL points at PostgreSQL; Celery runs tasks
inline unless a test starts a real worker (see tests/integration)."""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-key"  # nosec B105 # the test suite's; production refuses it (too short)
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
QUORUM_DEMO_ALLOWED = True

_tmp = Path(tempfile.mkdtemp(prefix="quorum-test-"))
MEDIA_ROOT = _tmp / "media"
STATIC_ROOT = _tmp / "static"
STATIC_ROOT.mkdir()
if not REDIS_URL:  # noqa: F405  (with Redis the suite uses it, as production does)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
VAR_DIR = _tmp / "var"
QUORUM_EMBED_ON_IMPORT = False  # tests that need embeddings ask for them
CELERY_TASK_ALWAYS_EAGER = True
# The suite makes thousands of API requests as a few users from one address, and the
# throttle counters outlive a test in the cache: tests of throttling set their own rates.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"anon": "100000/minute", "user": "100000/minute", "login": "100000/minute"},
}
CELERY_TASK_EAGER_PROPAGATES = True

LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
