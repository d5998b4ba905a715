"""Write cost of the recipe data model on SecantusDB: indexes and the real write path.

Starts one SecantusDB daemon on a temporary directory (fsync on commit, as `serve` runs it) and
times ~1 KB compare-and-set recipe updates, 8 concurrent writers, each owning its recipes:

- bare: pymongo `update_one({_id, version})`, no secondary index;
- indexes before / after: the same updates on the index set (and derived fields: the prefix
  array before, the word array after) of the code before issue 9 and of this tree;
- path before / after: the real write path (`RecipeService.upsert`: read, next state, group
  committed transaction with the clock) of both versions, each in a child process importing
  that version's `app` (the old one from `git archive --before`).

Variants run interleaved, `--rounds` times, each on a fresh collection; the table shows the
median. It also counts the index entries one update touches: on SecantusDB 0.7 every entry
of every index is deleted and written again; on MongoDB only the entries whose key changed.

    python bench/write_cost.py [--rounds 3] [--updates 60] [--before 807f821]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel

REPO_ROOT = Path(__file__).resolve().parent.parent
WRITERS = 8
RECIPES_PER_WRITER = 25
BEFORE_REV = "807f821"  # main before issue 9's data-model change

# The index set before issue 9 (app/models/recipe.py at BEFORE_REV).
BEFORE_INDEXES = [
    IndexModel(
        [("readers", 1), ("deleted", 1), ("updated_at", DESCENDING), ("_id", DESCENDING)],
        name="readers_deleted_updated",
    ),
    IndexModel([("deleted", 1), ("updated_at", -1), ("_id", -1)], name="deleted_updated"),
    IndexModel([("audience", 1), ("stamp", 1), ("_id", 1)], name="audience_stamp"),
    IndexModel([("stamp", 1), ("_id", 1)], name="stamp"),
    IndexModel([("deleted", 1), ("stamp", 1)], name="deleted_stamp"),
    IndexModel([("search_terms", ASCENDING)], name="search_terms"),
    IndexModel([("tags", ASCENDING)], name="tags"),
    IndexModel([("owner_id", 1), ("updated_at", -1)], name="owner_updated"),
]


def description(revision: int) -> str:
    """About 900 characters, different on every revision (the bulk of a ~1 KB update)."""
    line = f"Revision {revision}: rest the batter, heat the pan, flip once bubbles form. "
    return (line * 12)[:900]


# ----------------------------------------------------------------------- child: write path


async def path_child(uri: str, db_name: str, updates: int) -> dict[str, Any]:
    """The real write path of whichever `app` is importable, timed like the others."""
    import app
    from app.auth.principal import Principal
    from app.db import init_models
    from app.services.lease import WriterLease
    from app.services.recipes import RecipeService, RecipeWrite
    from app.services.writes import StampedWriter
    from bench.driver import recipe_input

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    database = await init_models(client, db_name)  # that version's indexes
    recipes = database.get_collection("recipes")
    lease = WriterLease(database.get_collection("sync_writers"))
    writer = StampedWriter(recipes, database.get_collection("sync_clock"), lease)
    service = RecipeService(recipes, writer)
    viewer = Principal("bench-user")
    names = {"prepMinutes": "prep_minutes", "cookMinutes": "cook_minutes", "imageUrl": "image_url"}
    ids = [f"r{w}-{i}" for w in range(WRITERS) for i in range(RECIPES_PER_WRITER)]
    for n, recipe_id in enumerate(ids):
        fields = {names.get(k, k): v for k, v in recipe_input(n).items()}
        await service.upsert(viewer, RecipeWrite(recipe_id, None, fields))

    async def worker(w: int) -> None:
        mine = [f"r{w}-{i}" for i in range(RECIPES_PER_WRITER)]
        versions = dict.fromkeys(mine, 1)
        titles = {rid: (await service.get(viewer, rid)).title for rid in mine}  # type: ignore[union-attr]
        for k, rid in zip(range(updates), itertools.cycle(mine), strict=False):
            fields = {"title": titles[rid], "description": description(k)}
            done = await service.upsert(viewer, RecipeWrite(rid, versions[rid], fields))
            versions[rid] = done.version  # type: ignore[union-attr]

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(WRITERS)))
    seconds = time.perf_counter() - started
    await writer.close_session()
    await client.drop_database(db_name)
    await client.close()
    return {"ops": updates * WRITERS, "seconds": seconds, "app": str(Path(app.__file__).parent)}


# ---------------------------------------------------------------- parent: pymongo variants


def stored_recipe(recipe_id: str, index: int, owner_id: str) -> dict[str, Any]:
    """The document the server would store for the driver's recipe (derived fields too)."""
    from app.models.fields import CREATE_DEFAULTS
    from app.models.recipe import derived_fields
    from app.services.writes import stamp_time
    from bench.driver import recipe_input

    now = stamp_time(time.time() * 1000)
    doc: dict[str, Any] = {
        **CREATE_DEFAULTS,
        **recipe_input(index),
        "owner_id": owner_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
    }
    doc.update(derived_fields(doc))
    return {"_id": recipe_id, **doc}


