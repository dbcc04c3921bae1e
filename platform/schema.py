"""The OpenAPI schema (drf-spectacular): its own module, because drf-spectacular imports DRF's
generic views, which load the pagination class of ``platform.drf`` from the settings."""

from typing import Any

from drf_spectacular import openapi
from rest_framework import serializers


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


# DRF's ValidationError body: messages keyed by the field or parameter at fault, nested as the
# input is ("detail" or "non_field_errors" when no one field is).
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Messages keyed by the field or parameter at fault.",
    "additionalProperties": {},
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the errors every endpoint may answer, so that clients
    (and the schemathesis suite) know them: 400 for input that does not validate, 403 without
    credentials or role, 404 for what is not yours or not there, 409 for a write the state
    refuses, 415 for a body it cannot read, 429 when a throttle applies. An endpoint's own
    declaration of a code wins."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        errors: dict[str, tuple[str, Any]] = {"403": ("Not signed in, or your role does not allow this.", ErrorOutput)}
        if writes or any(parameter["in"] == "query" for parameter in self._get_parameters()):
            errors["400"] = ("Invalid input; nothing was changed.", VALIDATION_ERROR_SCHEMA)
        if "{" in self.path or self._is_list_view():
            errors["404"] = ("No such object for you (or no such page).", ErrorOutput)
        if writes:
            errors["409"] = ("The state of things refuses this request; nothing was changed.", ErrorOutput)
            errors["415"] = ("A body in a media type this endpoint does not read.", ErrorOutput)
        if self.view.get_throttles():
            errors["429"] = ("Too many requests; wait and retry.", ErrorOutput)
        for code, (description, body) in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(body, code)
                responses[code]["description"] = description
        return responses
