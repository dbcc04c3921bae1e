from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "apps.annotation"
    label = "annotation"
    verbose_name = "Annotation"

    def ready(self) -> None:
        # Receivers import models, which Django loads only after every app config: their
        # documented place to connect is here.
        from . import receivers  # noqa: F401
