"""REST API for projects, labels, memberships, items, imports and exports.

One APIView per endpoint, each with its input and output serializers; every view
fetches its project through ``project_get_for_user`` and calls a service to write.
"""

from typing import Any, cast

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from platform.backbones import backbone_choices, backbone_names
from platform.drf import AuthenticatedApiRequest, Pagination, id_field, paginated, query_params
from platform.parsers import JSONParser
from platform.schema import VALIDATION_ERROR_SCHEMA

from . import imports, selectors, services
from .answers import Answer, LabelIndex, value_render
from .models import ImportFormat, ImportJob, Item, ItemState, Label, Membership, Project, Role
from .rendering import markdown_to_html
from .selectors import ANY_MEMBER, MANAGE, REVIEW

# A label's position is a PositiveIntegerField (32 bits on PostgreSQL).
ORDER_MAX = 2**31 - 1


class LabelOutput(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name", "color", "key", "description", "order"]


class LabelInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    color = serializers.CharField(max_length=7, required=False)
    key = serializers.CharField(max_length=1, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ProjectOutput(serializers.ModelSerializer):
    labels = LabelOutput(many=True, read_only=True)
    your_role = serializers.CharField(source="user_role", read_only=True)
    instructions_html = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id", "name", "instructions", "instructions_html", "task_type", "allow_overlapping_spans",
            "overlap", "budget_max_annotations", "price_per_annotation", "currency", "gold_ratio",
            "quality_threshold", "consolidation_method", "sampling_strategy", "backbone", "labels", "your_role",
            "created_at", "updated_at",
        ]  # fmt: skip

    def get_instructions_html(self, project: Project) -> str:
        return markdown_to_html(project.instructions)


class ProjectSettingsInput(serializers.ModelSerializer):
    """Project settings as the API accepts them; the service re-checks every rule."""

    backbone = serializers.ChoiceField(choices=[], required=False, help_text="One of the backbones the site offers.")

    class Meta:
        model = Project
        fields = list(services.PROJECT_EDITABLE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The site's list, read per request: the operator configures it (platform/backbones.py).
        field = cast(serializers.ChoiceField, self.fields["backbone"])
        field.choices = backbone_choices()
        names = ", ".join(backbone_names())
        # Not echoing the input: it may be long, and it is not needed to correct it.
        field.error_messages["invalid_choice"] = f"Not a backbone this site offers; choose one of: {names}."


class ProjectListApi(APIView):
    pagination_class = Pagination

    class ProjectCreateInput(ProjectSettingsInput):
        labels = LabelInput(many=True, required=False)

        class Meta(ProjectSettingsInput.Meta):
            fields = [*ProjectSettingsInput.Meta.fields, "labels"]

    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: AuthenticatedApiRequest) -> Response:
        projects = selectors.projects_for_user(user=request.user).prefetch_related("labels")
        return paginated(request, self, projects, ProjectOutput)

    @extend_schema(request=ProjectCreateInput, responses={201: ProjectOutput})
    def post(self, request: AuthenticatedApiRequest) -> Response:
        if not request.user.has_perm("projects.add_project"):
            raise PermissionDenied("Your account may not create projects; ask a site admin.")
        data = self.ProjectCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(user=request.user, **data.validated_data)
        project = selectors.project_get_for_user(user=request.user, project_id=project.pk)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    class ProjectUpdateInput(ProjectSettingsInput):
        class Meta(ProjectSettingsInput.Meta):
            extra_kwargs = {name: {"required": False} for name in services.PROJECT_EDITABLE_FIELDS}

    @extend_schema(responses=ProjectOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANY_MEMBER)
        return Response(ProjectOutput(project).data)

    @extend_schema(request=ProjectUpdateInput, responses=ProjectOutput)
    def patch(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.ProjectUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.project_update(project=project, data=data.validated_data)
        return Response(ProjectOutput(project).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        services.project_delete(project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelListApi(APIView):
    class LabelCreateInput(LabelInput):
        order = serializers.IntegerField(required=False, min_value=0, max_value=ORDER_MAX)

    @extend_schema(responses=LabelOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANY_MEMBER)
        return Response(LabelOutput(selectors.project_labels(project=project), many=True).data)

    @extend_schema(request=LabelCreateInput, responses={201: LabelOutput})
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.LabelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        label = services.label_create(project=project, **data.validated_data)
        return Response(LabelOutput(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(APIView):
    class LabelUpdateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        color = serializers.CharField(max_length=7, required=False)
        key = serializers.CharField(max_length=1, required=False, allow_blank=True)
        description = serializers.CharField(required=False, allow_blank=True)
        order = serializers.IntegerField(required=False, min_value=0, max_value=ORDER_MAX)

    @extend_schema(responses=LabelOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, label_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANY_MEMBER)
        return Response(LabelOutput(selectors.label_get(project=project, label_id=label_id)).data)

    @extend_schema(request=LabelUpdateInput, responses=LabelOutput)
    def patch(self, request: AuthenticatedApiRequest, project_id: int, label_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        label = selectors.label_get(project=project, label_id=label_id)
        data = self.LabelUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(LabelOutput(services.label_update(label=label, data=data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedApiRequest, project_id: int, label_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        services.label_delete(label=selectors.label_get(project=project, label_id=label_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelReorderApi(APIView):
    class LabelReorderInput(serializers.Serializer):
        label_ids = serializers.ListField(child=id_field(), allow_empty=False, max_length=1000)

    @extend_schema(request=LabelReorderInput, responses=LabelOutput(many=True))
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.LabelReorderInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.labels_reorder(project=project, label_ids=data.validated_data["label_ids"])
        return Response(LabelOutput(selectors.project_labels(project=project), many=True).data)


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.get_username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]


class MembershipListApi(APIView):
    class MembershipCreateInput(serializers.Serializer):
        user = serializers.CharField(
            help_text="Username or e-mail of an account that shares a project with you (site admins: any account)."
        )
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=MembershipOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        return Response(MembershipOutput(selectors.project_members(project=project), many=True).data)

    @extend_schema(request=MembershipCreateInput, responses={201: MembershipOutput})
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.MembershipCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            project=project,
            user_identifier=data.validated_data["user"],
            role=data.validated_data["role"],
            by=request.user,
        )
        return Response(MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


class MembershipDetailApi(APIView):
    class MembershipRoleInput(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(request=MembershipRoleInput, responses=MembershipOutput)
    def patch(self, request: AuthenticatedApiRequest, project_id: int, membership_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        membership = selectors.membership_get(project=project, membership_id=membership_id)
        data = self.MembershipRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set_role(membership=membership, role=data.validated_data["role"])
        return Response(MembershipOutput(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedApiRequest, project_id: int, membership_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        services.membership_remove(membership=selectors.membership_get(project=project, membership_id=membership_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemOutput(serializers.ModelSerializer):
    gold = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "external_id", "text", "metadata", "is_gold", "gold", "state", "annotation_count", "created_at"]

    def get_gold(self, item: Item) -> Any:
        if not item.is_gold:
            return None
        labels: LabelIndex = self.context["labels"]
        gold = Answer.of_rows(item.gold_labels.all())
        return value_render(project=self.context["project"], labels=labels, parts=gold, text=item.text)


class ItemListApi(APIView):
    pagination_class = Pagination

    class ItemQuery(serializers.Serializer):
        q = serializers.CharField(
            required=False, default="", max_length=500, help_text="Text contains, or exact external id."
        )
        state = serializers.ChoiceField(choices=ItemState.choices, required=False, default="")
        gold = serializers.ChoiceField(choices=["yes", "no"], required=False, default="")
        # The parameter is "label"; DRF takes declared fields off the class, so Field.label stays.
        label = id_field(  # type: ignore[assignment]
            required=False, help_text="The id of a label the consensus (or final answer) has."
        )
        confidence_below = serializers.FloatField(
            required=False, min_value=0.0, max_value=1.0, help_text="Items whose consensus is less sure than this."
        )
        disagreement = serializers.BooleanField(
            required=False, default=False, help_text="Only items whose answers are not all the same."
        )
        suggestion = serializers.ChoiceField(
            choices=["yes", "no"], required=False, help_text="Items with a suggestion, or without one."
        )
        annotator = serializers.CharField(
            required=False, default="", max_length=150, help_text="Answered by this username."
        )
        ordering = serializers.ChoiceField(choices=selectors.ITEM_ORDERINGS, required=False, default="id")

    @extend_schema(parameters=[ItemQuery], responses=ItemOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        query = query_params(request, self.ItemQuery)
        labels = LabelIndex.for_project(project)
        if query.get("label") is not None and query["label"] not in labels.by_id:
            raise serializers.ValidationError({"label": ["This project has no label with this id."]})
        answers = selectors.AnswerFilters(
            label_id=query.get("label"),
            confidence_below=query.get("confidence_below"),
            disagreement=query["disagreement"],
            suggestion=None if "suggestion" not in query else query["suggestion"] == "yes",
            annotator=query["annotator"],
        )
        items = selectors.items_list(
            project=project,
            query=query["q"],
            state=query["state"],
            gold=query["gold"],
            answers=answers,
            ordering=query["ordering"],
        ).prefetch_related("gold_labels")
        return paginated(request, self, items, ItemOutput, context={"project": project, "labels": labels})


class ItemDetailApi(APIView):
    @extend_schema(responses=ItemOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, item_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        item = selectors.item_get(project=project, item_id=item_id)
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return Response(ItemOutput(item, context=context).data)


class ImportOutput(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "original_name", "size_bytes", "format", "options", "state", "rows_total", "rows_imported",
            "error_count", "errors", "message", "progress", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_progress(self, job: ImportJob) -> dict[str, Any]:
        return selectors.import_progress(job=job)


class ImportListApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    pagination_class = Pagination

    class ImportCreateInput(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=ImportFormat.choices, required=False, allow_blank=True)
        text_field = serializers.CharField(required=False, default="text")
        id_field = serializers.CharField(required=False, default="id")
        gold_field = serializers.CharField(required=False, default="gold")
        conll_tags_are_gold = serializers.BooleanField(required=False, default=True)

    @extend_schema(responses=ImportOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        return paginated(request, self, selectors.import_jobs(project=project), ImportOutput)

    @extend_schema(
        request={"multipart/form-data": ImportCreateInput},
        responses={
            201: ImportOutput,
            202: ImportOutput,
            # A rejected file is a failed job with its rows' errors; a bad form, field messages.
            400: OpenApiResponse(
                {"anyOf": [{"$ref": "#/components/schemas/ImportOutput"}, VALIDATION_ERROR_SCHEMA]},
                description="The failed job with every row's problem, or messages keyed by field.",
            ),
        },
        description=(
            "Upload a file of items. Small files import at once (201 on success, 400 with every "
            "row's problem on failure); larger ones import in the background (202): poll the import."
        ),
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.ImportCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        upload, fmt = values.pop("file"), values.pop("format", "")
        job = imports.items_import_start(project=project, user=request.user, upload=upload, fmt=fmt, options=values)
        code = {"succeeded": status.HTTP_201_CREATED, "failed": status.HTTP_400_BAD_REQUEST}.get(
            job.state, status.HTTP_202_ACCEPTED
        )
        return Response(ImportOutput(job).data, status=code)


class ImportDetailApi(APIView):
    @extend_schema(responses=ImportOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, job_id: int) -> Response:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        return Response(ImportOutput(selectors.import_job_get(project=project, job_id=job_id)).data)
