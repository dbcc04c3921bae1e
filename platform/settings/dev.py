"""Local development and ``make demo``: SQLite, the filesystem broker, debug pages."""

from .base import *  # noqa: F403
from platform.env import env_str

from .base import VAR_DIR

DEBUG = True
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = ["*"]

VAR_DIR.mkdir(parents=True, exist_ok=True)
