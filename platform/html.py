"""Helpers the HTML views of every app share: partial rendering for htmx, service
errors shown on forms, and refusals answered to the workspace script."""

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from .errors import Conflict


class AuthenticatedRequest(HttpRequest):
    """What a view behind ``login_required`` receives, as type checkers should see it:
    a signed-in user, and django-htmx's details of the request."""

    user: User
    htmx: HtmxDetails


def render_page(
    request: AuthenticatedRequest, template: str, context: dict[str, Any], partial: str | None = None
) -> HttpResponse:
    """The whole page, or only its named ``partial`` when htmx asked for a piece."""
    if partial and request.htmx and not request.htmx.boosted:
        template = f"{template}#{partial}"
    return render(request, template, context)


def form_add_service_error(form: BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: under the field it names when the
    form has that field, above the form otherwise."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def refusal_message(error: ValidationError | Conflict) -> str:
    """What to tell a person whose request a service refused."""
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def refusal_json(error: ValidationError | Conflict, **fields: Any) -> JsonResponse:
    """A refusal for a script: 409 when the state of things refused it, 422 when the
    input was wrong; ``message`` says why."""
    status = 409 if isinstance(error, Conflict) else 422
    return JsonResponse({**fields, "message": refusal_message(error)}, status=status)
