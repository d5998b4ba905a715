// The session: API URL and token, kept in localStorage so that a reload (offline too) keeps
// working. Every request asks getToken(); a new token comes only from refreshToken().
import { useSyncExternalStore } from "react";

export interface Session {
  apiUrl: string; // e.g. http://127.0.0.1:8000/graphql
  token: string;
}

const KEY = "larder.session";
let session: Session | null = JSON.parse(localStorage.getItem(KEY) ?? "null");
let expired = false;
let refused = false; // the server rejected the token (rather than it reaching `exp`)
let refreshing: { promise: Promise<string>; resolve: (token: string) => void } | null = null;
const listeners = new Set<() => void>();
let snapshot = { session, expired, refused };

function changed() {
  snapshot = { session, expired, refused };
  listeners.forEach((listener) => listener());
}

export function getSession(): Session | null {
  return session;
}

export function signIn(next: Session) {
  session = next;
  localStorage.setItem(KEY, JSON.stringify(next));
  expired = false;
  refused = false;
  refreshing?.resolve(next.token);
  refreshing = null;
  changed();
}

export function signOut() {
  localStorage.removeItem(KEY);
  session = null;
  changed();
}

/** The `sub` and `exp` (ms) claims, read without verifying: the server verifies. */
export function claims(token: string): { sub: string; exp: number } {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { sub: String(payload.sub), exp: Number(payload.exp) * 1000 };
  } catch {
    return { sub: "?", exp: 0 };
  }
}

/** The current token; waits for refreshToken() when it has expired or was refused. */
export async function getToken(): Promise<string> {
  if (!session) throw new Error("not signed in");
  if (expired || claims(session.token).exp <= Date.now() + 1000) return refreshToken();
  return session.token;
}

/**
 * THE place a new token comes from. A real app calls its identity provider here (an OAuth
 * refresh-token grant, a silent iframe, its own /session endpoint). This example asks the person
 * to paste one: it shows the "session expired" prompt and resolves when signIn() gets a token.
 * Concurrent callers (HTTP link, both WebSockets, RxDB pushes) share one refresh.
 */
export function refreshToken(why: "expired" | "refused" = "expired"): Promise<string> {
  if (!refreshing) {
    refused = why === "refused";
    let resolve!: (token: string) => void;
    const promise = new Promise<string>((r) => (resolve = r));
    refreshing = { promise, resolve };
    expired = true;
    changed();
  }
  return refreshing.promise;
}

/** fetch that reports a refused token (HTTP 401 UNAUTHENTICATED) so the next request refreshes. */
export async function authFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const response = await fetch(input, init);
  if (response.status === 401) void refreshToken("refused");
  return response;
}

/** For both sockets' `on.closed`: 4440 = the token reached `exp`, 4403 = it was refused. */
export function socketClosed(event: unknown) {
  const code = (event as CloseEvent | undefined)?.code;
  if (code === 4440) void refreshToken("expired");
  if (code === 4403) void refreshToken("refused");
}

export function useAuth(): { session: Session | null; expired: boolean; refused: boolean } {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => snapshot,
  );
}
