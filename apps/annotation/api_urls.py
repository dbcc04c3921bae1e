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
    path("projects/<int:project_id>/consolidations/", api.ConsolidationListApi.as_view(), name="api-consolidations"),
    path(
        "projects/<int:project_id>/consolidations/<int:run_id>/",
        api.ConsolidationDetailApi.as_view(),
        name="api-consolidation",
    ),
    path("projects/<int:project_id>/reports/agreement/", api.AgreementReportApi.as_view(), name="api-report-agreement"),
    path(
        "projects/<int:project_id>/reports/annotators/", api.AnnotatorReportApi.as_view(), name="api-report-annotators"
    ),
    path("projects/<int:project_id>/consensus/", api.ConsensusListApi.as_view(), name="api-consensus"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/consensus/",
        api.ConsensusDetailApi.as_view(),
        name="api-item-consensus",
    ),
    path("projects/<int:project_id>/export/", api.ExportApi.as_view(), name="api-export"),
]
