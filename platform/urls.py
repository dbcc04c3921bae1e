from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from .csp_report import csp_report
from .health import healthz

# The API answers a URL it does not know in its own format (JSON), pages with the site's page.
handler404 = "platform.drf.not_found"

urlpatterns = [
    path("", include("apps.projects.urls")),
    path("", include("apps.annotation.urls")),
    path("", include("apps.learning.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("platform.api_urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("csp-report/", csp_report, name="csp-report"),
]
