"""REST API of the learning side: predictions, training runs, versions, stream intake."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects import selectors as project_selectors
from apps.projects.selectors import MANAGE, REVIEW
from platform.drf import AuthenticatedApiRequest, Pagination, paginated

from . import selectors, services, serving
from .models import ModelVersion, TrainingRun

# Version numbers are a PositiveIntegerField (32 bits on PostgreSQL).
VERSION_MAX = 2**31 - 1


class PredictApi(APIView):
    class PredictInput(serializers.Serializer):
        texts = serializers.ListField(child=serializers.CharField(trim_whitespace=False), allow_empty=False)
        version = serializers.IntegerField(
            required=False, min_value=1, max_value=VERSION_MAX, help_text="A version number; default: the champion."
        )

    @extend_schema(
        request=PredictInput,
        responses=inline_serializer(
            "Predictions",
            {"version": serializers.IntegerField(), "results": serializers.ListField(child=serializers.JSONField())},
        ),
        description="Labels and probabilities (or entities) for up to 64 texts, from the champion or a named version.",
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        data = self.PredictInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            serving.predict(
                project=project, texts=data.validated_data["texts"], number=data.validated_data.get("version")
            )
        )


class TrainingRunOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)

    class Meta:
        model = TrainingRun
        fields = ["id", "state", "trigger", "mode", "progress", "stage", "log", "metrics", "error", "version",
                  "promoted", "created_at", "started_at", "finished_at"]  # fmt: skip


class TrainingRunListApi(APIView):
    pagination_class = Pagination

    @extend_schema(responses=TrainingRunOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return paginated(request, self, selectors.training_runs(project=project), TrainingRunOutput)

    @extend_schema(
        request=None, responses={202: TrainingRunOutput}, description="Queue a training run (or get the active one)."
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        run = services.training_request(project=project, trigger="manual", user=request.user)
        run.refresh_from_db()
        return Response(TrainingRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(APIView):
    @extend_schema(responses=TrainingRunOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, run_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(TrainingRunOutput(selectors.training_run_get(project=project, run_id=run_id)).data)


class ModelVersionOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["number", "status", "pinned", "mode", "backbone", "metrics", "evaluation", "snapshot",
                  "hyperparameters", "train_size", "created_at", "promoted_at", "pruned_at"]  # fmt: skip


class ModelVersionListApi(APIView):
    pagination_class = Pagination

    @extend_schema(responses=ModelVersionOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return paginated(request, self, selectors.versions(project=project), ModelVersionOutput)


class ModelVersionDetailApi(APIView):
    class VersionChangeInput(serializers.Serializer):
        action = serializers.ChoiceField(choices=["promote", "pin", "unpin"])

    @extend_schema(responses=ModelVersionOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, number: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(ModelVersionOutput(selectors.version_get(project=project, number=number)).data)

    @extend_schema(
        request=VersionChangeInput, responses=ModelVersionOutput, description="Promote (roll back to), pin or unpin."
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int, number: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        version = selectors.version_get(project=project, number=number)
        data = self.VersionChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        action = data.validated_data["action"]
        if action == "promote":
            version = services.version_promote(version=version)
        else:
            version = services.version_pin(version=version, pinned=action == "pin")
        return Response(ModelVersionOutput(version).data)


class StreamApi(APIView):
    class StreamInput(serializers.Serializer):
        items = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=500)

    @extend_schema(
        request=StreamInput,
        responses={
            202: inline_serializer("Streamed", {"item_ids": serializers.ListField(child=serializers.IntegerField())})
        },
        description=(
            "Add items that are scored by the champion as they arrive: unsure ones join the annotation "
            "queue at once, sure ones get a model label when the project auto-labels. "
            'Each item: {"text": ..., "id": optional external id, "metadata": optional object}.'
        ),
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.StreamInput(data=request.data)
        data.is_valid(raise_exception=True)
        items = services.stream_items_create(project=project, rows=data.validated_data["items"])
        return Response({"item_ids": [item.pk for item in items]}, status=status.HTTP_202_ACCEPTED)
