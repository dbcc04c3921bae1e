from django.urls import path

from . import api

urlpatterns = [
    path("projects/<int:project_id>/tasks/next/", api.TaskNextApi.as_view(), name="api-task-next"),
    path("projects/<int:project_id>/tasks/<int:assignment_id>/skip/", api.TaskSkipApi.as_view(), name="api-task-skip"),
    path("projects/<int:project_id>/annotations/", api.AnnotationListApi.as_view(), name="api-annotations"),
    path(
        "projects/<int:project_id>/annotations/<int:annotation_id>/",
        api.AnnotationDetailApi.as_view(),
        name="api-annotation",
    ),
]
