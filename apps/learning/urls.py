from django.urls import path

from . import views

app_name = "learning"

urlpatterns = [
    path("projects/<int:project_id>/learning/", views.learning, name="learning"),
    path("projects/<int:project_id>/learning/train/", views.train, name="train"),
    path("projects/<int:project_id>/learning/try/", views.try_model, name="try"),
    path("projects/<int:project_id>/learning/versions/<int:number>/", views.version_action, name="version"),
    path(
        "projects/<int:project_id>/learning/versions/<int:number>/download/<str:kind>/",
        views.download,
        name="download",
    ),
]
