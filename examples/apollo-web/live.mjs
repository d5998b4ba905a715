// Apollo Client 4 against Larder (Node 20; the same setup works in a React web app).
//
// Queries and mutations go over HTTP with `Authorization: Bearer <jwt>`; subscriptions go over
// one graphql-transport-ws WebSocket that authenticates in `connection_init`. The script
// subscribes to recipeChanged, fetches the current list, creates a recipe and prints the event
// the server pushes for it. With --watch it keeps running and prints every change, including
// across reconnects (for example when the server closes the socket with 4440 at the token's
// `exp`).
//
//   LARDER_URL            GraphQL endpoint (default http://127.0.0.1:8000/graphql)
//   LARDER_TOKEN_COMMAND  a shell command that prints a fresh token; run for every token needed
//   LARDER_TOKEN          a fixed token, used when LARDER_TOKEN_COMMAND is not set
import { exec } from "node:child_process";
import { promisify } from "node:util";

import {
  ApolloClient,
  ApolloLink,
  CombinedGraphQLErrors,
  HttpLink,
  InMemoryCache,
  gql,
} from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const HTTP_URL = process.env.LARDER_URL ?? "http://127.0.0.1:8000/graphql";
const WS_URL = HTTP_URL.replace(/^http/, "ws"); // http -> ws, https -> wss
const WATCH = process.argv.includes("--watch");

// Close codes after which the client should reconnect at once instead of backing off.
const TOKEN_EXPIRED = 4440;

/** Your app's token source. In a real app: the auth library's current (refreshed) token. */
async function getToken() {
  if (process.env.LARDER_TOKEN_COMMAND) {
    const { stdout } = await promisify(exec)(process.env.LARDER_TOKEN_COMMAND);
    return stdout.trim();
  }
  if (process.env.LARDER_TOKEN) return process.env.LARDER_TOKEN.trim();
  throw new Error("set LARDER_TOKEN or LARDER_TOKEN_COMMAND (see README.md)");
}

function log(...args) {
  console.log(new Date().toISOString().slice(11, 23), ...args);
}

/** The client setup: copy this into your app. */
export function createLarderClient({ httpUrl, wsUrl, getToken, onConnected }) {
  // HTTP: a fresh Authorization header on every request.
  const withToken = new SetContextLink(async (prevContext) => ({
    headers: { ...prevContext.headers, authorization: `Bearer ${await getToken()}` },
  }));
  const httpLink = withToken.concat(new HttpLink({ uri: httpUrl }));

  let lastCloseCode;
  const wsClient = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket, // Node only: browsers have a global WebSocket
    // A function, so that every (re)connection sends a token fetched at that moment:
    // after close code 4440 (token expired) the reconnect carries the fresh token.
    connectionParams: async () => ({ authorization: `Bearer ${await getToken()}` }),
    // Keep reconnecting for as long as the app runs: the default gives up after 5 attempts,
    // and by default only retries on close events. `() => true` also retries when the
    // connection attempt itself throws (for example getToken() failing while offline).
    retryAttempts: Infinity,
    shouldRetry: () => true,
    // Reconnect at once after a token expiry; otherwise exponential backoff up to ~30 s.
    retryWait: async (retries) => {
      if (lastCloseCode === TOKEN_EXPIRED && retries === 0) return;
      const seconds = Math.min(30, 2 ** retries) + Math.random();
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    },
    on: {
      closed: (event) => {
        lastCloseCode = event?.code;
        log(`socket closed: ${event?.code} ${event?.reason ?? ""}`);
      },
      connected: (_socket, _payload, wasRetry) => {
        lastCloseCode = undefined;
        onConnected?.(wasRetry);
      },
    },
  });

  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(wsClient),
    httpLink,
  );
  return { client: new ApolloClient({ link, cache: new InMemoryCache() }), wsClient };
}

const RECIPE_FIELDS = gql`
  fragment RecipeFields on Recipe {
    id
    title
    tags
    version
    deleted
    ownerId
    updatedAt
  }
`;

