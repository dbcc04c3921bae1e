"""Glue between Quorum's services and Django REST Framework."""

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from .errors import Conflict


class AuthenticatedApiRequest(Request):
    """What an API view receives behind DRF's IsAuthenticated, as type checkers should see it."""

    user: User


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Services raise Django's ValidationError, answered as a 400 with the same messages
    (keyed by field where the service named one), and ``Conflict``, answered as a 409."""
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    return exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 handler (``handler404``): a URL under /api/ that matches no route (an id
    such as ``-1`` or ``abc`` never reaches a view) answers in the API's format, like the
    404s the views raise; other URLs get the site's page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


# Row ids are 64-bit (BigAutoField): a larger number names no row, and SQLite cannot even
# bind it, so every id the API reads (path, query or body) is checked against this first.
ID_MAX = 2**63 - 1
PAGE_SIZE_MAX = 500


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """An input field for a row id: a whole number the database can hold."""
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, **kwargs)


def query_params(request: Request, serializer: type[serializers.Serializer]) -> dict[str, Any]:
    """The request's query parameters as ``serializer`` validates them: a 400 with messages
    keyed by parameter when one is wrong. Parameters it does not declare are ignored, so a
    filter or an ordering that is not on its list is never applied."""
    data = serializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class PageQuery(serializers.Serializer):
    page = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX, help_text="From 1.")
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=PAGE_SIZE_MAX, help_text=f"At most {PAGE_SIZE_MAX}."
    )


class Pagination(PageNumberPagination):
    """Page numbers, validated like every other parameter (DRF's own quietly falls back to
    the default page size, and answers a page that is not a number with 404). A page past
    the last is still 404, as DRF has it."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = PAGE_SIZE_MAX
    last_page_strings = ()

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list[Any] | None:
        self.query = query_params(request, PageQuery)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Request) -> int:
        return int(self.query.get("page_size", self.page_size))

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        return int(self.query.get("page", 1))

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        bounds = {"page": {"minimum": 1, "maximum": ID_MAX}, "page_size": {"minimum": 1, "maximum": PAGE_SIZE_MAX}}
        for parameter in parameters:
            parameter["schema"].update(bounds[parameter["name"]])
        return parameters


def paginated(
    request: Request,
    view: APIView,
    queryset: Any,
    serializer: type[serializers.BaseSerializer],
    context: dict[str, Any] | None = None,
) -> Response:
    """One page of ``queryset``. The view declares ``pagination_class = Pagination`` so that
    its schema describes the page parameters and the envelope it answers."""
    paginator = Pagination()
    page: Any = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True, context=context or {}).data)
