import { useState, type FormEvent } from "react";

import { claims, getSession, signIn, useAuth } from "../auth";

/** Why a request to the API failed, in words a person can act on. */
async function explainFailure(apiUrl: string, response: Response | null): Promise<string> {
  if (response?.status === 401) {
    const body = await response.json().catch(() => null);
    const reason = body?.errors?.[0]?.extensions?.reason ?? "invalid";
    return `The server refused this token (${reason}).`;
  }
  if (response) return `The server answered HTTP ${response.status}.`;
  // The request failed without an answer: offline, or blocked by CORS. A no-cors request
  // (opaque, no CORS check) tells the two apart.
  const reachable = await fetch(new URL("/healthz", apiUrl), { mode: "no-cors" }).then(
    () => true,
    () => false,
  );
  return reachable
    ? `The server at ${apiUrl} is up but does not allow this page's origin ` +
        `(${location.origin}). Add it to the server's CORS_ORIGINS.`
    : `Cannot reach ${apiUrl}: is the server running and the URL right?`;
}

/** Checks the token with `query { me { id } }`, then keeps URL and token in localStorage. */
export function SignIn({ expiredPrompt = false }: { expiredPrompt?: boolean }) {
  const [apiUrl, setApiUrl] = useState(getSession()?.apiUrl ?? "http://127.0.0.1:8000/graphql");
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const { refused } = useAuth();

  async function submit(event: FormEvent) {
    event.preventDefault();
    const pasted = token.trim().replace(/^Bearer\s+/i, "");
    if (claims(pasted).exp <= Date.now()) {
      setError("This token has expired or is not a JWT.");
      return;
    }
    // A new token for a running session: the next requests check it (a refused one asks again).
    if (expiredPrompt) return signIn({ apiUrl, token: pasted });
    setBusy(true);
    setError("");
    let response: Response | null = null;
    try {
      response = await fetch(apiUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${pasted}` },
        body: JSON.stringify({ query: "{ me { id } }" }),
      });
      if (response.ok) return signIn({ apiUrl, token: pasted });
    } catch {
      // explained below
    } finally {
      setBusy(false);
    }
    setError(await explainFailure(apiUrl, response));
  }

  return (
    <form
      onSubmit={submit}
      className={expiredPrompt ? "prompt" : "card"}
      data-testid={expiredPrompt ? "session-expired" : "sign-in"}
    >
      {expiredPrompt ? (
        <p>
          <strong>Session expired.</strong> Your changes are kept on this device. Paste a new
          token to sync them.
          {refused && <span data-testid="token-refused"> The server refused the last token.</span>}
        </p>
      ) : (
        <>
          <h2>Sign in</h2>
          <label htmlFor="api-url">API URL</label>
          <input
            id="api-url"
            data-testid="api-url"
            value={apiUrl}
            onChange={(e) => setApiUrl(e.target.value)}
          />
        </>
      )}
      <label htmlFor="token">Token</label>
      <textarea
        id="token"
        data-testid="token"
        value={token}
        placeholder="eyJhbGciOi..."
        onChange={(e) => setToken(e.target.value)}
      />
      {error && <p className="error" data-testid="sign-in-error">{error}</p>}
      <div className="actions">
        <button type="submit" data-testid="sign-in-submit" disabled={busy}>
          {expiredPrompt ? "Use this token" : "Sign in"}
        </button>
      </div>
    </form>
  );
}
