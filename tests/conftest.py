"""Fixtures: the standard cast (see tests/helpers.py)."""

from typing import Any

import pytest

from apps.projects.models import TaskType

from .helpers import Cast, make_cast


@pytest.fixture
def cast(db: Any) -> Cast:
    return make_cast()


@pytest.fixture
def spans_cast(db: Any) -> Cast:
    return make_cast(TaskType.SPANS, ("Person", "Organization", "Location", "Date"))


@pytest.fixture
def multi_cast(db: Any) -> Cast:
    return make_cast(TaskType.MULTI_LABEL, ("Politics", "Economy", "Health"))
