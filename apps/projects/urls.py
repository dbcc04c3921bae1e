from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<int:project_id>/", views.overview, name="overview"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="settings"),
    path("projects/<int:project_id>/delete/", views.project_delete, name="delete"),
    path("projects/<int:project_id>/labels/", views.labels, name="labels"),
    path("projects/<int:project_id>/labels/preview/", views.labels_preview, name="labels_preview"),
    path("projects/<int:project_id>/members/", views.members, name="members"),
    path("projects/<int:project_id>/members/<int:membership_id>/", views.member_update, name="member_update"),
    path("projects/<int:project_id>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("projects/<int:project_id>/members/<int:membership_id>/block/", views.member_block, name="member_block"),
    path("projects/<int:project_id>/members/links/", views.join_link_create, name="join_link_create"),
    path(
        "projects/<int:project_id>/members/links/<int:link_id>/revoke/", views.join_link_revoke, name="join_link_revoke"
    ),
    path("projects/<int:project_id>/members/invite/", views.members_invite, name="members_invite"),
    path("join/<str:token>/", views.join, name="join"),
    path("projects/<int:project_id>/items/", views.items, name="items"),
    path("projects/<int:project_id>/items/<int:item_id>/", views.item_detail, name="item_detail"),
    path("projects/<int:project_id>/import/", views.import_items, name="import"),
    path("projects/<int:project_id>/imports/<int:job_id>/", views.import_detail, name="import_detail"),
]
