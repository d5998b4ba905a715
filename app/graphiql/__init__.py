"""GraphiQL served entirely by the app itself, with no CDN.

Strawberry's built-in GraphiQL page loads its JavaScript and CSS from a public
CDN, which is unreachable offline and behind many corporate firewalls. This
package ships those assets (byte-identical copies from the npm registry, each
with its LICENSE file beside it) in ``static/`` and renders an adapted copy of
Strawberry's ``graphiql.html`` that loads them from :data:`STATIC_URL_PREFIX`.

Assets in ``static/`` (npm package, version -> file):

* ``react@18.2.0``: ``umd/react.production.min.js``
* ``react-dom@18.2.0``: ``umd/react-dom.production.min.js``
* ``js-cookie@3.0.5``: ``dist/js.cookie.min.js``
* ``graphiql@3.8.3``: ``graphiql.min.js``, ``graphiql.min.css``
* ``@graphiql/plugin-explorer@1.0.2``: ``dist/index.umd.js`` ->
  ``graphiql-plugin-explorer.umd.js``, ``dist/style.css`` ->
  ``graphiql-plugin-explorer.css``

To serve it, mount ``StaticFiles(directory=STATIC_DIR)`` at
:data:`STATIC_URL_PREFIX` and answer the GraphQL endpoint's browser ``GET``
with ``HTMLResponse(render_graphiql_html(...))``.
"""

from __future__ import annotations

import json
import pathlib
import re
from functools import cache

__all__ = [
    "AUTHORIZATION_PLACEHOLDER",
    "STATIC_DIR",
    "STATIC_URL_PREFIX",
    "render_graphiql_html",
]

_HERE = pathlib.Path(__file__).resolve().parent

STATIC_DIR: pathlib.Path = _HERE / "static"
"""Folder holding GraphiQL's JavaScript, CSS and their licenses."""

STATIC_URL_PREFIX = "/graphiql-static"
"""URL path at which :data:`STATIC_DIR` must be mounted."""

_TOKEN_SOURCES = "`python -m app token` or the serve banner"
AUTHORIZATION_PLACEHOLDER = f"Bearer <paste a token from {_TOKEN_SOURCES}>"
"""Value of the ``Authorization`` header GraphiQL's headers editor starts with.

The page never sends this placeholder itself: it is dropped from requests
until it is replaced by a real token.
"""

_TEMPLATE_PATH = _HERE / "graphiql.html"
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Z_]+)\s*\}\}")


def _js_literal(value: str) -> str:
    """Return *value* as a JavaScript string literal safe inside ``<script>``."""
    return (
        json.dumps(value)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@cache
def _template() -> str:
    return _TEMPLATE_PATH.read_text(encoding="utf-8")


def render_graphiql_html(graphql_path: str = "/graphql") -> str:
    """Return the GraphiQL page, loading every asset from the app itself.

    *graphql_path* is the GraphQL endpoint, resolved by the browser against
    the page's URL; queries and mutations are POSTed to it and subscriptions
    use the same URL over WebSocket (``ws://`` / ``wss://``), as Strawberry's
    own page does. GraphiQL's headers editor starts with an ``Authorization``
    placeholder when the user has no saved headers, and headers persist in
    the browser's localStorage across reloads. The editor's headers (names
    lowercased) are also sent as the graphql-ws ``connectionParams`` of
    subscriptions, e.g. ``{"authorization": "Bearer ..."}``.
    """
    values = {
        "STATIC_URL_PREFIX": STATIC_URL_PREFIX,
        "GRAPHQL_PATH_JSON": _js_literal(graphql_path),
        "AUTHORIZATION_PLACEHOLDER_JSON": _js_literal(AUTHORIZATION_PLACEHOLDER),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            msg = f"unknown placeholder {{{{ {name} }}}} in {_TEMPLATE_PATH}"
            raise KeyError(msg)
        return values[name]

    return _PLACEHOLDER_RE.sub(substitute, _template())
