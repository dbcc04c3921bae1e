"""Errors that services raise and every entry point answers the same way."""

import logging
import secrets

from django.core.exceptions import ValidationError


class Conflict(Exception):
    """A request that the current state of things refuses (an item already answered, a
    lease that ran out): nothing was changed, and the message says why, for people.

    The API answers it with HTTP 409 (``platform.drf``); HTML views show the message
    (``platform.html``). Services subclass it to name their own refusals."""


def error_for_people(error: BaseException, *, logger: logging.Logger, job: str) -> str:
    """What a failed job (``job``: "Training run 12") tells people; the traceback goes to the log.

    A refusal written for people (Django's ValidationError, a Conflict) is shown as it is.
    Anything else (an OSError, a library's error) may name server paths, so people get a
    plain sentence and a reference, and the log gets the traceback under that reference."""
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    if isinstance(error, Conflict):
        return str(error)
    reference = secrets.token_hex(4)
    logger.error("%s failed (reference %s)", job, reference, exc_info=error)
    return f"{job} stopped on an internal error (reference {reference}); the server log has the details."
