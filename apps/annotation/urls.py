from django.urls import path

from . import qualification_views, views

app_name = "annotation"

urlpatterns = [
    path("projects/<int:project_id>/annotate/", views.workspace, name="workspace"),
    path("projects/<int:project_id>/annotate/submit/", views.submit, name="submit"),
    path("projects/<int:project_id>/annotate/skip/", views.skip, name="skip"),
    path("projects/<int:project_id>/annotate/feedback/", views.feedback, name="feedback"),
    path(
        "projects/<int:project_id>/annotate/answers/<int:annotation_id>/", views.annotation_edit, name="annotation_edit"
    ),
    path(
        "projects/<int:project_id>/annotate/qualification/",
        qualification_views.qualification_page,
        name="qualification",
    ),
    path(
        "projects/<int:project_id>/annotate/qualification/answer/",
        qualification_views.qualification_submit,
        name="qualification_answer",
    ),
    path("projects/<int:project_id>/annotate/practice/", qualification_views.practice_page, name="practice"),
    path(
        "projects/<int:project_id>/annotate/practice/answer/",
        qualification_views.practice_submit,
        name="practice_answer",
    ),
    path(
        "projects/<int:project_id>/annotate/practice/<int:item_id>/",
        qualification_views.practice_feedback,
        name="practice_feedback",
    ),
    path("projects/<int:project_id>/done/", views.done, name="done"),
    path("projects/<int:project_id>/reports/", views.reports, name="reports"),
    path("projects/<int:project_id>/consolidate/", views.consolidate, name="consolidate"),
    path("projects/<int:project_id>/review/<int:item_id>/", views.review, name="review"),
    path("projects/<int:project_id>/members/<int:membership_id>/unblock/", views.unblock, name="unblock"),
    path("projects/<int:project_id>/export/", views.export, name="export"),
    path("projects/<int:project_id>/export/<str:fmt>/", views.export_download, name="export_download"),
    path("projects/<int:project_id>/payments/", views.pay, name="payments"),
    path("projects/<int:project_id>/payments/csv/", views.pay_csv, name="payments_csv"),
]
