"""REST API for annotating: lease the next item, answer it, skip it, change an answer;
and, for managers and reviewers, read the answers."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects import selectors as project_selectors
from apps.projects.answers import LabelIndex, value_render
from apps.projects.models import ConsolidationMethod, Project
from apps.projects.selectors import ANNOTATE, MANAGE, REVIEW
from platform.drf import AuthenticatedApiRequest, Pagination, id_field, paginated, query_params

from . import consensus, selectors, services
from .exports import EXPORT_FORMATS, ExportError, export_response
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
        answer = selectors.suggestion_answer(suggestion, labels.by_id)
        return {
            "labels": [labels.by_id[p.label_id].name for p in answer if not p.is_span],
            "spans": [
                {"start": p.start, "end": p.end, "label": labels.by_id[p.label_id].name} for p in answer if p.is_span
            ],
            "confidence": suggestion.confidence,
            "source": suggestion.source,
        }


def _next_payload(project: Project, labels: LabelIndex, outcome: services.NextTask) -> dict[str, Any]:
    if outcome.assignment is None:
        return {"task": None, "reason": outcome.reason, "message": outcome.message}
    return {"task": TaskOutput(outcome.assignment, context={"labels": labels}).data, "reason": "", "message": ""}


# A client holds a few leased items on screen; a longer list is not a client's.
HOLDING_MAX = 100
# duration_ms is a PositiveIntegerField (32 bits on PostgreSQL): about 24 days.
DURATION_MS_MAX = 2**31 - 1


class NextTaskOutput(serializers.Serializer):
    task = TaskOutput(allow_null=True)
    # Every reason task distribution gives (the qualification test and training among them).
    reason = serializers.ChoiceField(choices=["", *services.NoTask.MESSAGES])
    message = serializers.CharField()


class TaskNextApi(APIView):
    class TaskNextInput(serializers.Serializer):
        holding = serializers.ListField(
            child=id_field(), required=False, default=list, max_length=HOLDING_MAX,
            help_text="Assignments you already hold on screen; they are not handed back.",
        )  # fmt: skip

    @extend_schema(request=TaskNextInput, responses=NextTaskOutput)
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
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
    def post(self, request: AuthenticatedApiRequest, project_id: int, assignment_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.TaskSkipInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.assignment_skip(
            project=project, annotator=request.user, assignment_id=assignment_id, reason=data.validated_data["reason"]
        )
        return Response({"skipped": True})


class AnnotationOutput(serializers.ModelSerializer):
    annotator = serializers.SerializerMethodField()
    value = serializers.SerializerMethodField(method_name="rendered_value")

    class Meta:
        model = Annotation
        fields = [
            "id", "item", "annotator", "value", "submission_id", "version", "created_at", "updated_at", "duration_ms",
        ]  # fmt: skip

    def get_annotator(self, annotation: Annotation) -> str:
        return annotation.annotator.get_username()

    def rendered_value(self, annotation: Annotation) -> Any:
        # An answer the caller has at hand (a submit just made it) spares a query.
        known = self.context.get("answers", {}).get(annotation.pk)
        return value_render(
            project=self.context["project"],
            labels=self.context["labels"],
            parts=known if known is not None else selectors.annotation_answer(annotation),
            text=annotation.item.text,
        )


class AnnotationSubmitOutput(serializers.Serializer):
    annotation = AnnotationOutput()
    repeated = serializers.BooleanField(help_text="True when this submission_id was already saved: nothing new.")
    next = NextTaskOutput(required=False, help_text="The next task, when the submit asked for it.")


class AnnotationListApi(APIView):
    pagination_class = Pagination

    class AnnotationQuery(serializers.Serializer):
        item = id_field(required=False, help_text="Only this item's annotations.")
        annotator = serializers.CharField(required=False, default="", max_length=150, help_text="A username.")
        ordering = serializers.ChoiceField(choices=selectors.ANNOTATION_ORDERINGS, required=False, default="id")

    class AnnotationSubmitInput(serializers.Serializer):
        assignment_id = id_field()
        value = serializers.JSONField(
            help_text='A label name or id; a list of them (multi-label); or spans [{"start", "end", "label"}].'
        )
        submission_id = serializers.UUIDField(help_text="Made by the client; repeat it when retrying the same answer.")
        duration_ms = serializers.IntegerField(required=False, min_value=0, max_value=DURATION_MS_MAX)
        next = serializers.BooleanField(required=False, default=False, help_text="Also lease the next item.")
        holding = serializers.ListField(child=id_field(), required=False, default=list, max_length=HOLDING_MAX)

    @extend_schema(parameters=[AnnotationQuery], responses=AnnotationOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        query = query_params(request, self.AnnotationQuery)
        annotations = selectors.annotations_list(
            project=project, item_id=query.get("item"), annotator=query["annotator"], ordering=query["ordering"]
        )
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return paginated(request, self, annotations, AnnotationOutput, context=context)

    @extend_schema(
        request=AnnotationSubmitInput,
        responses={201: AnnotationSubmitOutput, 200: AnnotationSubmitOutput},
        description=(
            "Answer a leased item. The answer is committed before the response. Repeating a submit "
            "with the same submission_id creates nothing and answers 200 with the first answer; a "
            "submission_id already used for another assignment is refused with 409. "
            "With next=true the response also carries the next task."
        ),
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.AnnotationSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        labels = LabelIndex.for_project(project)
        result = services.annotation_submit(
            project=project,
            annotator=request.user,
            assignment_id=values["assignment_id"],
            value=values["value"],
            submission_id=values["submission_id"],
            duration_ms=values.get("duration_ms"),
            labels=labels,
        )
        context = {"project": project, "labels": labels, "answers": {result.annotation.pk: result.answer}}
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
        version = serializers.IntegerField(
            min_value=1, help_text="The answer's version this change starts from (as last read)."
        )

    @extend_schema(
        request=AnnotationUpdateInput,
        responses=AnnotationOutput,
        description=(
            "Change one of your latest answers. When the answer has changed since the version you name, "
            "nothing is saved and the answer is 409: read it again and decide."
        ),
    )
    def patch(self, request: AuthenticatedApiRequest, project_id: int, annotation_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
        data = self.AnnotationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = services.annotation_update(
            project=project,
            annotator=request.user,
            annotation_id=annotation_id,
            value=data.validated_data["value"],
            version=data.validated_data["version"],
        )
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
    pagination_class = Pagination

    class ConsolidationRequestInput(serializers.Serializer):
        method = serializers.ChoiceField(choices=ConsolidationMethod.choices, required=False, allow_blank=True)

    @extend_schema(responses=ConsolidationRunOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return paginated(request, self, selectors.consolidation_runs(project=project), ConsolidationRunOutput)

    @extend_schema(
        request=ConsolidationRequestInput,
        responses={202: ConsolidationRunOutput},
        description="Queue a full consolidation (or return the one already queued or running).",
    )
    def post(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        data = self.ConsolidationRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = consensus.consolidation_request(project=project, method=data.validated_data.get("method", ""))
        run.refresh_from_db()
        return Response(ConsolidationRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class ConsolidationDetailApi(APIView):
    @extend_schema(responses=ConsolidationRunOutput)
    def get(self, request: AuthenticatedApiRequest, project_id: int, run_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(ConsolidationRunOutput(selectors.consolidation_get(project=project, run_id=run_id)).data)


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
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        run = selectors.consolidation_latest(project=project)
        return Response(
            {
                "run": ConsolidationRunOutput(run).data if run else None,
                "report": run.report if run else {},
                "confidence_histogram": selectors.confidence_histogram(project=project),
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
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        return Response(AnnotatorReportOutput(selectors.annotator_rows(project=project), many=True).data)


class ConsensusOutput(serializers.ModelSerializer):
    value = serializers.SerializerMethodField(method_name="rendered_value")
    reviewed_by = serializers.SerializerMethodField()

    class Meta:
        model = ItemConsensus
        fields = ["item", "value", "confidence", "posteriors", "method", "is_provisional", "reviewed_by", "reviewed_at"]

    def rendered_value(self, consensus: ItemConsensus) -> Any:
        return value_render(
            project=self.context["project"],
            labels=self.context["labels"],
            parts=consensus.parts,
            text=consensus.item.text,
        )

    def get_reviewed_by(self, consensus: ItemConsensus) -> str | None:
        return consensus.reviewed_by.get_username() if consensus.reviewed_by else None


class ConsensusListApi(APIView):
    pagination_class = Pagination

    class ConsensusQuery(serializers.Serializer):
        disagreement = serializers.BooleanField(
            required=False, default=False, help_text="Only unreviewed items, least sure first."
        )

    @extend_schema(parameters=[ConsensusQuery], responses=ConsensusOutput(many=True))
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        if query_params(request, self.ConsensusQuery)["disagreement"]:
            rows = selectors.disagreements(project=project).select_related("reviewed_by")
        else:
            rows = selectors.consensus_list(project=project)
        context = {"project": project, "labels": LabelIndex.for_project(project)}
        return paginated(request, self, rows, ConsensusOutput, context=context)


class ConsensusDetailApi(APIView):
    class ConsensusOverrideInput(serializers.Serializer):
        value = serializers.JSONField(help_text="The final answer, in the same shape as an annotation's value.")
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(request=ConsensusOverrideInput, responses=ConsensusOutput)
    def put(self, request: AuthenticatedApiRequest, project_id: int, item_id: int) -> Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
        item = project_selectors.item_get(project=project, item_id=item_id)
        data = self.ConsensusOverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        labels = LabelIndex.for_project(project)
        settled = consensus.consensus_review(
            project=project,
            item=item,
            reviewer=request.user,
            labels=labels,
            value=data.validated_data["value"],
            note=data.validated_data["note"],
        )
        return Response(ConsensusOutput(settled, context={"project": project, "labels": labels}).data)


class ExportApi(APIView):
    class ExportOptionsInput(serializers.Serializer):
        # Every format Quorum writes; whether this project's task type offers one (CoNLL is for
        # spans) is the export's own check, a 400 that names the formats on offer.
        format = serializers.ChoiceField(choices=list(EXPORT_FORMATS), required=False, default="jsonl")
        formula_escape = serializers.BooleanField(
            default=True,
            help_text=(
                "CSV only: prefix a single quote to text cells that start with = + - @, tab or carriage "
                "return (and are not plain numbers), so spreadsheets show them instead of running them. "
                "false for programs that read the file."
            ),
        )

    @extend_schema(
        parameters=[ExportOptionsInput],
        responses={(200, fmt.content_type): OpenApiTypes.BINARY for fmt in EXPORT_FORMATS.values()},
        description="Stream every item of the project with its gold answer, annotations and consensus.",
    )
    def get(self, request: AuthenticatedApiRequest, project_id: int) -> StreamingHttpResponse | Response:
        project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
        options = self.ExportOptionsInput(data=request.query_params)
        options.is_valid(raise_exception=True)
        try:
            return export_response(
                project=project,
                fmt=options.validated_data["format"],
                formula_escape=options.validated_data["formula_escape"],
            )
        except ExportError as error:
            return Response({"format": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
