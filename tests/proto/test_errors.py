"""`kalshi_proto.errors`: the map from HTTP status to `ApiError` class."""

from __future__ import annotations

import pytest

from kalshi_proto.errors import ApiError, ServerError, api_error_for_status


@pytest.mark.parametrize(
    ("status", "cls"), [(418, ApiError), (499, ApiError), (500, ServerError), (599, ServerError)]
)
def test_server_error_starts_at_500(status: int, cls: type[ApiError]) -> None:
    assert api_error_for_status(status) is cls
