from django.apps import AppConfig

# Makes Quorum's Celery app the current one in every process (web and shell included),
# so tasks sent by name go to the configured broker. Safe this early: it reads the
# settings lazily.
import platform.celery  # noqa: F401


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects"
