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
    path(
        "projects/<int:project_id>/labelling-functions/",
        api.LabellingFunctionsApi.as_view(),
        name="api-labelling-functions",
    ),
    path(
        "projects/<int:project_id>/labelling-functions/analysis/",
        api.FunctionAnalysisApi.as_view(),
        name="api-labelling-function-analysis",
    ),
    path(
        "projects/<int:project_id>/labelling-functions/application/",
        api.RuleApplicationApi.as_view(),
        name="api-rule-application",
    ),
    path(
        "projects/<int:project_id>/external-predictions/",
        api.PredictionsApi.as_view(),
        name="api-external-predictions",
    ),
    path("projects/<int:project_id>/weak-labels/", api.WeakLabelListApi.as_view(), name="api-weak-labels"),
]
