import { useEffect, useState } from "preact/hooks";
import { json } from "../api/client";
import type { Session } from "../session";

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => { document.title = "Sign in · learnloop"; }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await json<Session>("/v1/console/session", { method: "POST", body: JSON.stringify({ key: key.trim() }) });
      setKey("");
      onSignedIn(s);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <h1>learnloop</h1>
      <form onSubmit={submit} class="card">
        <h2>Sign in</h2>
        <p>Use an API key of your tenant (<code>learnloop keys create</code>), or open the sign-in link that
          <code> learnloop serve</code> printed.</p>
        <label for="key">API key</label>
        <input id="key" type="password" autocomplete="off" spellcheck={false} required value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)} placeholder="llk_…" />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Sign in</button>
      </form>
    </main>
  );
}

// /login#token=lll_...: the token is read from the fragment (never sent to a server by the
// browser), removed from the address bar at once, and exchanged for a session cookie.
export function LinkSignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    document.title = "Signing in · learnloop";
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    history.replaceState(null, "", "/login");
    if (!token) { setError("This sign-in link has no token. Sign in with an API key instead."); return; }
    json<Session>("/v1/console/login", { method: "POST", body: JSON.stringify({ token }) }).then(
      (s) => { history.replaceState(null, "", "/"); onSignedIn(s); },
      (e) => setError(e instanceof Error ? e.message : String(e)),
    );
  }, []);
  return (
    <main class="signin" id="main">
      <h1>learnloop</h1>
      <div class="card">
        {error ? <><p class="error" role="alert">{error}</p><a href="/signin">Sign in with an API key</a></> : <p>Signing in…</p>}
      </div>
    </main>
  );
}
