"""Shapes errors for clients: domain errors keep their code; anything else is masked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from graphql import GraphQLError
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from strawberry.extensions import ParserCache, SchemaExtension

from app.services.errors import DomainError

log = logging.getLogger("larder.errors")

INTERNAL_MESSAGE = "Internal server error"


class ClientError(GraphQLError):
    """Raised by the GraphQL layer itself for expected problems (carries `code`)."""

    def __init__(self, message: str, code: str, **extensions: object) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


def shape_error(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        # Parse/validation errors and errors we raised on purpose.
        if error.extensions and "code" in error.extensions:
            return error
        if original is not None and original.extensions and "code" in original.extensions:
            return GraphQLError(
                original.message,
                error.nodes,
                error.source,
                error.positions,
                error.path,
                extensions=original.extensions,
            )
        code = (
            "GRAPHQL_PARSE_FAILED"
            if error.message.startswith("Syntax Error")
            else ("GRAPHQL_VALIDATION_FAILED")
        )
        return GraphQLError(
            error.message,
            error.nodes,
            error.source,
            error.positions,
            error.path,
            extensions={**(error.extensions or {}), "code": code},
        )
    if isinstance(original, ConnectionFailure | ExecutionTimeout):
        log.warning(
            "database unavailable", extra={"request_id": request_id, "error": str(original)[:300]}
        )
        return GraphQLError(
            "The database is unavailable; retry shortly",
            error.nodes,
            error.source,
            error.positions,
            error.path,
            extensions={"code": "SERVICE_UNAVAILABLE", "requestId": request_id},
        )
    if isinstance(original, DomainError):
        return GraphQLError(
            original.message,
            error.nodes,
            error.source,
            error.positions,
            error.path,
            extensions=original.extensions(),
        )
    log.error(
        "unhandled error in resolver",
        exc_info=original,
        extra={"request_id": request_id, "path": error.path},
    )
    return GraphQLError(
        INTERNAL_MESSAGE,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


class ShapeErrors(SchemaExtension):
    """Shapes the errors of every result: operations, and each event of a subscription."""

    def _shape(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [shape_error(e, request_id) for e in errors]  # type: ignore[attr-defined]

    def on_operation(self) -> Iterator[None]:
        yield
        self._shape(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        self._shape(result)
        yield


class SafeParserCache(ParserCache):
    """ParserCache raises syntax errors from its hook, which Strawberry's WebSocket path does
    not expect (the operation ends silently); leave those to Strawberry's own parse."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield
