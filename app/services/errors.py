"""Expected errors of the domain, each with a stable client-facing code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def extensions(self) -> dict[str, object]:
        return {"code": self.code}


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class BadInput(DomainError):
    """Invalid client input; names every offending field (GraphQL names, e.g. `prepMinutes`)."""

    code = "BAD_USER_INPUT"

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        message = (
            f"{first.field}: {first.message}"
            if len(errors) == 1
            else f"{len(errors)} invalid fields: "
            + "; ".join(f"{e.field}: {e.message}" for e in errors)
        )
        super().__init__(message)
        self.errors = errors

    @classmethod
    def single(cls, field_name: str, message: str) -> BadInput:
        return cls([FieldError(field_name, message)])

    def extensions(self) -> dict[str, object]:
        return {
            "code": self.code,
            "field": self.errors[0].field,
            "fields": [{"field": e.field, "message": e.message} for e in self.errors],
        }
