from django.urls import path

from . import api

urlpatterns = [
    path("projects/<int:project_id>/predict/", api.PredictApi.as_view(), name="api-predict"),
    path("projects/<int:project_id>/training-runs/", api.TrainingRunListApi.as_view(), name="api-training-runs"),
    path(
        "projects/<int:project_id>/training-runs/<int:run_id>/",
        api.TrainingRunDetailApi.as_view(),
        name="api-training-run",
    ),
    path("projects/<int:project_id>/versions/", api.ModelVersionListApi.as_view(), name="api-versions"),
    path("projects/<int:project_id>/versions/<int:number>/", api.ModelVersionDetailApi.as_view(), name="api-version"),
    path("projects/<int:project_id>/stream/", api.StreamApi.as_view(), name="api-stream"),
]
