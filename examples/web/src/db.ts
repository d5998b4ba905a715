// RxDB on IndexedDB (Dexie), replicated with Larder through pullRecipe / pushRecipe over HTTP
// and streamRecipe over graphql-ws. Builders and conflict handler: docs/sync-clients.md.
import { useEffect, useState, useSyncExternalStore } from "react";
import {
  createRxDatabase,
  deepEqual,
  defaultConflictHandler,
  type RxCollection,
  type RxConflictHandler,
  type RxDatabase,
  type RxJsonSchema,
} from "rxdb";
import { replicateGraphQL, type RxGraphQLReplicationState } from "rxdb/plugins/replication-graphql";
import { getRxStorageDexie } from "rxdb/plugins/storage-dexie";

import { authFetch, getToken, socketClosed, type Session } from "./auth";
import type { Ingredient, Recipe } from "./recipe";

const schema: RxJsonSchema<Recipe> = {
  title: "recipe",
  version: 0,
  primaryKey: "id",
  type: "object",
  properties: {
    id: { type: "string", maxLength: 64 },
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
    collaborators: { type: "array", items: { type: "string" } },
    visibility: { type: "string", enum: ["PRIVATE", "PUBLIC"] },
    ownerId: { type: "string" },
    version: { type: "integer" },
    updatedAt: { type: "number" },
    pending: { type: "boolean" },
  },
  required: ["id", "title"],
};

const EDITABLE = ["title", "description", "ingredients", "steps", "tags", "servings",
  "prepMinutes", "cookMinutes", "imageUrl", "collaborators", "visibility"] as const;

/** RxDB's default (keep the server's state), except when the base was a local insert that the
 *  server has not echoed yet: then re-apply the local edit (docs/sync-clients.md#conflicts). */
const conflictHandler: RxConflictHandler<Recipe> = {
  isEqual: defaultConflictHandler.isEqual,
  async resolve({ assumedMasterState: base, realMasterState: master, newDocumentState: local }) {
    if (!base || base.version === master.version) return master;
    if (base._deleted || master._deleted || local._deleted) return master;
    const merged = { ...master };
    for (const field of EDITABLE) {
      if (deepEqual(local[field], base[field])) continue;
      const changedThere = base[field] !== undefined && !deepEqual(master[field], base[field]);
      if (changedThere && !deepEqual(master[field], local[field])) return master;
      (merged as Record<string, unknown>)[field] = local[field];
    }
    return merged;
  },
};

const DOC_FIELDS = `id title description ingredients { name quantity unit note } steps tags
  servings prepMinutes cookMinutes imageUrl ownerId collaborators visibility version updatedAt
  _deleted`;
const INPUT_FIELDS = ["id", ...EDITABLE, "ownerId", "version", "updatedAt", "_deleted"];

function toSyncInput(doc: Record<string, unknown>) {
  const input: Record<string, unknown> = {};
  for (const name of INPUT_FIELDS) if (doc[name] !== undefined) input[name] = doc[name];
  if (Array.isArray(input.ingredients)) {
    input.ingredients = (input.ingredients as Ingredient[]).map(({ name, quantity, unit, note }) => ({
      name, quantity, unit, note,
    }));
  }
  return input;
}

export type RecipeCollection = RxCollection<Recipe>;
export type Connection = "connecting" | "online" | "offline";

// The sync WebSocket's state, for the status bar and for choosing how the editor saves.
let connection: Connection = "connecting";
const connectionListeners = new Set<() => void>();
function setConnection(next: Connection) {
  connection = next;
  connectionListeners.forEach((listener) => listener());
}
export const useConnection = () =>
  useSyncExternalStore(
    (listener) => {
      connectionListeners.add(listener);
      return () => connectionListeners.delete(listener);
    },
    () => connection,
  );

let database: Promise<RxDatabase<{ recipes: RecipeCollection }>> | null = null;

