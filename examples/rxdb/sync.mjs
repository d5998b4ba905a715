// RxDB 17 against Larder: offline-first replication (Node 20; the same setup works in a browser
// app with another RxStorage).
//
// Two "devices" of the same user (two RxDB databases in memory, each with its own WebSocket)
// replicate the `recipes` collection with Larder over pullRecipe / pushRecipe (HTTP) and
// streamRecipe (graphql-ws). The script checks, against a running server:
//   1. the initial pull brings the recipes that already exist on the server;
//   2. a local insert, edited again at once, is pushed (and is then readable over HTTP);
//   3. a change made on the server (a plain upsertRecipe over HTTP) arrives through the stream;
//   4. offline edits of different fields on two devices, from the same base, both survive
//      (the server merges a stale push field by field);
//   5. offline edits of the same field conflict: the server keeps the first, and the conflict
//      handler replaces the losing device's copy with the master state (as RxDB's default);
//   6. deletions propagate as `_deleted`, both ways;
//   7. (tokens living <= 2 min) the WebSocket closed at token expiry (4440) reconnects with a
//      fresh token and the stream keeps delivering; pulls and pushes use fresh tokens too;
//   8. (LARDER_TOMBSTONE_RETENTION_SECONDS set) a device offline for longer than the
//      retention gets CHECKPOINT_EXPIRED and resyncs from scratch.
// It prints one PASS/FAIL/SKIP line per check and exits non-zero when any check fails.
//
//   LARDER_URL            GraphQL endpoint (default http://127.0.0.1:8000/graphql)
//   LARDER_TOKEN_COMMAND  a shell command that prints a fresh token; run whenever one is needed
//   LARDER_TOKEN          a fixed token, used when LARDER_TOKEN_COMMAND is not set
//   LARDER_TOMBSTONE_RETENTION_SECONDS  the server's TOMBSTONE_RETENTION, to run check 8
import { exec } from "node:child_process";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { createRxDatabase, deepEqual, defaultConflictHandler } from "rxdb";
import { replicateGraphQL } from "rxdb/plugins/replication-graphql";
import { getRxStorageMemory } from "rxdb/plugins/storage-memory";
import { wrappedValidateAjvStorage } from "rxdb/plugins/validate-ajv";

const HTTP_URL = process.env.LARDER_URL ?? "http://127.0.0.1:8000/graphql";
const WS_URL = HTTP_URL.replace(/^http/, "ws"); // http -> ws, https -> wss

// ------------------------------------------------------------------------------------------
// The client setup: copy this part into your app (docs/sync-clients.md explains each choice).
// ------------------------------------------------------------------------------------------

/** RxDB schema matching `RecipeSyncDoc` (`_deleted` is RxDB's own field, not declared here). */
export const recipeSchema = {
  title: "recipe",
  version: 0,
  primaryKey: "id",
  type: "object",
  properties: {
    id: { type: "string", maxLength: 64 }, // 1-64 of [A-Za-z0-9_-]
    title: { type: "string", maxLength: 200 },
    description: { type: "string" },
    ingredients: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string" },
          quantity: { type: ["number", "null"] },
          unit: { type: ["string", "null"] },
          note: { type: ["string", "null"] },
        },
        required: ["name"],
      },
    },
    steps: { type: "array", items: { type: "string" } },
    tags: { type: "array", items: { type: "string" } },
    servings: { type: ["integer", "null"] },
    prepMinutes: { type: ["integer", "null"] },
    cookMinutes: { type: ["integer", "null"] },
    imageUrl: { type: ["string", "null"] },
    cuisine: { type: ["string", "null"] },
    collaborators: { type: "array", items: { type: "string" } },
    visibility: { type: "string", enum: ["PRIVATE", "PUBLIC"] },
    // Server-owned: absent on a document created locally until the server's copy is pulled.
    ownerId: { type: "string" },
    version: { type: "integer" },
    updatedAt: { type: "number" },
  },
  required: ["id", "title"],
};

const EDITABLE_FIELDS = [
  "title",
  "description",
  "ingredients",
  "steps",
  "tags",
  "servings",
  "prepMinutes",
  "cookMinutes",
  "imageUrl",
  "cuisine",
  "collaborators",
  "visibility",
];

