"""Beanie documents. Imports nothing else from `app`."""

from beanie import Document

from app.models.recipe import Ingredient, Recipe, Visibility

DOCUMENT_MODELS: list[type[Document]] = [Recipe]

__all__ = ["DOCUMENT_MODELS", "Ingredient", "Recipe", "Visibility"]
