"""REST API for annotating: lease the next item, answer it, skip it, change an answer;
and, for managers and reviewers, read the answers."""

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects import selectors as project_selectors
from apps.projects.models import ConsolidationMethod, Project
from apps.projects.selectors import ANNOTATE, REVIEW
from apps.projects.values import InvalidValue, LabelIndex, LabelPart, value_parse, value_render
from platform.drf import paginated

from . import reports, selectors, services
from .consolidation import consensus_override, consolidation_request
from .models import Annotation, Assignment, ConsolidationRun, ItemConsensus


class TaskOutput(serializers.Serializer):
    """An item leased to the caller. Gold items look like any other item here."""

    assignment_id = serializers.IntegerField(source="pk")
    item_id = serializers.IntegerField()
    text = serializers.CharField(source="item.text")
    expires_at = serializers.DateTimeField()
    suggestion = serializers.SerializerMethodField()

    def get_suggestion(self, assignment: Assignment) -> Any:
        suggestion = selectors.item_suggestion(item=assignment.item)
        if suggestion is None:
            return None
        labels: LabelIndex = self.context["labels"]
        parts = [p for p in suggestion.parts if p.get("label_id") in labels.by_id]
        return {
            "labels": [labels.by_id[p["label_id"]].name for p in parts if p.get("start") is None],
            "spans": [
                {"start": p["start"], "end": p["end"], "label": labels.by_id[p["label_id"]].name}
                for p in parts
                if p.get("start") is not None
            ],
            "confidence": suggestion.confidence,
            "source": suggestion.source,
        }


def _next_payload(project: Project, labels: LabelIndex, outcome: services.NextTask) -> dict[str, Any]:
    if outcome.assignment is None:
        return {"task": None, "reason": outcome.reason, "message": outcome.message}
    return {"task": TaskOutput(outcome.assignment, context={"labels": labels}).data, "reason": "", "message": ""}


class NextTaskOutput(serializers.Serializer):
    task = TaskOutput(allow_null=True)
    reason = serializers.ChoiceField(choices=["", "blocked", "budget", "done", "busy", "no_labels"])
    message = serializers.CharField()