/**
 * Larder merges stale pushes field by field itself and answers with the master state when it
 * could not apply a row. Mostly that is a real conflict (the same field changed on both sides:
 * keep the master, like RxDB's default handler) or a refusal (not allowed: keep the master).
 * One case is neither: the assumed state has no `version` because the document was inserted
 * locally and edited again before the server's copy came back. There, re-apply the local edit
 * on top of the master; RxDB then pushes it again, based on the master.
 */
export const recipeConflictHandler = {
  isEqual: defaultConflictHandler.isEqual,
  async resolve({ assumedMasterState: base, realMasterState: master, newDocumentState: local }) {
    if (!base || base.version === master.version) return master; // a create clash, or refused
    if (base._deleted || master._deleted || local._deleted) return master;
    const merged = { ...master };
    for (const field of EDITABLE_FIELDS) {
      if (deepEqual(local[field], base[field])) continue; // not changed here
      const changedThere = base[field] !== undefined && !deepEqual(master[field], base[field]);
      if (changedThere && !deepEqual(master[field], local[field])) return master; // both changed
      merged[field] = local[field];
    }
    return merged;
  },
};

/** `db.addCollections({recipes: recipeCollection})` */
export const recipeCollection = { schema: recipeSchema, conflictHandler: recipeConflictHandler };

// Every field of RecipeSyncDoc. Array-of-object fields need a sub-selection, which is why the
// builders are written by hand (RxDB's schema-derived builders get `ingredients` wrong).
const DOC_FIELDS = `id title description ingredients { name quantity unit note } steps tags
  servings prepMinutes cookMinutes imageUrl cuisine ownerId collaborators visibility version
  updatedAt _deleted`;

const PULL_QUERY = `query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {
  pullRecipe(checkpoint: $checkpoint, limit: $limit) {
    documents { ${DOC_FIELDS} }
    checkpoint { id updatedAt }
  }
}`;

const PUSH_MUTATION = `mutation PushRecipe($recipePushRow: [RecipeInputPushRow!]) {
  pushRecipe(recipePushRow: $recipePushRow) { ${DOC_FIELDS} }
}`;

// No token in `$headers`: graphql-ws re-sends this exact subscription after every reconnect,
// so a token put here would outlive its expiry. The connection's token (connectionParams,
// fetched fresh on each connect) authenticates the stream.
const STREAM_SUBSCRIPTION = `subscription StreamRecipe {
  streamRecipe {
    documents { ${DOC_FIELDS} }
    checkpoint { id updatedAt }
  }
}`;

// The fields RecipeInputSyncDoc accepts: anything else in a document would fail validation.
const INPUT_FIELDS = [
  "id",
  "title",
  "description",
  "ingredients",
  "steps",
  "tags",
  "servings",
  "prepMinutes",
  "cookMinutes",
  "imageUrl",
  "cuisine",
  "ownerId",
  "collaborators",
  "visibility",
  "version",
  "updatedAt",
  "_deleted",
];

function toSyncInput(doc) {
  const input = {};
  for (const name of INPUT_FIELDS) if (doc[name] !== undefined) input[name] = doc[name];
  if (input.ingredients) {
    input.ingredients = input.ingredients.map(({ name, quantity, unit, note }) => ({
      name,
      quantity,
      unit,
      note,
    }));
  }
  return input;
}

export const pullQueryBuilder = (checkpoint, limit) => ({
  query: PULL_QUERY,
  operationName: "PullRecipe",
  variables: { checkpoint: checkpoint ?? null, limit }, // the first pull has no checkpoint
});

export const pushQueryBuilder = (rows) => ({
  query: PUSH_MUTATION,
  operationName: "PushRecipe",
  variables: {
    recipePushRow: rows.map((row) => ({
      assumedMasterState: row.assumedMasterState ? toSyncInput(row.assumedMasterState) : null,
      newDocumentState: toSyncInput(row.newDocumentState),
    })),
  },
});

export const streamQueryBuilder = () => ({
  query: STREAM_SUBSCRIPTION,
  operationName: "StreamRecipe",
  variables: {},
});

