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
from dataclasses import dataclass
from functools import cache

from app.graphiql.examples import EXAMPLE_TABS

__all__ = [
    "AUTHORIZATION_PLACEHOLDER",
    "DISABLED_HTML",
    "STATIC_DIR",
    "STATIC_URL_PREFIX",
    "DevSignIn",
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

DISABLED_HTML = """<!doctype html>
<html><head><title>Larder GraphiQL is disabled</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>GraphiQL is disabled</h1>
<p>This server runs with GraphQL introspection off (<code>GRAPHQL_INTROSPECTION=false</code>,
the default when <code>APP_ENV=production</code>), and GraphiQL needs introspection.
The GraphQL API itself is served at this address as usual (POST, or a WebSocket).
Generate client code from the published <code>schema.graphql</code>.</p>
</body></html>
"""
"""What GET /graphql shows a browser (with status 404) when introspection is off."""


@dataclass(frozen=True, slots=True)
class DevSignIn:
    """Development sign-in: the token the server minted at startup for `user`, to be put in
    GraphiQL's headers editor. Only for APP_ENV=development on a loopback address (see
    app/server.py); the page never obtains tokens any other way."""

    user: str
    token: str


_TEMPLATE_PATH = _HERE / "graphiql.html"
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Z_]+)\s*\}\}")


def _js_literal(value: object) -> str:
    """Return *value* (JSON data) as a JavaScript literal safe inside ``<script>``."""
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


def render_graphiql_html(graphql_path: str = "/graphql", sign_in: DevSignIn | None = None) -> str:
    """Return the GraphiQL page, loading every asset from the app itself.

    *graphql_path* is the GraphQL endpoint, resolved by the browser against
    the page's URL; queries and mutations are POSTed to it and subscriptions
    use the same URL over WebSocket (``ws://`` / ``wss://``), as Strawberry's
    own page does. GraphiQL's headers editor starts with an ``Authorization``
    placeholder when the user has no saved headers, and headers persist in
    the browser's localStorage across reloads. The editor's headers (names
    lowercased) are also sent as the graphql-ws ``connectionParams`` of
    subscriptions, e.g. ``{"authorization": "Bearer ..."}``.

    With *sign_in*, the page opens signed in (the token in every tab's headers; a stale
    token of the same user saved in the browser is replaced by this one) and with Larder's
    example operations as tabs, kept in their own localStorage namespace.
    """
    dev = None
    if sign_in is not None:
        dev = {"user": sign_in.user, "token": sign_in.token, "tabs": list(EXAMPLE_TABS)}
    values = {
        "STATIC_URL_PREFIX": STATIC_URL_PREFIX,
        "GRAPHQL_PATH_JSON": _js_literal(graphql_path),
        "AUTHORIZATION_PLACEHOLDER_JSON": _js_literal(AUTHORIZATION_PLACEHOLDER),
        "DEV_SIGN_IN_JSON": _js_literal(dev),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            msg = f"unknown placeholder {{{{ {name} }}}} in {_TEMPLATE_PATH}"
            raise KeyError(msg)
        return values[name]

    return _PLACEHOLDER_RE.sub(substitute, _template())
