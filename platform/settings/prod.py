"""Production: refuses to start without a secret key of its own and named allowed hosts;
secure cookies, HTTPS redirect and HSTS on; static files hashed and served by WhiteNoise."""

from django.core.exceptions import ImproperlyConfigured

from platform.env import env_bool, env_int, env_list

from .base import *  # noqa: F403
from .base import SECRET_KEY

if not SECRET_KEY or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("Production needs SECRET_KEY: a random string of 50 or more characters.")
# Keys that are not random: a padded or typed one (a random key of 50 characters has about 35
# distinct ones), and the development keys written in this repository or by startproject.
# tests/test_settings_prod.py runs every key written in the repository through this.
if len(set(SECRET_KEY)) < 10 or "insecure" in SECRET_KEY.lower():
    raise ImproperlyConfigured(
        "SECRET_KEY is not a random key (too few distinct characters, or a development key). "
        'Generate one: python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )

DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Production needs ALLOWED_HOSTS (comma-separated host names).")
if any("*" in host for host in ALLOWED_HOSTS):
    # "*" accepts any Host header, and absolute URLs built from the request (redirects, the
    # API's pagination links) would then name a host of the requester's choosing.
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the site's hosts; '*' (any host) is refused in production. "
        "Use e.g. ALLOWED_HOSTS=quorum.example.com (a leading dot, .example.com, allows subdomains)."
    )

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
