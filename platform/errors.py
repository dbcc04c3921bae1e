"""Errors that services raise and every entry point answers the same way."""


class Conflict(Exception):
    """A request that the current state of things refuses (an item already answered, a
    lease that ran out): nothing was changed, and the message says why, for people.

    The API answers it with HTTP 409 (``platform.drf``); HTML views show the message
    (``platform.html``). Services subclass it to name their own refusals."""
