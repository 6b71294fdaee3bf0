import { useState } from "preact/hooks";
import { client, ok, projectsChanged } from "../api/client";
import { ConfirmButton, DataTable, ErrorBox, Page } from "../components/ui";
import { useSession } from "../session";
import { fmtDate, useApi } from "../util";

type Row = Record<string, unknown>;

// The overview of another project: the project travels in the URL (the layout switches to it).
const inProject = (name: string) => `/?${new URLSearchParams({ project: name })}`;

export function Settings() {
  const s = useSession();
  const projects = useApi(() => ok(client.GET("/v1/projects")), []);
  return (
    <Page title="Settings">
      <section aria-labelledby="proj-h">
        <h2 id="proj-h">Projects of {s.tenant}</h2>
        <ErrorBox error={projects.error} />
        <DataTable caption="Projects" rows={(projects.data || []) as unknown as Row[]} columns={[
          { key: "name", render: (r) => <a href={inProject(String(r.name))}>{String(r.name)}</a> },
          { key: "created_at", label: "created", render: (r) => fmtDate(r.created_at) },
        ]} />
        <p class="muted">A project is also created by its first write (the <code>X-Learnloop-Project</code> header of an API call).</p>
        {s.is_admin && <NewProject onCreated={() => { projects.reload(); projectsChanged(); }} />}
      </section>
      {s.is_admin ? <Keys /> : <p class="muted">API keys are managed with an admin key.</p>}
    </Page>
  );
}

function NewProject({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [msg, setMsg] = useState<{ ok: boolean; text: string; name?: string } | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setMsg(null);
    try {
      const p = await ok(client.POST("/v1/projects", { body: { name } }));
      setMsg({ ok: true, text: `Project ${p.name} created.`, name: p.name });
      setName("");
      onCreated();
    } catch (err) {
      setMsg({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  };
  return (
    <form class="card" onSubmit={create} aria-label="Create a project">
      <h3>Create a project</h3>
      <div class="row">
        <label>Project name<input required maxLength={200} pattern=".*\S.*" title="a name with at least one visible character"
          value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="support-bot" /></label>
        <button type="submit">Create project</button>
      </div>
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}
        {msg.name && <> <a href={inProject(msg.name)}>Open it</a></>}</p>}
    </form>
  );
}

function Keys() {
  const keys = useApi(() => ok(client.GET("/v1/keys")), []);
  const [f, setF] = useState({ name: "", scopes: ["read"] as string[] });
  const [created, setCreated] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const k = await ok(client.POST("/v1/keys", { body: { name: f.name, scopes: f.scopes as ("read")[] } }));
      setCreated(k.key);
      setF({ name: "", scopes: ["read"] });
      keys.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const revoke = async (id: string) => {
    setError(null);
    try { await ok(client.DELETE("/v1/keys/{key_id}", { params: { path: { key_id: id } } })); keys.reload(); } catch (err) { setError(err instanceof Error ? err.message : String(err)); }
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">API keys</h2>
      <ErrorBox error={keys.error || error} />
      {created && (
        <div class="card" role="status">
          <p><strong>The new key, shown this once:</strong> copy it now; only its hash is stored.</p>
          <pre class="text" aria-label="new API key">{created}</pre>
          <button type="button" class="small secondary" onClick={() => setCreated(null)}>I have stored it</button>
        </div>
      )}
      <DataTable caption="Keys (secrets are never shown again)" rows={(keys.data || []) as unknown as Row[]} columns={[
        { key: "name" }, { key: "scopes", render: (r) => (r.scopes as string[]).join(", ") },
        { key: "created_at", label: "created", render: (r) => fmtDate(r.created_at) },
        { key: "revoked_at", label: "revoked", render: (r) => r.revoked_at ? fmtDate(r.revoked_at) : (
          <ConfirmButton label={`Revoke`} confirm={`Revoke ${r.name}`} onConfirm={() => revoke(String(r.id))} />) },
      ]} />
      <form class="card" onSubmit={create} aria-label="Create an API key">
        <h3>Create a key</h3>
        <div class="row">
          <label>Name<input required value={f.name} onInput={(e) => setF({ ...f, name: (e.target as HTMLInputElement).value })} /></label>
          <fieldset class="row"><legend>Scopes</legend>
            {["read", "ingest", "admin"].map((sc) => (
              <label class="inline"><input type="checkbox" checked={f.scopes.includes(sc)}
                onChange={() => setF({ ...f, scopes: f.scopes.includes(sc) ? f.scopes.filter((x) => x !== sc) : [...f.scopes, sc] })} /> {sc}</label>
            ))}
          </fieldset>
        </div>
        <button type="submit">Create key</button>
      </form>
    </section>
  );
}