class TaskNextApi(APIView):
    class TaskNextInput(serializers.Serializer):
        holding = serializers.ListField(
            child=serializers.IntegerField(), required=False, default=list,
            help_text="Assignments you already hold on screen; they are not handed back.",
        )  # fmt: skip

    @extend_schema(request=TaskNextInput, responses=NextTaskOutput)
    def post(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.TaskNextInput(data=request.data)
        data.is_valid(raise_exception=True)
        labels = LabelIndex.for_project(project)
        outcome = services.task_next_for_annotator(
            project=project,
            annotator=request.user,
            exclude_assignment_ids=tuple(data.validated_data["holding"]),
            labels=labels,
        )
        return Response(_next_payload(project, labels, outcome))


class TaskSkipApi(APIView):
    class TaskSkipInput(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)

    @extend_schema(request=TaskSkipInput, responses={200: None})
    def post(self, request: Request, project_id: int, assignment_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.TaskSkipInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.assignment_skip(
                project=project,
                annotator=request.user,
                assignment_id=assignment_id,
                reason=data.validated_data["reason"],
            )
        except services.SubmitRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response({"skipped": True})


class AnnotationOutput(serializers.ModelSerializer):
    annotator = serializers.SerializerMethodField()
    value = serializers.SerializerMethodField()

    class Meta:
        model = Annotation
        fields = ["id", "item", "annotator", "value", "submission_id", "created_at", "updated_at", "duration_ms"]

    def get_annotator(self, annotation: Annotation) -> str:
        return annotation.annotator.get_username()

    def get_value(self, annotation: Annotation) -> Any:
        # Parts the caller has at hand (a submit just made them) spare a query.
        known = self.context.get("parts", {}).get(annotation.pk)
        return value_render(
            project=self.context["project"],
            labels=self.context["labels"],
            parts=known if known is not None else selectors.annotation_parts(annotation),
            text=annotation.item.text,
        )


class AnnotationListApi(APIView):
    class AnnotationSubmitInput(serializers.Serializer):
        assignment_id = serializers.IntegerField()
        value = serializers.JSONField(
            help_text='A label name or id; a list of them (multi-label); or spans [{"start", "end", "label"}].'
        )
        submission_id = serializers.UUIDField(help_text="Made by the client; repeat it when retrying the same answer.")
        duration_ms = serializers.IntegerField(required=False, min_value=0)
        next = serializers.BooleanField(required=False, default=False, help_text="Also lease the next item.")
        holding = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)

    @extend_schema(
        parameters=[OpenApiParameter("item", int), OpenApiParameter("annotator", str)],
        responses=AnnotationOutput(many=True),
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        annotations = (
            Annotation.objects.filter(project=project)
            .select_related("annotator", "item")
            .prefetch_related("labels")
            .order_by("id")
        )
        if request.query_params.get("item"):
            annotations = annotations.filter(item_id=request.query_params["item"])
        if request.query_params.get("annotator"):
            annotations = annotations.filter(annotator__username=request.query_params["annotator"])
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return paginated(request, self, annotations, AnnotationOutput, context=context)

    @extend_schema(
        request=AnnotationSubmitInput,
        responses={201: AnnotationOutput, 200: AnnotationOutput},
        description=(
            "Answer a leased item. The answer is committed before the response. Repeating a submit "
            "with the same submission_id creates nothing and answers 200 with the first answer. "
            "With next=true the response also carries the next task."
        ),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.AnnotationSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        labels = LabelIndex.for_project(project)
        try:
            result = services.annotation_submit(
                project=project,
                annotator=request.user,
                assignment_id=values["assignment_id"],
                value=values["value"],
                submission_id=values["submission_id"],
                duration_ms=values.get("duration_ms"),
                labels=labels,
            )
        except services.SubmitRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        context = {"project": project, "labels": labels, "parts": {result.annotation.pk: result.parts}}
        body: dict[str, Any] = {
            "annotation": AnnotationOutput(result.annotation, context=context).data,
            "repeated": not result.created,
        }
        if values["next"]:
            outcome = services.task_next_for_annotator(
                project=project, annotator=request.user, exclude_assignment_ids=tuple(values["holding"]), labels=labels
            )
            body["next"] = _next_payload(project, labels, outcome)
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class AnnotationDetailApi(APIView):
    class AnnotationUpdateInput(serializers.Serializer):
        value = serializers.JSONField()

    @extend_schema(request=AnnotationUpdateInput, responses=AnnotationOutput)
    def patch(self, request: Request, project_id: int, annotation_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.AnnotationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user: User = request.user  # type: ignore[assignment]
        try:
            annotation = services.annotation_update(
                project=project, annotator=user, annotation_id=annotation_id, value=data.validated_data["value"]
            )
        except services.SubmitRefused as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return Response(AnnotationOutput(annotation, context=context).data)


# --- consolidation and reports (reviewers and managers) ---------------------------------------


class ConsolidationRunOutput(serializers.ModelSerializer):
    class Meta:
        model = ConsolidationRun
        fields = [
            "id", "state", "requested_method", "method", "choice_scores", "choice_reason", "items", "annotations",
            "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class ConsolidationListApi(APIView):
    class ConsolidationRequestInput(serializers.Serializer):
        method = serializers.ChoiceField(choices=ConsolidationMethod.choices, required=False, allow_blank=True)

    @extend_schema(responses=ConsolidationRunOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return paginated(request, self, ConsolidationRun.objects.filter(project=project), ConsolidationRunOutput)

    @extend_schema(
        request=ConsolidationRequestInput,
        responses={202: ConsolidationRunOutput},
        description="Queue a full consolidation (or return the one already queued or running).",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        data = self.ConsolidationRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = consolidation_request(project=project, method=data.validated_data.get("method", ""))
        run.refresh_from_db()
        return Response(ConsolidationRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class ConsolidationDetailApi(APIView):
    @extend_schema(responses=ConsolidationRunOutput)
    def get(self, request: Request, project_id: int, run_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        run = ConsolidationRun.objects.filter(project=project, pk=run_id).first()
        if run is None:
            raise Http404("No such consolidation in this project.")
        return Response(ConsolidationRunOutput(run).data)


class AgreementReportApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "AgreementReport",
            {
                "run": ConsolidationRunOutput(allow_null=True),
                "report": serializers.JSONField(),
                "confidence_histogram": serializers.ListField(child=serializers.IntegerField()),
            },
        )
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        run = reports.latest_run(project=project)
        return Response(
            {
                "run": ConsolidationRunOutput(run).data if run else None,
                "report": run.report if run else {},
                "confidence_histogram": reports.confidence_histogram(project=project),
            }
        )


class AnnotatorReportOutput(serializers.Serializer):
    username = serializers.CharField()
    answers = serializers.IntegerField()
    gold_answered = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    agreement = serializers.FloatField(allow_null=True)
    skill = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    confusion = serializers.JSONField(allow_null=True)
    blocked = serializers.SerializerMethodField()
    blocked_reason = serializers.SerializerMethodField()

    def get_blocked(self, row: dict[str, Any]) -> bool:
        return bool(row["membership"] and row["membership"].is_blocked)

    def get_blocked_reason(self, row: dict[str, Any]) -> str:
        return row["membership"].blocked_reason if row["membership"] else ""


class AnnotatorReportApi(APIView):
    @extend_schema(responses=AnnotatorReportOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(AnnotatorReportOutput(reports.annotator_rows(project=project), many=True).data)


class ConsensusOutput(serializers.ModelSerializer):
    value = serializers.SerializerMethodField()
    reviewed_by = serializers.SerializerMethodField()

    class Meta:
        model = ItemConsensus
        fields = ["item", "value", "confidence", "posteriors", "method", "is_provisional", "reviewed_by", "reviewed_at"]

    def get_value(self, consensus: ItemConsensus) -> Any:
        parts = [LabelPart(*part) for part in reports.consensus_parts(consensus)]
        return value_render(
            project=self.context["project"], labels=self.context["labels"], parts=parts, text=consensus.item.text
        )

    def get_reviewed_by(self, consensus: ItemConsensus) -> str | None:
        return consensus.reviewed_by.get_username() if consensus.reviewed_by else None


class ConsensusListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("disagreement", bool, description="Only unreviewed items, least sure first")],
        responses=ConsensusOutput(many=True),
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        if request.query_params.get("disagreement") in ("1", "true", "yes"):
            rows = reports.disagreements(project=project).select_related("reviewed_by")
        else:
            rows = (
                ItemConsensus.objects.filter(project=project).select_related("item", "reviewed_by").order_by("item_id")
            )
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return paginated(request, self, rows, ConsensusOutput, context=context)


class ConsensusDetailApi(APIView):
    class ConsensusOverrideInput(serializers.Serializer):
        value = serializers.JSONField(help_text="The final answer, in the same shape as an annotation's value.")
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(request=ConsensusOverrideInput, responses=ConsensusOutput)
    def put(self, request: Request, project_id: int, item_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        item = project_selectors.item_get(project=project, item_id=item_id)
        data = self.ConsensusOverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        labels = LabelIndex.for_project(project)
        try:
            parsed = value_parse(project=project, labels=labels, raw=data.validated_data["value"], text=item.text)
        except InvalidValue as error:
            return Response({"value": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        consensus = consensus_override(
            item=item,
            parts=[(p.start, p.end, p.label_id) for p in parsed],
            reviewer=request.user,
            note=data.validated_data["note"],
        )
        return Response(ConsensusOutput(consensus, context={"project": project, "labels": labels}).data)
