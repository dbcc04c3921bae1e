from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        # Make Quorum's Celery app the current one in every process (web and shell
        # included), so `.delay()` on a shared task goes to the configured broker.
        import platform.celery  # noqa: F401