const RECIPE_CHANGED = gql`
  subscription RecipeChanged {
    recipeChanged {
      kind
      version
      recipe {
        ...RecipeFields
      }
    }
  }
  ${RECIPE_FIELDS}
`;

const RECIPES = gql`
  query Recipes {
    recipes(first: 100) {
      edges {
        node {
          ...RecipeFields
        }
      }
    }
  }
  ${RECIPE_FIELDS}
`;

const CREATE = gql`
  mutation Create($input: RecipeInput!) {
    upsertRecipe(input: $input) {
      __typename
      ... on Recipe {
        ...RecipeFields
      }
    }
  }
  ${RECIPE_FIELDS}
`;

// Errors with these codes end a subscription: refetch, then subscribe again.
const REFETCH_CODES = new Set(["SUBSCRIPTION_OVERFLOW", "RESYNC_REQUIRED"]);

async function main() {
  const local = new Map(); // id -> recipe: the app's local copy
  let connectedOnce;
  const firstConnection = new Promise((resolve) => (connectedOnce = resolve));

  const { client, wsClient } = createLarderClient({
    httpUrl: HTTP_URL,
    wsUrl: WS_URL,
    getToken,
    onConnected: (wasRetry) => {
      log(wasRetry ? "reconnected; subscription re-sent" : "connected");
      // Changes made while the socket was down were not delivered: catch up.
      if (wasRetry) refetch().catch((error) => log("refetch failed:", error.message));
      connectedOnce();
    },
  });

  /** Apply a recipe we learned about, unless we already hold that version or a newer one. */
  function apply(recipe, kind) {
    const known = local.get(recipe.id);
    if (known && known.version >= recipe.version) return false;
    if (kind === "DELETED" || recipe.deleted) local.delete(recipe.id);
    else local.set(recipe.id, recipe);
    return true;
  }

  async function refetch() {
    const { data } = await client.query({ query: RECIPES, fetchPolicy: "network-only" });
    for (const { node } of data.recipes.edges) apply(node);
    log(`fetched ${data.recipes.edges.length} recipes`);
  }

  let created; // the id of the recipe this script creates
  let done;
  const finished = new Promise((resolve) => (done = resolve));

  function subscribe() {
    const subscription = client.subscribe({ query: RECIPE_CHANGED }).subscribe({
      next: ({ data, error }) => {
        if (error) {
          const codes = CombinedGraphQLErrors.is(error)
            ? error.errors.map((e) => e.extensions?.code)
            : [];
          log(`subscription error ${codes.join(",") || error.message}`);
          if (codes.some((code) => REFETCH_CODES.has(code))) {
            subscription.unsubscribe();
            refetch().then(subscribe, (e) => log("refetch failed:", e.message));
          }
          return;
        }
        const { kind, version, recipe } = data.recipeChanged;
        const applied = apply(recipe, kind);
        log(`${kind} ${recipe.id} v${version} "${recipe.title}"${applied ? "" : " (already had it)"}`);
        if (recipe.id === created && kind === "CREATED" && !WATCH) done();
      },
      error: (error) => log("subscription failed:", error.message),
    });
    return subscription;
  }

  // Subscribe first, then fetch: nothing committed after the subscription is live is missed,
  // and versions decide between an event and a fetched copy of the same recipe.
  subscribe();
  await firstConnection;
  // graphql-transport-ws acknowledges the connection, not each subscription: give the server
  // a moment to register it before writing (see docs/protocol.md, "Subscribe, then fetch").
  await new Promise((resolve) => setTimeout(resolve, 300));
  await refetch();

  const { data } = await client.mutate({
    mutation: CREATE,
    variables: { input: { title: "Apollo pancakes", tags: ["breakfast"] } },
  });
  created = data.upsertRecipe.id;
  log(`created ${created} over HTTP; waiting for its event`);

  if (WATCH) {
    log("watching for changes (Ctrl-C to stop)");
    await new Promise(() => {});
  }
  const timeout = setTimeout(() => {
    log("no event within 10 s");
    process.exit(1);
  }, 10_000);
  await finished;
  clearTimeout(timeout);
  await wsClient.dispose();
  client.stop();
  log("ok: the change arrived over the WebSocket");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
