// Apollo Client 4: queries and mutations over HTTP, recipeChanged over graphql-ws.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";

import { authFetch, getToken, socketClosed } from "./auth";

export function createApollo(apiUrl: string) {
  const http = new SetContextLink(async (context) => ({
    headers: { ...context.headers, authorization: `Bearer ${await getToken()}` },
  })).concat(new HttpLink({ uri: apiUrl, fetch: authFetch }));
  const ws = new GraphQLWsLink(
    createClient({
      // A distinct URL from RxDB's socket (the server ignores the query string).
      url: `${apiUrl.replace(/^http/, "ws")}?client=apollo`,
      connectionParams: async () => ({ authorization: `Bearer ${await getToken()}` }),
      retryAttempts: Infinity,
      shouldRetry: () => true,
      retryWait: (retries) =>
        new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * 2 ** retries))),
      on: { closed: socketClosed },
    }),
  );
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    ws,
    http,
  );
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

const FIELDS = `id title description ingredients { name quantity unit note } steps tags servings
  visibility collaborators ownerId version`;

export const ME = gql`
  query Me {
    me {
      id
    }
  }
`;

export const CREATE = gql`
  mutation CreateRecipe($input: RecipeInput!) {
    upsertRecipe(input: $input) {
      __typename
      ... on Recipe { ${FIELDS} }
      ... on VersionConflict { currentVersion current { ${FIELDS} } }
    }
  }
`;

export const PATCH = gql`
  mutation PatchRecipe($id: ID!, $baseVersion: Int!, $patch: RecipePatch!) {
    patchRecipe(id: $id, baseVersion: $baseVersion, patch: $patch) {
      __typename
      ... on Recipe { ${FIELDS} }
      ... on MergeConflict { fields current { ${FIELDS} } }
    }
  }
`;

export const RECIPE_CHANGED = gql`
  subscription RecipeChanged {
    recipeChanged {
      kind
      recipe {
        id
        title
        ownerId
      }
    }
  }
`;
