from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "apps.learning"
    label = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        # Receivers import models, which Django loads only after every app config: their
        # documented place to connect is here.
        from . import receivers  # noqa: F401
