"""REST API of the learning side: predictions, training runs, versions, stream intake,
labelling functions, imported predictions and weak labels."""

import json
from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects import selectors as project_selectors
from apps.projects.selectors import MANAGE, REVIEW
from platform.drf import AuthenticatedApiRequest, Pagination, paginated

from . import selectors, services, serving, weak, weak_analysis
from .models import ModelVersion, RuleApplication, TrainingRun, WeakLabel

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


# --- weak supervision ----------------------------------------------------------------------------


class FunctionsDocument(serializers.Serializer):
    labelling_functions = serializers.ListField(
        child=serializers.DictField(),
        help_text='Functions in the import format (docs/weak_supervision.md), e.g. {"name": "sports-teams", '
        '"kind": "keywords", "label": "Sports", "keywords": ["lakers", "chelsea"], "match": "word"}.',
    )


class LabellingFunctionsApi(APIView):
    @extend_schema(responses=FunctionsDocument, description="The project's labelling functions, as an import file.")
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(weak.functions_export(project=project))

    @extend_schema(
        request=FunctionsDocument,
        responses=inline_serializer(
            "FunctionsImported",
            {
                "created": serializers.IntegerField(),
                "updated": serializers.IntegerField(),
                "unchanged": serializers.IntegerField(),
            },
        ),  # fmt: skip
        description="Import functions: all or none. A function with a name the project has gets a new version.",
    )
    def put(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = FunctionsDocument(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(weak.functions_import(project=project, raw=json.dumps(request.data), user=request.user))


class FunctionAnalysisOutput(serializers.Serializer):
    name = serializers.CharField(source="function.name")
    kind = serializers.CharField(source="function.kind")
    version = serializers.IntegerField(source="function.version")
    enabled = serializers.BooleanField(source="function.enabled")
    label = serializers.CharField()  # type: ignore[assignment]  # the row's field, not Field.label
    coverage = serializers.FloatField()
    overlaps = serializers.FloatField()
    conflicts = serializers.FloatField()
    correct = serializers.IntegerField(allow_null=True, help_text="Null: no gold or consensus to judge by.")
    incorrect = serializers.IntegerField(allow_null=True)
    empirical_accuracy = serializers.FloatField(allow_null=True)
    estimated_accuracy = serializers.FloatField(allow_null=True)
    flagged = serializers.BooleanField()
    applied = serializers.BooleanField()
    timeouts = serializers.IntegerField()


class FunctionAnalysisApi(APIView):
    @extend_schema(
        responses=FunctionAnalysisOutput(many=True),
        description="Each function's coverage, overlaps, conflicts and accuracy (empirical on gold and "
        "consensus, estimated by the label model), from the last application.",
    )
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(FunctionAnalysisOutput(weak_analysis.functions_analysis(project=project), many=True).data)


class RuleApplicationOutput(serializers.ModelSerializer):
    class Meta:
        model = RuleApplication
        fields = ["id", "state", "progress", "stage", "error", "item_count", "chunks_total", "summary",
                  "created_at", "started_at", "finished_at"]  # fmt: skip


class RuleApplicationApi(APIView):
    @extend_schema(responses=RuleApplicationOutput, description="The latest application of the functions.")
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        application = weak_analysis.application_latest(project=project)
        if application is None:
            raise Http404("The functions have not been applied yet.")
        return Response(RuleApplicationOutput(application).data)

    @extend_schema(
        request=None,
        responses={202: RuleApplicationOutput},
        description="Apply every enabled function to every item, then fit the label model (or get the running one).",
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        application = weak.rules_apply_request(project=project, user=request.user)
        return Response(RuleApplicationOutput(application).data, status=status.HTTP_202_ACCEPTED)


class PredictionsApi(APIView):
    class PredictionsInput(serializers.Serializer):
        source = serializers.CharField(max_length=100)  # type: ignore[assignment]  # the body's field
        predictions = serializers.ListField(
            child=serializers.DictField(),
            allow_empty=False,
            max_length=100_000,
            help_text='{"id": item id from its import, "label": ..., "score": 0..1} (entity projects: "spans"), '
            "or Label Studio tasks with a predictions block.",
        )

    @extend_schema(
        request=PredictionsInput,
        responses=inline_serializer("PredictionsImported", {"imported": serializers.IntegerField()}),
        description="Import another model's predictions as a source that an external function votes with. "
        "The source's earlier predictions are replaced; a bad row refuses the whole request.",
    )
    def put(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        data = self.PredictionsInput(data=request.data)
        data.is_valid(raise_exception=True)
        raw = json.dumps(data.validated_data["predictions"])
        return Response(
            {"imported": weak.predictions_import(project=project, source=data.validated_data["source"], raw=raw)}
        )


class WeakLabelOutput(serializers.ModelSerializer):
    external_id = serializers.CharField(source="item.external_id")
    answer = serializers.SerializerMethodField()

    class Meta:
        model = WeakLabel
        fields = ["item", "external_id", "answer", "confidence", "posteriors", "method", "computed_at"]

    def get_answer(self, weak_label: WeakLabel) -> list[dict[str, Any]]:
        return weak_label.answer.to_json()


class WeakLabelListApi(APIView):
    pagination_class = Pagination

    @extend_schema(
        responses=WeakLabelOutput(many=True),
        description="Weak labels: the label model's labels of items no person's label covers (kept apart "
        "from annotations and the consensus; training weighs them by confidence).",
    )
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return paginated(request, self, weak_analysis.weak_labels(project=project), WeakLabelOutput)
