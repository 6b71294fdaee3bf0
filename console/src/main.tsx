import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { LocationProvider, Router, Route, useLocation } from "preact-iso";
import "./styles.css";
import { ApiError, json, setCsrf, setProject, whenSignedOut } from "./api/client";
import { SessionContext, type Session } from "./session";
import { Layout } from "./components/layout";
import { SignIn, LinkSignIn } from "./pages/signin";
import { Overview } from "./pages/overview";
import { Generations } from "./pages/generations";
import { GenerationPage } from "./pages/generation";
import { ReviewQueue } from "./pages/review";
import { Analytics } from "./pages/analytics";
import { Knowledge } from "./pages/knowledge";
import { Training } from "./pages/training";
import { Events } from "./pages/events";
import { Settings } from "./pages/settings";
import { Dictionary } from "./pages/dictionary";
import { Predictions } from "./pages/predictions";
import { Patterns } from "./pages/patterns";
import { NotFound } from "./pages/notfound";

// The project: named in the URL (shared links), else the last one used, else "default"
// when the tenant has it, else its first project.
async function chooseProject(): Promise<void> {
  const asked = new URLSearchParams(location.search).get("project") || localStorage.getItem("learnloop.project");
  const names = (await json<{ name: string }[]>("/v1/projects")).map((p) => p.name);
  const pick = asked && (names.includes(asked) || new URLSearchParams(location.search).get("project")) ? asked
    : names.includes("default") ? "default" : names[0] || "default";
  setProject(pick);
}

function App() {
  const loc = useLocation();
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const signedIn = (s: Session) => {
    setCsrf(s.csrf || null);
    chooseProject().then(() => setSession(s), (e) => setError(e instanceof Error ? e.message : String(e)));
  };

  useEffect(() => {
    whenSignedOut(() => {
      setCsrf(null);
      setSession(null);
    });
    if (location.pathname === "/login") { setSession(null); return; }
    json<Session & { signed_in: boolean }>("/v1/console/session").then(
      (s) => (s.signed_in ? signedIn(s) : setSession(null)),
      (e) => {
        if (e instanceof ApiError && e.status === 401) setSession(null);
        else setError(e instanceof Error ? e.message : String(e));
      },
    );
  }, []);

  // Signed out (or the session ended): sign in, then come back to the page asked for.
  useEffect(() => {
    if (session === null && loc.path !== "/signin" && loc.path !== "/login") {
      const next = loc.url;
      loc.route(`/signin?next=${encodeURIComponent(next)}`, true);
    }
  }, [session, loc.path]);

  if (error) return <main class="center"><p class="error" role="alert">{error}</p></main>;
  if (session === undefined) return <main class="center"><p class="muted">Loading…</p></main>;
  if (session === null) {
    return (
      <Router>
        <Route path="/login" component={() => <LinkSignIn onSignedIn={signedIn} />} />
        <Route default component={() => <SignIn onSignedIn={signedIn} />} />
      </Router>
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Layout onSignedOut={() => { setCsrf(null); setSession(null); }}>
        <Router>
          <Route path="/" component={Overview} />
          <Route path="/generations" component={Generations} />
          <Route path="/generations/:id" component={GenerationPage} />
          <Route path="/review" component={ReviewQueue} />
          <Route path="/analytics" component={Analytics} />
          <Route path="/knowledge" component={Knowledge} />
          <Route path="/training" component={Training} />
          <Route path="/dictionary" component={Dictionary} />
          <Route path="/predictions" component={Predictions} />
          <Route path="/events" component={Events} />
          <Route path="/settings" component={Settings} />
          <Route path="/patterns" component={Patterns} />
          <Route path="/signin" component={Redirect} />
          <Route path="/login" component={Redirect} />
          <Route default component={NotFound} />
        </Router>
      </Layout>
    </SessionContext.Provider>
  );
}

function Redirect() {
  const loc = useLocation();
  useEffect(() => {
    const next = new URLSearchParams(loc.url.split("?")[1] || "").get("next");
    // Only a path on this site: never an absolute URL someone put in the link.
    loc.route(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
  }, []);
  return null;
}

render(<LocationProvider><App /></LocationProvider>, document.getElementById("app")!);