def prefixes(words: list[str]) -> list[str]:
    return sorted({w[:n] for w in words for n in range(1, len(w) + 1)})


def documents(before: bool) -> list[dict[str, Any]]:
    """Stored recipes as this tree derives them; `before`: with the old prefix array."""
    docs = []
    for n in range(WRITERS * RECIPES_PER_WRITER):
        doc = stored_recipe(f"r{n % WRITERS}-{n // WRITERS}", n, "bench-user")
        doc["stamp"] = time.time() * 1000 + n * 0.001
        doc["field_versions"] = {}
        if before:
            doc["search_terms"] = prefixes(doc.pop("search_words"))
        docs.append(doc)
    return docs


def update_for(doc: dict[str, Any], version: int, before: bool) -> dict[str, Any]:
    """The $set of a description edit as each version's write path writes it: before, the
    derived fields were always written again; after, only when they change (they do not)."""
    from app.services.writes import stamp_time

    stamp = time.time() * 1000
    change: dict[str, Any] = {
        "description": description(version),
        "version": version + 1,
        "field_versions.description": version + 1,
        "stamp": stamp,
        "updated_at": stamp_time(stamp),
    }
    if before:
        for name in ("readers", "revoked", "audience", "search_terms"):
            change[name] = doc[name]
    return {"$set": change}


async def pymongo_variant(
    uri: str, name: str, indexes: list[IndexModel], before: bool, updates: int
) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db_name = f"wc_{name.replace(' ', '_')}_{os.getpid()}_{time.time_ns()}"
    recipes = client.get_database(db_name).get_collection("recipes")
    if indexes:
        await recipes.create_indexes(indexes)
    docs = documents(before)
    await recipes.insert_many(docs)

    async def worker(w: int) -> None:
        mine = [d for d in docs if d["_id"].startswith(f"r{w}-")]
        versions = {d["_id"]: 1 for d in mine}
        for _, doc in zip(range(updates), itertools.cycle(mine), strict=False):
            v = versions[doc["_id"]]
            result = await recipes.update_one(
                {"_id": doc["_id"], "version": v}, update_for(doc, v, before)
            )
            assert result.modified_count == 1
            versions[doc["_id"]] = v + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(WRITERS)))
    seconds = time.perf_counter() - started
    await client.drop_database(db_name)
    await client.close()
    return {"ops": updates * WRITERS, "seconds": seconds}