/**
 * One replication of `collection` with Larder. It resumes from the checkpoints stored under
 * its identifier, so cancelling it and calling this again picks up where it stopped.
 *
 * getToken()        the app's current token (cached by the auth library, refreshed near expiry)
 * onStreamLost(why) the server ended the stream (SUBSCRIPTION_OVERFLOW, RESYNC_REQUIRED, ...)
 *                   or the socket closed for good: this replication gets no more live changes
 * on                graphql-ws listeners ({connected, closed, ...}), for logging
 */
export function replicateRecipes(collection, { httpUrl, wsUrl, getToken, onStreamLost, on }) {
  const state = replicateGraphQL({
    collection,
    // Checkpoints are stored under this id: keep it stable per server (and per user, if
    // several users share one local database).
    replicationIdentifier: `larder-recipes-${httpUrl}`,
    url: { http: httpUrl, ws: wsUrl },
    // Every pull and push asks for the current token (RxDB's `headers` option is fixed until
    // setHeaders() is called, so it would go stale when the token is refreshed).
    fetch: async (request) => {
      request.headers.set("Authorization", `Bearer ${await getToken()}`);
      return fetch(request);
    },
    pull: {
      queryBuilder: pullQueryBuilder,
      streamQueryBuilder,
      batchSize: 100, // sent as `limit`; a shorter page tells RxDB it has caught up
      wsOptions: {
        // Called on every (re)connect: after close 4440 (token expired) the reconnect carries
        // a fresh token. Larder reads {authorization} or {headers: {authorization}}.
        connectionParams: async () => ({ authorization: `Bearer ${await getToken()}` }),
        // graphql-ws gives up after 5 failed reconnects by default; the stream is then dead.
        retryAttempts: Infinity,
        // RxDB 17.6 throws on a stream message without `data` (how Larder ends a stream with
        // an error), which kills a Node process and silently stops the stream in a browser.
        // Turn such a message into a RESYNC (pull from the checkpoint) and report it.
        jsonMessageReviver: (key, value) => {
          if (key !== "" || value?.type !== "next" || value.payload?.data != null) return value;
          const codes = (value.payload.errors ?? []).map((e) => e.extensions?.code ?? e.message);
          setTimeout(() => onStreamLost?.(codes.join(",")), 0);
          return { ...value, payload: { data: { streamRecipe: "RESYNC" } } };
        },
        on,
      },
    },
    push: { queryBuilder: pushQueryBuilder, batchSize: 50 },
    live: true,
    deletedField: "_deleted",
    retryTime: 5000, // wait between failed pulls/pushes
  });
  state.error$.subscribe((error) => {
    // RxDB's own errors (RC_PULL, RC_PUSH) are retried; a raw error is the stream failing
    // (graphql-ws gave up, e.g. after close 4429).
    if (!error?.rxdb) onStreamLost?.(`stream failed: ${error?.code ?? error?.message ?? error}`);
  });
  return state;
}

/**
 * Keep `collection` replicating: a replication whose stream is lost is cancelled and started
 * again (it resumes from its checkpoint), after 1, 2, 4, ... 30 s if it keeps failing.
 * Returns {state (the current RxGraphQLReplicationState), stop()}.
 * options: those of replicateRecipes, plus onStart(state) and onRestart(why, delayMs).
 */
export function syncRecipes(collection, options) {
  let failures = 0;
  let startedAt = 0;
  let timer = null;
  let stopped = false;
  const sync = { state: null };
  const start = () => {
    startedAt = Date.now();
    const state = replicateRecipes(collection, {
      ...options,
      onStreamLost: (why) => sync.state === state && restart(why),
    });
    sync.state = state;
    options.onStart?.(state);
  };
  const restart = (why) => {
    if (stopped || timer) return;
    failures = Date.now() - startedAt > 60_000 ? 1 : failures + 1; // stable for a minute: reset
    const delay = Math.min(30_000, 1000 * 2 ** (failures - 1));
    options.onRestart?.(why, delay);
    timer = setTimeout(async () => {
      timer = null;
      await sync.state.cancel();
      if (!stopped) start();
    }, delay);
  };
  sync.stop = async () => {
    stopped = true;
    clearTimeout(timer);
    await sync.state.cancel(); // checkpoints stay in the local database
  };
  start();
  return sync;
}

/** True when a replication error is Larder's CHECKPOINT_EXPIRED (the pull keeps failing). */
export function isCheckpointExpired(error) {
  return (error?.parameters?.errors ?? []).some(
    (e) => e?.extensions?.code === "CHECKPOINT_EXPIRED",
  );
}

