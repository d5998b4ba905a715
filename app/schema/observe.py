"""One structured log line and metrics per GraphQL operation (never tokens or bodies)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

log = logging.getLogger("larder.access")


class ObserveOperations(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        ec = self.execution_context
        context = ec.context
        try:
            op_type = ec.operation_type.value
        except Exception:  # the document did not parse: there is no operation
            op_type = "unknown"
        errors = getattr(ec.result, "errors", None) or []
        codes = [(e.extensions or {}).get("code", "ERROR") for e in errors]
        outcome = codes[0] if codes else "OK"
        principal = getattr(context, "principal", None)
        metrics = getattr(context, "metrics", None)
        name = ec.operation_name
        if metrics is not None:
            label = metrics.operation_name(name)
            metrics.operations.labels(op_type, label, outcome).inc()
            metrics.duration.labels(op_type, label).observe(elapsed)
        log.info(
            "graphql operation",
            extra={
                "request_id": getattr(context, "request_id", "-"),
                "operation": name or "anonymous",
                "type": op_type,
                "user": principal.id if principal else None,
                "duration_ms": round(elapsed * 1000, 2),
                "outcome": outcome,
            },
        )
