import { useState } from "preact/hooks";
import { authHeaders, client, ok } from "../api/client";
import { ConfirmButton, DataTable, Empty, ErrorBox, JsonView, Loading, Page } from "../components/ui";
import { useSession } from "../session";
import { fmtDate, href, short, useApi, useQueryParams } from "../util";

type Row = Record<string, unknown>;
type Upload = { name: string; progress: number; status: string; detail?: string };

// One XHR per file: fetch() cannot report upload progress.
function uploadFile(file: File, onProgress: (p: number) => void): Promise<Row> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/documents");
    for (const [k, v] of Object.entries(authHeaders(true))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body: Row = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status < 300) resolve(body);
      else reject(new Error(typeof body.detail === "string" ? body.detail : `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("the upload was interrupted (network)"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export function Knowledge() {
  const s = useSession();
  const { params, set } = useQueryParams();
  const status = params.get("status") || "";
  const docs = useApi(() => ok(client.GET("/v1/documents", { params: { query: { status: (status || undefined) as "failed" | undefined, limit: 200 } } })), [status]);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [over, setOver] = useState(false);
  const [msg, setMsg] = useState<string | null>(null);

  const send = async (files: File[]) => {
    const start = uploads.length;
    setUploads((u) => [...u, ...files.map((f) => ({ name: f.name, progress: 0, status: "uploading" }))]);
    await Promise.all(files.map(async (f, i) => {
      const upd = (x: Partial<Upload>) => setUploads((u) => u.map((it, j) => (j === start + i ? { ...it, ...x } : it)));
      try {
        const r = await uploadFile(f, (p) => upd({ progress: p }));
        upd({ progress: 1, status: String(r.status), detail: r.status === "failed" ? String(r.error) : `${r.chunks} chunks` });
      } catch (e) {
        upd({ status: "refused", detail: e instanceof Error ? e.message : String(e) });
      }
    }));
    docs.reload();
  };
  const act = async (fn: () => Promise<unknown>) => {
    setMsg(null);
    try { await fn(); docs.reload(); } catch (e) { setMsg(e instanceof Error ? e.message : String(e)); }
  };
  const rows = (docs.data?.items || []) as Row[];
  const selected = params.get("document") || "";
  return (
    <Page title="Knowledge">
      {selected && <DocumentCard id={selected} />}
      <section aria-labelledby="docs-h">
        <h2 id="docs-h">Documents</h2>
        {s.can_write && (
          <div class={`dropzone${over ? " over" : ""}`} onDragOver={(e) => { e.preventDefault(); setOver(true); }}
            onDragLeave={() => setOver(false)}
            onDrop={(e) => { e.preventDefault(); setOver(false); send([...(e.dataTransfer?.files || [])]); }}>
            <p>Drop PDF, DOCX, TXT, MD or HTML files here, or</p>
            <label class="inline">Choose files
              <input type="file" multiple accept=".pdf,.docx,.txt,.md,.html,.htm"
                onChange={(e) => { const t = e.target as HTMLInputElement; send([...(t.files || [])]); t.value = ""; }} />
            </label>
          </div>
        )}
        {uploads.length > 0 && (
          <ul class="uploads" aria-label="Uploads">
            {uploads.map((u) => (
              <li>
                <span class="text">{u.name}</span> <progress max={1} value={u.progress} aria-label={`upload of ${u.name}`} />{" "}
                <strong class={u.status === "processed" || u.status === "unchanged" ? "ok" : u.status === "uploading" ? "" : "error"}>{u.status}</strong>
                {u.detail && <span class="text"> — {u.detail}</span>}
              </li>
            ))}
          </ul>
        )}
        <div class="filters">
          <label>Status
            <select value={status} onChange={(e) => set({ status: (e.target as HTMLSelectElement).value })}>
              <option value="">any</option><option>processed</option><option>failed</option><option>pending</option>
            </select>
          </label>
        </div>
        <ErrorBox error={docs.error || msg} />
        {docs.loading && !docs.data ? <Loading /> : (
          <DataTable caption={`${rows.length} documents`} csv="documents" rows={rows} columns={[
            { key: "title", render: (r) => <a href={href("/knowledge", { document: String(r.id) })} aria-current={r.id === selected ? "true" : undefined}>{String(r.title || r.source || "–")}</a> },
            { key: "file_name", label: "file" },
            { key: "file_type", label: "type" }, { key: "status" }, { key: "chunk_count", label: "chunks" },
            { key: "error", label: "failure reason", render: (r) => r.error ? <span class="error">{String(r.error)}</span> : "–" },
            { key: "created_at", label: "added", render: (r) => fmtDate(r.created_at) },
            { key: "active", render: (r) => (s.can_write ? (
              <span class="row">
                <button type="button" class="small secondary" onClick={() => act(() => ok(client.POST("/v1/documents/{document_id}/activate", { params: { path: { document_id: String(r.id) } }, body: { active: !r.active } })))}>
                  {r.active ? "Deactivate" : "Activate"}</button>
                <ConfirmButton label="Delete" confirm="Delete it and its chunks"
                  onConfirm={() => act(() => ok(client.DELETE("/v1/documents/{document_id}", { params: { path: { document_id: String(r.id) } } })))} />
              </span>) : (r.active ? "active" : "inactive")) },
          ]} />
        )}
      </section>
      <SearchPlayground />
      <Entities />
    </Page>
  );
}

// One document, opened from a link (a generation's retrieved chunk, the table above).
function DocumentCard({ id }: { id: string }) {
  const d = useApi(() => ok(client.GET("/v1/documents/{document_id}", { params: { path: { document_id: id } } })), [id]);
  if (d.error) return <ErrorBox error={d.error} />;
  if (!d.data) return <Loading what="Loading the document" />;
  const doc = d.data as Row;
  return (
    <section class="card" aria-labelledby="doc-h">
      <h2 id="doc-h">Document: {String(doc.title || doc.file_name)}</h2>
      <dl class="facts">
        <div><dt>File</dt><dd>{String(doc.file_name)} ({String(doc.file_type)}, {String(doc.size_bytes)} bytes)</dd></div>
        <div><dt>Status</dt><dd>{String(doc.status)}{doc.active ? "" : " · inactive"}</dd></div>
        <div><dt>Chunks</dt><dd>{String(doc.chunk_count)}</dd></div>
        <div><dt>Added</dt><dd>{fmtDate(doc.created_at)}</dd></div>
      </dl>
      {doc.error != null && <p class="error">Failure reason: {String(doc.error)}</p>}
      {typeof doc.extracted_text === "string" && <details><summary>Extracted text</summary><pre class="text clip" tabIndex={0}>{short(doc.extracted_text, 4000)}</pre></details>}
      <p><a href={href("/knowledge")}>All documents</a></p>
    </section>
  );
}

const OWNERS = ["chunk", "entity", "generation", "term"] as const;

function SearchPlayground() {
  const [q, setQ] = useState({ query: "", k: "5", hybrid: false, owners: ["chunk"] as string[], where: "" });
  const [res, setRes] = useState<{ items: Row[]; ms: number; path: string; matching?: number | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let where: Record<string, unknown> | undefined;
    if (q.where.trim()) {
      try { where = JSON.parse(q.where); } catch { setError("The metadata filter must be JSON, e.g. {\"status\": \"completed\"}"); return; }
    }
    setBusy(true);
    try {
      const r = await ok(client.POST("/v1/search", {
        body: { query: q.query, k: Number(q.k) || 5, hybrid: q.hybrid, owner_types: q.owners.length ? q.owners as ("chunk")[] : null, where: where ?? null },
      }));
      setRes(r as never);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="search-h">
      <h2 id="search-h">Search playground</h2>
      <form class="card" onSubmit={run} aria-label="Search">
        <label>Query<input name="query" required value={q.query} onInput={(e) => setQ({ ...q, query: (e.target as HTMLInputElement).value })} /></label>
        <div class="row">
          <label>k<input type="number" min="1" max="100" value={q.k} onInput={(e) => setQ({ ...q, k: (e.target as HTMLInputElement).value })} /></label>
          <label class="inline"><input type="checkbox" checked={q.hybrid} onChange={() => setQ({ ...q, hybrid: !q.hybrid })} /> hybrid (vector + full text)</label>
          <fieldset class="row"><legend>Search in</legend>
            {OWNERS.map((o) => (
              <label class="inline"><input type="checkbox" checked={q.owners.includes(o)}
                onChange={() => setQ({ ...q, owners: q.owners.includes(o) ? q.owners.filter((x) => x !== o) : [...q.owners, o] })} /> {o}</label>
            ))}
          </fieldset>
        </div>
        <label>Metadata filter (JSON)<input value={q.where} onInput={(e) => setQ({ ...q, where: (e.target as HTMLInputElement).value })} placeholder='{"status": "completed"}' /></label>
        <button type="submit" disabled={busy}>Search</button>
      </form>
      <ErrorBox error={error} />
      {res && (
        <>
          <p class="muted" role="status">{res.items.length} hits in {res.ms.toFixed(1)} ms (path {res.path}{res.matching != null ? `, ${res.matching} rows matched the filter` : ""})</p>
          <ol class="hits">
            {res.items.map((h) => (
              <li class="card">
                <strong>{typeof h.similarity === "number" ? `similarity ${h.similarity.toFixed(3)}` : typeof h.score === "number" ? `score ${h.score.toFixed(4)}` : ""}</strong>{" "}
                <span class="muted">{String(h.owner_type ?? "")} {String(h.document_title ?? h.title ?? h.entity_type ?? "")}</span>
                <p class="text">{short(h.text ?? h.content, 600)}</p>
                <JsonView label="hit" value={h} />
              </li>
            ))}
          </ol>
          {!res.items.length && <Empty>No hits.</Empty>}
        </>
      )}
    </section>
  );
}

function Entities() {
  const { params, set } = useQueryParams();
  const type = params.get("entity_type") || "";
  const types = useApi(() => ok(client.GET("/v1/entities", {})), []);
  const list = useApi(() => type ? ok(client.GET("/v1/entities/{entity_type}", { params: { path: { entity_type: type }, query: { limit: 100 } } })) : Promise.resolve(null), [type]);
  return (
    <section aria-labelledby="ent-h">
      <h2 id="ent-h">Entities</h2>
      <ErrorBox error={types.error || list.error} />
      {types.data && !types.data.length && <Empty>No app entities in this project.</Empty>}
      {types.data && types.data.length > 0 && (
        <label>Entity type
          <select value={type} onChange={(e) => set({ ...Object.fromEntries(params), entity_type: (e.target as HTMLSelectElement).value })}>
            <option value="">choose…</option>
            {types.data.map((t) => <option value={t.entity_type}>{t.entity_type} ({t.count})</option>)}
          </select>
        </label>
      )}
      {list.data && <DataTable caption={`${type} entities`} csv={`entities-${type}`} rows={list.data.items as Row[]} columns={[
        { key: "entity_id", label: "id" }, { key: "user_ref", label: "user" }, { key: "text", render: (r) => short(r.text, 200) },
        { key: "metadata", render: (r) => <JsonView label="metadata" value={r.metadata} /> }, { key: "updated_at", render: (r) => fmtDate(r.updated_at) },
      ]} />}
    </section>
  );
}
