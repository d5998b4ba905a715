"""The operations GraphiQL opens with in development sign-in: one ready tab each."""

from __future__ import annotations

import json
from typing import Any

_CREATE = """# Create a recipe. The id is yours to choose (ids stay taken after a delete:
# change the "id" variable below to run the walkthrough again).
mutation Create($id: ID!) {
  upsertRecipe(input: {
    id: $id
    title: "Buttermilk pancakes"
    tags: ["breakfast", "quick"]
    servings: 4
    ingredients: [
      {name: "Flour", quantity: 200, unit: "g"}
      {name: "Buttermilk", quantity: 300, unit: "ml"}
      {name: "Egg", quantity: 1}
    ]
    steps: ["Whisk everything together.", "Fry small ladlefuls in butter."]
  }) {
    __typename
    ... on Recipe { id title version ownerId createdAt updatedAt }
    ... on VersionConflict { currentVersion }
  }
}
"""

_LIST = """# List and search: words match by prefix, case-insensitively, in the title,
# tags and ingredient names. `make demo` loads about fifty recipes to search.
query List($search: String) {
  recipes(filter: {search: $search}, first: 10) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id title tags ownerId visibility version updatedAt } }
  }
}
"""

_UPDATE = """# Update as of the version you read; fields you leave out keep their value.
# The first run returns the Recipe at version 2. Run it again: version 1 is now
# stale, so nothing is written and you get a VersionConflict with what is stored.
mutation Update($id: ID!, $expectedVersion: Int!) {
  upsertRecipe(input: {
    id: $id
    expectedVersion: $expectedVersion
    title: "Fluffy buttermilk pancakes"
  }) {
    __typename
    ... on Recipe { id title version servings tags }
    ... on VersionConflict { expectedVersion currentVersion current { title version } }
  }
}
"""

_DELETE = """# Delete (owner only): the recipe becomes a tombstone at the next version.
mutation Delete($id: ID!, $expectedVersion: Int!) {
  deleteRecipe(id: $id, expectedVersion: $expectedVersion) {
    __typename
    ... on RecipeDeleted { id version }
    ... on VersionConflict { currentVersion }
  }
}
"""

_WATCH = """# Live changes: start this, then run the other tabs (or open a second window).
subscription Watch {
  recipeChanged {
    kind
    version
    recipe { id title version deleted }
  }
}
"""

_ID = "graphiql-pancakes"


def _tab(query: str, variables: dict[str, Any] | None = None) -> dict[str, str | None]:
    return {"query": query, "variables": json.dumps(variables, indent=2) if variables else None}


EXAMPLE_TABS: tuple[dict[str, str | None], ...] = (
    _tab(_CREATE, {"id": _ID}),
    _tab(_LIST, {"search": "pancake"}),
    _tab(_UPDATE, {"id": _ID, "expectedVersion": 1}),
    _tab(_DELETE, {"id": _ID, "expectedVersion": 2}),
    _tab(_WATCH),
)
"""GraphiQL tabs as `{query, variables}`: create, list/search, update (run twice for a
VersionConflict), delete, and a recipeChanged subscription."""