/**
 * Resync from scratch after CHECKPOINT_EXPIRED: stop syncing, drop the local collection (its
 * documents and the replication's checkpoints) and start again with an empty one, which pulls
 * everything. Changes not pushed yet are lost: the server may no longer know what they were
 * based on.
 */
export async function resyncFromScratch(db, sync, options) {
  await sync.stop();
  await db.recipes.remove();
  await db.addCollections({ recipes: recipeCollection });
  return syncRecipes(db.recipes, options);
}

// ------------------------------------------------------------------------------------------
// The demonstration.
// ------------------------------------------------------------------------------------------

/** The app's token source: cached until 10 s before `exp` (what an auth library does). */
let tokenCache = null;
function getToken() {
  if (!tokenCache || tokenCache.exp - Date.now() / 1000 <= 10) {
    const entry = { exp: Infinity, ttl: Infinity };
    entry.promise = fetchToken().then(
      (token) => {
        const part = token.split(".")[1] ?? "";
        const claims = JSON.parse(Buffer.from(part, "base64url").toString() || "{}");
        entry.exp = claims.exp ?? Infinity;
        entry.ttl = entry.exp - (claims.iat ?? 0);
        return token;
      },
      (error) => {
        if (tokenCache === entry) tokenCache = null;
        throw error;
      },
    );
    tokenCache = entry;
  }
  return tokenCache.promise;
}

async function fetchToken() {
  if (process.env.LARDER_TOKEN_COMMAND) {
    return (await promisify(exec)(process.env.LARDER_TOKEN_COMMAND)).stdout.trim();
  }
  if (process.env.LARDER_TOKEN) return process.env.LARDER_TOKEN.trim();
  throw new Error("set LARDER_TOKEN or LARDER_TOKEN_COMMAND (see README.md)");
}

const storage = wrappedValidateAjvStorage({ storage: getRxStorageMemory() });
const runId = `rx${Date.now().toString(36)}`;
let passed = 0;
let failed = 0;

function log(...args) {
  console.log(new Date().toISOString().slice(11, 23), ...args);
}

