"""REST API for annotating: lease the next item, answer it, skip it, change an answer;
and, for managers and reviewers, read the answers."""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects import selectors as project_selectors
from apps.projects.models import Project
from apps.projects.selectors import ANNOTATE, REVIEW
from apps.projects.values import LabelIndex, value_render
from platform.drf import paginated

from . import selectors, services
from .models import Annotation, Assignment


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
