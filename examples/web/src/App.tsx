import { ApolloProvider, useQuery, useSubscription } from "@apollo/client/react";
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";

import { createApollo, ME, RECIPE_CHANGED } from "./apollo";
import { claims, signOut, useAuth, type Session } from "./auth";
import { Editor } from "./components/Editor";
import { RecipeList } from "./components/RecipeList";
import { RecipeView } from "./components/RecipeView";
import { SignIn } from "./components/SignIn";
import { openDatabase, startReplication, useConnection, useRecipes, type RecipeCollection } from "./db";

const useHash = () =>
  useSyncExternalStore(
    (listener) => {
      window.addEventListener("hashchange", listener);
      return () => window.removeEventListener("hashchange", listener);
    },
    () => location.hash,
  );

export function App() {
  const { session, expired } = useAuth();
  if (!session) {
    return (
      <main>
        <h1>Larder recipes</h1>
        <SignIn />
      </main>
    );
  }
  return <SignedIn key={claims(session.token).sub} session={session} expired={expired} />;
}

function SignedIn({ session, expired }: { session: Session; expired: boolean }) {
  const user = claims(session.token).sub;
  const [recipes, setRecipes] = useState<RecipeCollection | null>(null);
  const client = useMemo(() => createApollo(session.apiUrl), [session.apiUrl]);

  useEffect(() => {
    let cancelled = false;
    let stop = () => {};
    void openDatabase(user).then((db) => {
      if (cancelled) return;
      const replication = startReplication(db.recipes, session);
      stop = () => void replication.cancel();
      setRecipes(db.recipes);
    });
    return () => {
      cancelled = true;
      stop();
    };
    // The replication reads the token through getToken(): a refreshed token needs no restart.
  }, [user, session.apiUrl]);

  return (
    <ApolloProvider client={client}>
      <header>
        <h1>
          <a href="#/" data-testid="home">Larder recipes</a>
        </h1>
        {recipes && <SyncStatus recipes={recipes} expired={expired} />}
        <Me fallback={user} />
        <button
          type="button"
          onClick={() => {
            signOut();
            location.hash = "";
            location.reload();
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        {expired && <SignIn expiredPrompt />}
        {recipes ? <Screen recipes={recipes} /> : <p>Opening the local database…</p>}
        <Activity />
      </main>
    </ApolloProvider>
  );
}

function Screen({ recipes }: { recipes: RecipeCollection }) {
  const [, screen, id] = useHash().split("/");
  if (screen === "recipe" && id) return <RecipeView recipes={recipes} id={id} />;
  if (screen === "edit" && id) return <Editor key={id} recipes={recipes} id={id} />;
  if (screen === "new") return <Editor key="new" recipes={recipes} id={null} />;
  return <RecipeList recipes={recipes} />;
}

/** "offline" / "n changes waiting" / "synced": the sync socket's state and unconfirmed edits. */
function SyncStatus({ recipes, expired }: { recipes: RecipeCollection; expired: boolean }) {
  const connection = useConnection();
  const waiting = useRecipes(recipes).filter((r) => r.pending).length;
  const state = expired ? "expired" : connection !== "online" ? "offline" : waiting ? "waiting" : "synced";
  const parts = [
    expired ? "session expired" : connection === "online" ? "" : connection,
    waiting ? `${waiting} change${waiting === 1 ? "" : "s"} waiting` : "",
  ].filter(Boolean);
  return (
    <span className="status" data-testid="sync-status" data-state={state}>
      {parts.join(" · ") || "synced"}
    </span>
  );
}

/** Who the server says we are (useQuery; cached, so it also shows offline). */
function Me({ fallback }: { fallback: string }) {
  const { data } = useQuery<{ me: { id: string } }>(ME);
  return <span data-testid="me">{data?.me.id ?? fallback}</span>;
}

interface Change {
  recipeChanged: { kind: string; recipe: { id: string; title: string; ownerId: string } };
}

/** The last few changes anyone made, from Apollo's recipeChanged subscription. */
function Activity() {
  const [events, setEvents] = useState<string[]>([]);
  useSubscription<Change>(RECIPE_CHANGED, {
    onData: ({ data }) => {
      const change = data.data?.recipeChanged;
      if (change) {
        const line = `${change.kind.toLowerCase()}: ${change.recipe.title || change.recipe.id}`;
        setEvents((previous) => [line, ...previous].slice(0, 3));
      }
    },
  });
  if (!events.length) return null;
  return (
    <p className="activity" data-testid="activity">
      Live: {events.join(" · ")}
    </p>
  );
}
