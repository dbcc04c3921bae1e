from django.urls import path

from . import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/labels/", api.LabelListApi.as_view(), name="api-labels"),
    path("projects/<int:project_id>/labels/reorder/", api.LabelReorderApi.as_view(), name="api-labels-reorder"),
    path("projects/<int:project_id>/labels/<int:label_id>/", api.LabelDetailApi.as_view(), name="api-label"),
    path("projects/<int:project_id>/members/", api.MembershipListApi.as_view(), name="api-members"),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/",
        api.MembershipDetailApi.as_view(),
        name="api-member",
    ),
    path("projects/<int:project_id>/items/", api.ItemListApi.as_view(), name="api-items"),
    path("projects/<int:project_id>/items/<int:item_id>/", api.ItemDetailApi.as_view(), name="api-item"),
    path("projects/<int:project_id>/imports/", api.ImportListApi.as_view(), name="api-imports"),
    path("projects/<int:project_id>/imports/<int:job_id>/", api.ImportDetailApi.as_view(), name="api-import"),
]