def path_variant(uri: str, code: Path | None, updates: int) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", uri, "--updates", str(updates)]
    env = dict(os.environ)
    if code is not None:
        env["WRITE_COST_CODE"] = str(code)
    out = subprocess.run(args, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------- index entries counted


def index_keys(doc: dict[str, Any], index: IndexModel) -> set[tuple[Any, ...]]:
    spec = index.document
    partial = spec.get("partialFilterExpression")
    if partial and any(doc.get(k) != v for k, v in partial.items()):
        return set()
    parts = []
    for field in spec["key"]:
        value = doc.get(field)
        parts.append(
            [repr(v) for v in value] if isinstance(value, list) and value else [repr(value)]
        )
    return set(itertools.product(*parts))


def entries_touched(
    indexes: list[IndexModel], old: dict[str, Any], new: dict[str, Any]
) -> tuple[int, int]:
    """(SecantusDB 0.7: every entry deleted and written again; MongoDB: changed keys only)."""
    secantus = mongodb = 0
    for index in indexes:
        before, after = index_keys(old, index), index_keys(new, index)
        secantus += len(before) + len(after)
        mongodb += len(before ^ after)
    return secantus, mongodb


def entry_rows() -> list[list[str]]:
    from app.models.recipe import Recipe

    rows = []
    for label, before, indexes in (
        ("before", True, BEFORE_INDEXES),
        ("after", False, list(Recipe.Settings.indexes)),
    ):
        doc = documents(before)[0]
        edit = {**doc, **update_for(doc, 1, before)["$set"]}
        retitled = dict(edit, title=doc["title"] + " deluxe")
        words = sorted({*doc.get("search_words", []), "deluxe"})
        if before:
            retitled["search_terms"] = prefixes([*words, *doc["search_terms"]])
        else:
            retitled["search_words"] = words
        s_edit, m_edit = entries_touched(indexes, doc, edit)
        _, m_title = entries_touched(indexes, doc, retitled)
        rows.append([label, str(len(indexes)), str(s_edit), str(m_edit), str(m_title)])
    return rows


# ------------------------------------------------------------------------------------ main


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    lines = [line, "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def measure(uri: str, rounds: int, updates: int, old_code: Path) -> dict[str, list[float]]:
    from app.models.recipe import Recipe

    rates: dict[str, list[float]] = {}
    for r in range(rounds):
        variants: list[tuple[str, Any]] = [
            ("bare collection", lambda: pymongo_variant(uri, "bare", [], False, updates)),
            ("indexes before", lambda: pymongo_variant(uri, "ib", BEFORE_INDEXES, True, updates)),
            (
                "indexes after",
                lambda: pymongo_variant(uri, "ia", list(Recipe.Settings.indexes), False, updates),
            ),
            ("write path before", lambda: asyncio.to_thread(path_variant, uri, old_code, updates)),
            ("write path after", lambda: asyncio.to_thread(path_variant, uri, None, updates)),
        ]
        if r % 2:  # alternate the order between rounds
            variants.reverse()
        for name, run in variants:
            result = await run()
            rates.setdefault(name, []).append(result["ops"] / result["seconds"])
            print(f"round {r + 1}: {name}: {rates[name][-1]:.0f}/s", file=sys.stderr)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=60, help="per writer per variant")
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the old code")
    parser.add_argument("--child", metavar="URI", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        code = os.environ.get("WRITE_COST_CODE")
        sys.path.insert(0, code or str(REPO_ROOT))
        if code:
            sys.path.insert(1, str(REPO_ROOT))  # bench.common, with the old `app` first
        db_name = f"wc_path_{os.getpid()}"
        print(json.dumps(asyncio.run(path_child(args.child, db_name, args.updates))))
        return
    sys.path.insert(0, str(REPO_ROOT))
    from app.embedded import EmbeddedDatabase

    with tempfile.TemporaryDirectory() as tmp:
        old_code = Path(tmp) / "before"
        old_code.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", args.before, "app"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
        with EmbeddedDatabase(storage=str(Path(tmp) / "db")) as db:
            rates = asyncio.run(measure(db.uri, args.rounds, args.updates, old_code))
    bare = statistics.median(rates["bare collection"])
    rows = []
    for name, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        rows.append([name, f"{median:.0f}", f"{median / bare:.2f}", runs])
    print(
        f"SecantusDB daemon on a tmp dir (--sync-on-commit), {WRITERS} concurrent writers, "
        f"{args.updates} updates each per variant, {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} CPUs shared with the client (and anyone else)."
    )
    print(table(["variant", "updates/s (median)", "vs bare", "each round"], rows))
    ratios = [
        ("indexes after / before", "indexes after", "indexes before"),
        ("write path after / before", "write path after", "write path before"),
    ]
    for label, new, old in ratios:
        ratio = statistics.median(rates[new]) / statistics.median(rates[old])
        print(f"{label}: {ratio:.2f}x")
    print()
    print("Index entries touched by one update")
    headers = ["index set", "indexes", "SecantusDB 0.7", "MongoDB, edit", "MongoDB, title edit"]
    print(table(headers, entry_rows()))


if __name__ == "__main__":
    main()
