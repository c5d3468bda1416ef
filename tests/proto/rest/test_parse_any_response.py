"""Whatever a server answers, `Call.parse` returns the typed value or raises a typed error.

For every operation: any status, any body (bytes, arbitrary JSON, or the operation's own example
with a field swapped for junk) and any ``Retry-After`` text give the parsed value, an `ApiError`
carrying that status, or a `RemoteProtocolError` -- never a pydantic, JSON or decoding error.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_proto.errors import ApiError, RateLimitError, RemoteProtocolError
from kalshi_proto.rest.call import Call, HttpResponse
from kalshi_proto.rest.operation_table import Operation, operations
from tests.helpers.spec import example

OPERATIONS = sorted(operations(), key=lambda op: op.operation_id)
STATUSES = [200, 201, 204, 299, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503, 504, 599]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _example_body(op: Operation, junk: object, draw_key: int) -> bytes:
    model = op.response_model
    if model is None:
        return b"{}"
    value: Any = example(model.__name__)
    if isinstance(value, dict) and value:
        keys = sorted(value)
        value[keys[draw_key % len(keys)]] = junk
    return json.dumps(value).encode()


@st.composite
def bodies(draw: st.DrawFn, op: Operation) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "example"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return _example_body(op, draw(json_values), draw(st.integers(0, 1000)))


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_any_answer_gives_a_value_or_a_typed_error(data: st.DataObject) -> None:
    op = data.draw(st.sampled_from(OPERATIONS))
    status = data.draw(st.sampled_from(STATUSES))
    body = data.draw(bodies(op))
    retry_after = data.draw(
        st.none() | st.text(max_size=30).filter(lambda t: "\r" not in t and "\n" not in t)
    )
    wall_ms = data.draw(st.none() | st.integers(0, 2**45))
    headers = () if retry_after is None else (("retry-after", retry_after),)
    call: Call[object] = Call(operation=op, path="/x")
    try:
        call.parse(HttpResponse(status=status, headers=headers, body=body), wall_ms=wall_ms)
    except ApiError as exc:
        assert exc.status == status and not 200 <= status < 300
        assert str(exc)
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            assert exc.retry_after >= 0
    except RemoteProtocolError as exc:
        assert 200 <= status < 300
        assert op.operation_id in str(exc)
    else:
        assert 200 <= status < 300
