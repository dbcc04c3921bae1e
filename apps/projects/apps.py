from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

# Makes Quorum's Celery app the current one in every process (web and shell included),
# so tasks sent by name go to the configured broker. Safe this early: it reads the
# settings lazily.
import platform.celery  # noqa: F401


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        # Every app's receivers.py connects its receivers to the events of the apps below
        # it. Django's autodiscovery (as for admin.py) imports each one once all models
        # are loaded; no app imports an app above it to make this happen.
        autodiscover_modules("receivers")
