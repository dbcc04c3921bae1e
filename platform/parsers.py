"""The API's request parsers. A module of its own: DRF reads DEFAULT_PARSER_CLASSES while
``rest_framework.views`` loads, so this module must not import it (``platform.drf`` does)."""

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's json can follow (it
    recurses, and gives up with RecursionError, a 500) refused as a parse error, a 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body nests too deeply.") from None
