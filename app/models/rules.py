"""The limits an editable field can declare (app/models/fields.py). Data only: the checks
themselves are in app/services/validation.py. A null value always means the field's default
(or "is required" for a field without one) and is not checked against these."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Text:
    max_len: int
    min_len: int = 0
    strip: bool = False  # trim surrounding white space before checking
    empty_as_null: bool = False  # a string that is empty (after trimming) stores null


@dataclass(frozen=True, slots=True)
class TextList:
    """A list of non-empty strings."""

    max_items: int
    max_len: int
    strip: bool = False
    unique: bool = False  # later duplicates are dropped, order kept


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class HttpUrl:
    max_len: int


@dataclass(frozen=True, slots=True)
class IngredientList:
    max_items: int
    max_len: int  # of the name, unit and note


@dataclass(frozen=True, slots=True)
class Choice:
    enum: type[Enum]


Rule = Text | TextList | IntRange | HttpUrl | IngredientList | Choice
