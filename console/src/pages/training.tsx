import { useState } from "preact/hooks";
import { client, ok, raw } from "../api/client";
import { DataTable, Empty, ErrorBox, JsonView, Loading, Page, download } from "../components/ui";
import { Jobs } from "./jobs";
import { useSession } from "../session";
import { fmtDate, href, short, useApi, useQueryParams } from "../util";

type Row = Record<string, unknown>;

export function Training() {
  const s = useSession();
  const { params, set } = useQueryParams();
  const ds = useApi(() => ok(client.GET("/v1/datasets", { params: { query: { limit: 200 } } })), []);
  const jobs = useApi(() => ok(client.GET("/v1/training/jobs", { params: { query: { limit: 100 } } })), []);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const rows = (ds.data?.items || []) as unknown as Row[];
  const exportJsonl = async (r: Row, format: string) => {
    setMsg(null);
    try {
      const res = await raw(`/v1/datasets/${encodeURIComponent(String(r.id))}/export?format=${format}`);
      const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1] || `${r.name}-${r.version}.jsonl`;
      download(name, await res.text(), "application/jsonl");
    } catch (e) {
      setMsg({ ok: false, text: e instanceof Error ? e.message : String(e) });
    }
  };
  return (
    <Page title="Training">
      <section aria-labelledby="ds-h">
        <h2 id="ds-h">Dataset versions</h2>
        <ErrorBox error={ds.error} />
        {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
        {ds.loading && !ds.data ? <Loading /> : (
          <DataTable caption={`${rows.length} dataset versions`} csv="datasets" rows={rows} columns={[
            { key: "name", render: (r) => `${r.name}@${r.version}` }, { key: "kind" },
            { key: "counts", render: (r) => <CountsCell counts={r.counts as Row} /> },
            { key: "filter", render: (r) => <JsonView label="filter" value={r.filter} /> },
            { key: "content_hash", label: "hash", render: (r) => <code title={String(r.content_hash)}>{short(r.content_hash, 20)}</code> },
            { key: "created_at", label: "created", render: (r) => fmtDate(r.created_at) },
            { key: "download", label: "JSONL", render: (r) => (
              <button type="button" class="small" onClick={() => exportJsonl(r, r.kind === "preference" ? "preference" : "chat")}
                aria-label={`Download JSONL of ${r.name}@${r.version}`}>Download JSONL</button>) },
          ]} />
        )}
        {s.can_write && <NewDataset onCreated={(t) => { setMsg({ ok: true, text: t }); ds.reload(); }} />}
      </section>
      <Jobs jobs={jobs} onChanged={() => ds.reload()} />
      {s.is_admin && <StartJob datasets={rows} onStarted={(id) => { jobs.reload(); set({ ...Object.fromEntries(params), job: id }); }} />}
      <ModelGenerations model={params.get("model") || ""} />
    </Page>
  );
}

function CountsCell({ counts }: { counts: Row | undefined }) {
  if (!counts) return <>–</>;
  const pii = counts.pii as Row | undefined;
  return (
    <span>{String(counts.examples ?? counts.total ?? "?")} examples ({String(counts.train ?? "?")} train / {String(counts.validation ?? 0)} validation)
      {pii && Object.keys(pii).length > 0 && <><br />PII scrubbed: {Object.entries(pii).map(([k, v]) => `${k} ${v}`).join(", ")}</>}</span>
  );
}

