"""The REST API: one URL module per app, plus authentication and the OpenAPI schema."""

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from .auth_api import TokenObtainApi

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Under the site's CSP: Swagger UI's start-up script comes as a file (the split view) and
    # its icons are data: images; Redoc also writes its styles as <style> elements
    # (styled-components) and searches in a blob: worker. Those pages alone allow that.
    path(
        "docs/",
        csp_update({"img-src": ["data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html")
        ),
        name="api-docs",
    ),
    path(
        "redoc/",
        csp_update({"img-src": ["data:"], "style-src-elem": ["'unsafe-inline'"], "worker-src": ["blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html")
        ),
        name="api-redoc",
    ),
    path("", include("apps.projects.api_urls")),
    path("", include("apps.annotation.api_urls")),
    path("", include("apps.learning.api_urls")),
]
