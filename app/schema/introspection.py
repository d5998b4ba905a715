"""GRAPHQL_INTROSPECTION=false: refuse `__schema` and `__type`, keep `__typename`."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class NoIntrospection(ValidationRule):
    """A validation rule (a fixed class, so ValidationCache keeps working) that refuses the
    two introspection entry points with a clear message and `INTROSPECTION_DISABLED`.
    `__typename` is not introspection: clients need it to tell union members apart."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in INTROSPECTION_FIELDS:
            self.report_error(
                GraphQLError(
                    f"Introspection is disabled on this server ('{node.name.value}'); "
                    "use the published schema.graphql instead",
                    node,
                    extensions={"code": "INTROSPECTION_DISABLED"},
                )
            )