function check(name, ok, detail = "") {
  if (ok) passed += 1;
  else failed += 1;
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${detail ? ` -- ${detail}` : ""}`);
  return ok;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `probe` until it returns something truthy; undefined after `ms`. */
async function waitFor(probe, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await sleep(100);
  }
  return undefined;
}

/** A plain GraphQL request over HTTP: "the server side" (another client, the web app, ...). */
async function gql(query, variables = {}) {
  const response = await fetch(HTTP_URL, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await getToken()}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const SERVER_RECIPE = `query ($id: ID!) {
  recipe(id: $id) {
    id title steps tags servings version ownerId ingredients { name quantity unit } } }`;
const UPSERT = `mutation ($input: RecipeInput!) { upsertRecipe(input: $input) {
  __typename ... on Recipe { id version title } ... on VersionConflict { currentVersion } } }`;
const DELETE = `mutation ($id: ID!, $v: Int!) { deleteRecipe(id: $id, expectedVersion: $v) {
  __typename ... on RecipeDeleted { version } } }`;

const serverRecipe = async (id) => (await gql(SERVER_RECIPE, { id })).recipe;
const localDoc = async (db, id) => (await db.recipes.findOne(id).exec())?.toJSON() ?? null;
const edit = async (db, id, patch) => (await db.recipes.findOne(id).exec()).incrementalPatch(patch);

/** One device: a local database plus its replication, which it can stop and restart. */
async function openDevice(name) {
  const db = await createRxDatabase({
    name: `larder-${runId}-${name}`,
    storage,
    multiInstance: false, // one process: no leader election needed
  });
  await db.addCollections({ recipes: recipeCollection });
  const device = { name, db, sync: null, socket: [], errors: [], restarts: [] };
  const options = {
    httpUrl: HTTP_URL,
    // RxDB keeps one WebSocket per URL per process, set up by the first replication that asks:
    // a distinct URL gives each device (or user) its own connection.
    wsUrl: `${WS_URL}?device=${name}`,
    getToken,
    onStart: (state) =>
      state.error$.subscribe((error) => {
        device.errors.push(error);
        const inner = error.parameters?.errors?.map((e) => e.extensions?.code ?? e.message);
        log(`[${name}] replication error ${error.code ?? ""} ${inner ?? error.message ?? ""}`);
      }),
    onRestart: (why, delay) => {
      device.restarts.push(why);
      log(`[${name}] stream lost (${why}): restarting the replication in ${delay} ms`);
    },
    on: {
      connected: () => device.socket.push("connected"),
      closed: (event) => {
        device.socket.push(event.code);
        log(`[${name}] socket closed ${event.code} ${event.reason}`);
      },
    },
  };
  Object.defineProperty(device, "replication", { get: () => device.sync?.state ?? null });
  device.connect = () => {
    device.sync = syncRecipes(db.recipes, options);
  };
  device.disconnect = async () => {
    await device.sync?.stop();
    device.sync = null;
  };
  device.resyncFromScratch = async () => {
    device.sync = await resyncFromScratch(db, device.sync, options);
  };
  return device;
}

async function main() {
  await getToken();
  log(`server ${HTTP_URL}, run ${runId}`);

  // --- 1. initial pull ------------------------------------------------------------------
  const seeded = [];
  for (const title of ["Tomato soup", "Lentil curry"]) {
    const id = `${runId}-seed-${seeded.length}`;
    const { upsertRecipe } = await gql(UPSERT, {
      input: { id, title, steps: ["cook"], tags: ["seed"] },
    });
    seeded.push(upsertRecipe);
  }
  const phone = await openDevice("phone");
  phone.connect();
  await phone.replication.awaitInitialReplication();
  const pulled = await Promise.all(seeded.map((r) => localDoc(phone.db, r.id)));
  check(
    "1 initial pull brings existing server recipes",
    pulled.every((d, i) => d && d.title === seeded[i].title && d.version === 1),
    `${(await phone.db.recipes.find().exec()).length} recipes on the phone`,
  );

  // --- 2. local insert is pushed ----------------------------------------------------------
  const pancakesId = `${runId}-pancakes`;
  const inserted = await phone.db.recipes.insert({
    id: pancakesId,
    title: "Pancakes",
    description: "Made on the phone",
    ingredients: [{ name: "flour", quantity: 200, unit: "g", note: null }],
    steps: ["mix", "fry"],
    tags: ["breakfast"],
    servings: 4,
    prepMinutes: 5,
    cookMinutes: 10,
    imageUrl: null,
    cuisine: null,
    collaborators: [],
    visibility: "PRIVATE",
  });
  // Edited at once, before the server's copy is back: see recipeConflictHandler.
  await inserted.incrementalPatch({ servings: 6 });
  const onServer = await waitFor(async () => {
    const r = await serverRecipe(pancakesId);
    return r?.servings === 6 ? r : null;
  });
  check(
    "2 a local insert, edited at once, is pushed (readable over HTTP)",
    onServer?.ingredients[0]?.quantity === 200,
    JSON.stringify(onServer ?? (await serverRecipe(pancakesId))),
  );
  const withServerFields = await waitFor(async () => {
    const d = await localDoc(phone.db, pancakesId);
    return onServer && d?.version === onServer.version && d.ownerId ? d : null;
  });
  check(
    "2 the server's copy (ownerId, version, updatedAt) comes back to the phone",
    !!withServerFields,
    withServerFields ? `ownerId=${withServerFields.ownerId} v${withServerFields.version}` : "",
  );

  // --- 3. server-side change arrives through the stream ----------------------------------
  const { upsertRecipe: edited } = await gql(UPSERT, {
    input: {
      id: pancakesId,
      expectedVersion: withServerFields?.version ?? 1,
      title: "Pancakes (edited on the web)",
    },
  });
  const streamed = await waitFor(async () => {
    const d = await localDoc(phone.db, pancakesId);
    return d?.version === edited.version ? d : null;
  });
  check(
    "3 a server-side upsertRecipe reaches the phone through the stream (no reconnect)",
    streamed?.title === "Pancakes (edited on the web)" &&
      phone.socket.filter((e) => e === "connected").length === 1,
    streamed ? `v${streamed.version} "${streamed.title}"` : "not received within 10 s",
  );

  // --- 4. offline edits of different fields merge -----------------------------------------
  const tablet = await openDevice("tablet");
  tablet.connect();
  await tablet.replication.awaitInitialReplication();
  const base = await waitFor(async () => {
    const d = await localDoc(tablet.db, pancakesId);
    return d?.version === edited.version ? d : null;
  });
  check("4 the tablet pulled the same base version", !!base, base ? `v${base.version}` : "");

  await tablet.disconnect(); // the tablet goes offline
  await edit(tablet.db, pancakesId, { steps: ["mix", "rest 10 min", "fry"] });
  log("tablet (offline) changed steps; phone (online) changes tags");
  await edit(phone.db, pancakesId, { tags: ["breakfast", "sweet"] });
  await waitFor(async () => (await serverRecipe(pancakesId))?.tags.includes("sweet"));
  tablet.connect(); // back online: pushes the stale edit, then pulls from its checkpoint
  const mergeConflicts = [];
  tablet.replication.conflict$.subscribe((c) => mergeConflicts.push(c));
  await tablet.replication.awaitInSync();
  const merged = await waitFor(async () => {
    const s = await serverRecipe(pancakesId);
    const p = await localDoc(phone.db, pancakesId);
    const t = await localDoc(tablet.db, pancakesId);
    const both = (d) => d?.steps.includes("rest 10 min") && d.tags.includes("sweet");
    return both(s) && both(p) && both(t) && p.version === s.version && t.version === s.version
      ? { s, p, t }
      : null;
  });
  check(
    "4 both offline edits survive on the server, the phone and the tablet (no conflict)",
    !!merged && mergeConflicts.length === 0,
    merged
      ? `v${merged.s.version} steps=${JSON.stringify(merged.s.steps)} ` +
          `tags=${JSON.stringify(merged.s.tags)}, ${mergeConflicts.length} conflict(s)`
      : JSON.stringify(await serverRecipe(pancakesId)),
  );

  // --- 5. offline edits of the same field: the master state wins ------------------------
  await tablet.disconnect();
  await edit(tablet.db, pancakesId, { title: "Pancakes (tablet title)" });
  await edit(phone.db, pancakesId, { title: "Pancakes (phone title)" });
  await waitFor(async () => (await serverRecipe(pancakesId))?.title === "Pancakes (phone title)");
  tablet.connect();
  const conflicts = [];
  tablet.replication.conflict$.subscribe((c) => conflicts.push(c));
  await tablet.replication.awaitInSync();
  const resolved = await waitFor(async () => {
    const t = await localDoc(tablet.db, pancakesId);
    const s = await serverRecipe(pancakesId);
    return t?.title === "Pancakes (phone title)" && t.version === s.version ? { t, s } : null;
  });
  check(
    "5 a same-field conflict: the server keeps the first write, the tablet takes the master",
    !!resolved && resolved.s.title === "Pancakes (phone title)" && conflicts.length === 1,
    resolved
      ? `tablet "${resolved.t.title}" v${resolved.t.version}, ${conflicts.length} conflict(s)`
      : JSON.stringify(await localDoc(tablet.db, pancakesId)),
  );

  // --- 6. deletions ---------------------------------------------------------------------
  await (await phone.db.recipes.findOne(pancakesId).exec()).remove();
  const goneOnServer = await waitFor(async () => (await serverRecipe(pancakesId)) === null);
  const goneOnTablet = await waitFor(async () => (await localDoc(tablet.db, pancakesId)) === null);
  check("6 a local delete is pushed (recipe() is null on the server)", !!goneOnServer);
  check("6 ... and reaches the other device as _deleted", !!goneOnTablet);

  const seed = seeded[0];
  const { deleteRecipe } = await gql(DELETE, { id: seed.id, v: seed.version });
  const goneOnBoth = await waitFor(
    async () =>
      (await localDoc(phone.db, seed.id)) === null && (await localDoc(tablet.db, seed.id)) === null,
  );
  check(
    "6 a server-side deleteRecipe reaches both devices as _deleted",
    deleteRecipe.__typename === "RecipeDeleted" && !!goneOnBoth,
  );

  // --- 7. token expiry ------------------------------------------------------------------
  const ttl = tokenCache.ttl;
  if (!(ttl <= 120)) {
    console.log(`SKIP 7 token expiry -- tokens live ${ttl} s; use e.g. --ttl 20 to run it`);
  } else {
    log(`waiting for the phone's socket to be closed at token expiry (ttl ${ttl} s)`);
    const expired = await waitFor(() => phone.socket.includes(4440), (ttl + 15) * 1000);
    const reconnected = await waitFor(
      () => phone.socket.lastIndexOf("connected") > phone.socket.indexOf(4440),
      15_000,
    );
    check(
      "7 the socket is closed with 4440 at expiry and reconnects",
      !!expired && !!reconnected,
      `socket events ${JSON.stringify(phone.socket)}`,
    );
    const { upsertRecipe: after } = await gql(UPSERT, {
      input: { id: `${runId}-after-expiry`, title: "Made after the token expired" },
    });
    const arrived = await waitFor(() => localDoc(phone.db, after.id));
    if (arrived) await edit(phone.db, after.id, { tags: ["pushed-with-fresh-token"] });
    const pushed =
      arrived &&
      (await waitFor(async () =>
        (await serverRecipe(after.id))?.tags.includes("pushed-with-fresh-token"),
      ));
    check(
      "7 after the reconnect the stream delivers and pushes go through",
      !!arrived && !!pushed,
      arrived ? "" : "the change made on the server did not arrive within 10 s",
    );
    const authErrors = [...phone.errors, ...tablet.errors].filter((e) =>
      JSON.stringify(e.parameters?.errors ?? "").includes("UNAUTHENTICATED"),
    );
    check(
      "7 no request was refused for an expired token",
      authErrors.length === 0,
      `${authErrors.length} refused`,
    );
  }

  // --- 8. CHECKPOINT_EXPIRED: resync from scratch -----------------------------------------
  const retention = Number(process.env.LARDER_TOMBSTONE_RETENTION_SECONDS);
  if (!retention) {
    console.log(
      "SKIP 8 checkpoint expiry -- set LARDER_TOMBSTONE_RETENTION_SECONDS " +
        "(the server's TOMBSTONE_RETENTION, e.g. 10)",
    );
  } else {
    await tablet.disconnect();
    const seed2 = seeded[1];
    await gql(DELETE, { id: seed2.id, v: seed2.version }); // its tombstone will be purged
    const { upsertRecipe: late } = await gql(UPSERT, {
      input: { id: `${runId}-late`, title: "Created while the tablet was away" },
    });
    log(`tablet offline for ${retention + 3} s (longer than the tombstone retention)`);
    await sleep((retention + 3) * 1000);
    tablet.connect();
    const sawExpired = await waitFor(() => tablet.errors.some(isCheckpointExpired));
    const stale = await localDoc(tablet.db, seed2.id); // its deletion can no longer be pulled
    check(
      "8 the stale tablet's pull is answered with CHECKPOINT_EXPIRED",
      !!sawExpired,
      stale ? "the tablet still holds a recipe deleted (and purged) meanwhile" : "",
    );
    const resyncedAt = tablet.errors.length;
    await tablet.resyncFromScratch();
    const fresh = await waitFor(
      async () =>
        (await localDoc(tablet.db, late.id)) && (await localDoc(tablet.db, seed2.id)) === null,
    );
    check(
      "8 after resyncFromScratch the tablet matches the server",
      !!fresh,
      `${(await tablet.db.recipes.find().exec()).length} recipes`,
    );
    // The replication pulls again from its new checkpoint on every (re)connect.
    await tablet.sync.stop();
    tablet.connect();
    await sleep(3000);
    const again = tablet.errors.slice(resyncedAt).filter(isCheckpointExpired).length;
    check(
      "8 the resynced tablet's next pulls are not refused",
      again === 0,
      again
        ? `${again} CHECKPOINT_EXPIRED after the resync: the server judges a checkpoint by ` +
            "the age of the last change it names, which stays old when nothing changes"
        : "",
    );
  }

  for (const device of [phone, tablet]) {
    await device.disconnect();
    await device.db.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main()
    .catch((error) => {
      failed += 1;
      console.log(`FAIL unexpected error -- ${error.stack ?? error}`);
    })
    .finally(() => {
      console.log(`${passed} passed, ${failed} failed`);
      process.exit(failed ? 1 : 0);
    });
}
