"""The REST core: calls, the HTTP/1.1 exchange, retries, pages and the operation table.

The operation table is public API, for other SDK authors and for checks:
``kalshi_proto.rest.operations()`` yields one `Operation` per operation of the spec files, and
``kalshi_proto.rest.operation("GetMarkets")`` finds one by its ``operationId``. Both are defined,
with the row types, in `kalshi_proto.rest.operation_table`.
"""

from kalshi_proto.rest.operation_table import Operation, operation, operations

__all__ = ["Operation", "operation", "operations"]
