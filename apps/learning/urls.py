from django.urls import path

from . import views, weak_views

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
    # Weak supervision: labelling functions, their analysis and editor, every source's accuracy.
    path("projects/<int:project_id>/learning/functions/", weak_views.functions, name="functions"),
    path("projects/<int:project_id>/learning/functions/apply/", weak_views.functions_apply, name="functions_apply"),
    path("projects/<int:project_id>/learning/functions/export/", weak_views.functions_export, name="functions_export"),
    path(
        "projects/<int:project_id>/learning/functions/weak-labels.jsonl",
        weak_views.weak_labels_export,
        name="weak_labels_export",
    ),
    path("projects/<int:project_id>/learning/functions/import/", weak_views.functions_import, name="functions_import"),
    path("projects/<int:project_id>/learning/functions/new/", weak_views.function_new, name="function_new"),
    path("projects/<int:project_id>/learning/functions/preview/", weak_views.function_preview, name="function_preview"),
    path(
        "projects/<int:project_id>/learning/functions/<int:function_id>/edit/",
        weak_views.function_edit,
        name="function_edit",
    ),
    path(
        "projects/<int:project_id>/learning/functions/<int:function_id>/enable/",
        weak_views.function_enable,
        name="function_enable",
    ),
    path(
        "projects/<int:project_id>/learning/functions/<int:function_id>/delete/",
        weak_views.function_delete,
        name="function_delete",
    ),
    path("projects/<int:project_id>/learning/sources/", weak_views.sources, name="sources"),
]