function NewDataset({ onCreated }: { onCreated: (text: string) => void }) {
  const [f, setF] = useState({ name: "", verdict: "POSITIVE", kind: "sft", tags: "", without_tags: "", model: "", gen_kind: "", scrub_pii: true, validation: "0.1" });
  const [error, setError] = useState<string | null>(null);
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const filter: Row = {};
    if (f.verdict && f.kind === "sft") filter.verdict = f.verdict;
    if (f.tags.trim()) filter.tags = f.tags.split(/[,\s]+/).filter(Boolean);
    if (f.without_tags.trim()) filter.without_tags = f.without_tags.split(/[,\s]+/).filter(Boolean);
    if (f.model) filter.model = f.model;
    if (f.gen_kind) filter.kind = f.gen_kind;
    try {
      const d = await ok(client.POST("/v1/datasets", {
        body: { name: f.name, filter, kind: f.kind as "sft", options: { scrub_pii: f.scrub_pii, validation: Number(f.validation) || 0 } },
      }));
      onCreated(d.reused ? `Nothing changed since ${d.name}@${d.version}: the same version was returned.` : `Created ${d.name}@${d.version}.`);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-label="Create a dataset version">
      <h3>Create a dataset version from a filter</h3>
      <div class="row">
        <label>Name<input name="name" required value={f.name} onInput={set("name")} placeholder="good-answers" /></label>
        <label>Kind<select value={f.kind} onChange={set("kind")}><option>sft</option><option>preference</option></select></label>
        <label>Verdict<select value={f.verdict} onChange={set("verdict")} disabled={f.kind !== "sft"}>
          <option value="">any</option><option>POSITIVE</option><option>NEGATIVE</option><option>NEUTRAL</option></select></label>
        <label>With tags<input value={f.tags} onInput={set("tags")} /></label>
        <label>Without tags<input value={f.without_tags} onInput={set("without_tags")} placeholder="RED_FLAG" /></label>
        <label>Model<input value={f.model} onInput={set("model")} /></label>
        <label>Generation kind<input value={f.gen_kind} onInput={set("gen_kind")} placeholder="chat" /></label>
        <label>Validation share<input type="number" step="0.05" min="0" max="0.9" value={f.validation} onInput={set("validation")} /></label>
        <label class="inline"><input type="checkbox" checked={f.scrub_pii} onChange={() => setF({ ...f, scrub_pii: !f.scrub_pii })} /> scrub PII</label>
      </div>
      <ErrorBox error={error} />
      <button type="submit">Create version</button>
    </form>
  );
}

function StartJob({ datasets, onStarted }: { datasets: Row[]; onStarted: (id: string) => void }) {
  const [f, setF] = useState({ dataset: "", base_model: "gpt-4o-mini-2024-07-18", suffix: "" });
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setMsg(null);
    try {
      const j = await ok(client.POST("/v1/training/jobs", { body: { dataset: f.dataset, base_model: f.base_model, suffix: f.suffix || null } }));
      setMsg({ ok: true, text: `Started job ${j.id} (${j.status}).` });
      onStarted(j.id);
    } catch (err) {
      setMsg({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-label="Start a fine-tuning job">
      <h3>Start a fine-tuning job</h3>
      <div class="row">
        <label>Dataset<select required value={f.dataset} onChange={(e) => setF({ ...f, dataset: (e.target as HTMLSelectElement).value })}>
          <option value="">choose…</option>{datasets.map((d) => <option value={String(d.id)}>{String(d.name)}@{String(d.version)}</option>)}</select></label>
        <label>Base model<input required value={f.base_model} onInput={(e) => setF({ ...f, base_model: (e.target as HTMLInputElement).value })} /></label>
        <label>Suffix<input value={f.suffix} onInput={(e) => setF({ ...f, suffix: (e.target as HTMLInputElement).value })} /></label>
      </div>
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
      <button type="submit">Start job</button>
    </form>
  );
}

function ModelGenerations({ model }: { model: string }) {
  const { set, params } = useQueryParams();
  const [m, setM] = useState(model);
  const res = useApi(() => model ? ok(client.GET("/v1/training/models/{model}/generations", { params: { path: { model } } })) : Promise.resolve(null), [model]);
  return (
    <section aria-labelledby="mg-h">
      <h2 id="mg-h">A model's training generations</h2>
      <form class="row" onSubmit={(e) => { e.preventDefault(); set({ ...Object.fromEntries(params), model: m }); }} aria-label="Find a model's training data">
        <label>Fine-tuned model<input value={m} onInput={(e) => setM((e.target as HTMLInputElement).value)} placeholder="ft:gpt-4o-mini:…" /></label>
        <button type="submit">Show</button>
      </form>
      <ErrorBox error={res.error} />
      {res.data && !res.data.length && <Empty>No generations.</Empty>}
      {res.data && res.data.length > 0 && <DataTable caption={`Generations that trained ${model}`} csv="model-generations" rows={res.data as Row[]} columns={[
        { key: "generation_id", label: "generation", render: (r) => <a href={href(`/generations/${r.generation_id}`)}>{String(r.generation_id).slice(0, 8)}…</a> },
        { key: "role" }, { key: "split" }, { key: "dataset", render: (r) => `${r.dataset}@${r.dataset_version}` }, { key: "job_status", label: "job" },
      ]} />}
    </section>
  );
}
