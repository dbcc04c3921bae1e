"""Local development and ``make demo``: SQLite, the filesystem broker, debug pages."""

from pathlib import Path

from platform.env import env_bool, env_str

from .base import *  # noqa: F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, VAR_DIR

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = ["*"]
QUORUM_DEMO_ALLOWED = True  # make demo
# Invitation e-mails are printed in the worker's log (make demo), never sent.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

VAR_DIR.mkdir(parents=True, exist_ok=True)
# The filesystem broker needs its folders before the first message.
for _key in ("data_folder_in", "processed_folder", "control_folder"):
    if _key in CELERY_BROKER_TRANSPORT_OPTIONS:
        Path(str(CELERY_BROKER_TRANSPORT_OPTIONS[_key])).mkdir(parents=True, exist_ok=True)