/** One IndexedDB database per signed-in user (so two users never mix their local copies). */
export function openDatabase(user: string) {
  database ??= createRxDatabase<{ recipes: RecipeCollection }>({
    name: `larder-${user.toLowerCase().replace(/[^a-z0-9]/g, "_")}`,
    storage: getRxStorageDexie(),
  }).then(async (db) => {
    await db.addCollections({ recipes: { schema, conflictHandler } });
    return db;
  });
  return database;
}

export function startReplication(
  recipes: RecipeCollection,
  session: Session,
): RxGraphQLReplicationState<Recipe, unknown> {
  const state = replicateGraphQL<Recipe, unknown>({
    collection: recipes,
    replicationIdentifier: `larder-recipes-${session.apiUrl}`,
    url: { http: session.apiUrl, ws: session.apiUrl.replace(/^http/, "ws") },
    // Every pull and push carries the token of this moment (a new one after a refresh).
    fetch: async (request: Request) => {
      request.headers.set("Authorization", `Bearer ${await getToken()}`);
      return authFetch(request);
    },
    pull: {
      queryBuilder: (checkpoint, limit) => ({
        query: `query PullRecipe($checkpoint: RecipeInputCheckpoint, $limit: Int!) {
          pullRecipe(checkpoint: $checkpoint, limit: $limit) {
            documents { ${DOC_FIELDS} } checkpoint { id updatedAt } } }`,
        operationName: "PullRecipe",
        variables: { checkpoint: checkpoint ?? null, limit },
      }),
      streamQueryBuilder: () => ({
        query: `subscription StreamRecipe { streamRecipe {
          documents { ${DOC_FIELDS} } checkpoint { id updatedAt } } }`,
        operationName: "StreamRecipe",
        variables: {},
      }),
      batchSize: 100,
      wsOptions: {
        // Called for each (re)connection: after close 4440 it waits for refreshToken().
        connectionParams: async () => ({ authorization: `Bearer ${await getToken()}` }),
        retryAttempts: Infinity,
        retryWait: (retries) =>
          new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * 2 ** retries))),
        keepAlive: 10_000,
        on: {
          connected: () => setConnection("online"),
          closed: (event) => {
            setConnection("offline");
            socketClosed(event);
          },
        },
      },
    },
    push: {
      queryBuilder: (rows) => ({
        query: `mutation PushRecipe($recipePushRow: [RecipeInputPushRow!]) {
          pushRecipe(recipePushRow: $recipePushRow) { ${DOC_FIELDS} } }`,
        operationName: "PushRecipe",
        variables: {
          recipePushRow: rows.map((row) => ({
            assumedMasterState: row.assumedMasterState ? toSyncInput(row.assumedMasterState) : null,
            newDocumentState: toSyncInput(row.newDocumentState),
          })),
        },
      }),
      batchSize: 50,
    },
    live: true,
    deletedField: "_deleted",
    retryTime: 2000,
    waitForLeadership: false,
  });
  state.error$.subscribe((error) => console.warn("replication error", error));
  return state;
}

/** Live query: every local recipe, newest first. */
export function useRecipes(recipes: RecipeCollection): Recipe[] {
  const [docs, setDocs] = useState<Recipe[]>([]);
  useEffect(() => {
    const subscription = recipes.find().$.subscribe((found) =>
      setDocs(
        found
          .map((doc) => doc.toJSON() as Recipe)
          .sort((a, b) => Number(b.updatedAt ?? Infinity) - Number(a.updatedAt ?? Infinity)),
      ),
    );
    return () => subscription.unsubscribe();
  }, [recipes]);
  return docs;
}

/** Save locally (offline, or with an expired session): RxDB pushes it when it can. */
export async function saveLocally(recipes: RecipeCollection, recipe: Recipe) {
  const existing = await recipes.findOne(recipe.id).exec();
  if (existing) await existing.incrementalPatch({ ...recipe, pending: true });
  else await recipes.insert({ ...recipe, pending: true });
}
