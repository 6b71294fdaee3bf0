// Fine-tuning jobs: the list, and one job's status, progress and provider events, with a
// sync button (one poll of the provider; admin keys) — GET /v1/training/jobs...,
// GET .../{id}/events, POST .../{id}/sync.
import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { DataTable, Empty, ErrorBox, JsonView, Loading } from "../components/ui";
import { useSession } from "../session";
import { fmtDate, href, useApi, useQueryParams } from "../util";

type Row = Record<string, unknown>;
// A job's progress is a percentage (0-100), as the provider's steps report it.
const pctText = (p: unknown) => `${Math.round(Number(p) || 0)}%`;

function Progress({ value, id }: { value: unknown; id: string }) {
  return (
    <span class="progress">
      <progress max={100} value={Number(value) || 0} aria-label={`progress of job ${id.slice(0, 8)}`} /> {pctText(value)}
    </span>
  );
}

export function Jobs({ jobs, onChanged }: { jobs: { data?: { items: unknown[] }; error?: string; reload: () => void }; onChanged: () => void }) {
  const { params, set } = useQueryParams();
  const open = params.get("job") || "";
  const rows = (jobs.data?.items || []) as Row[];
  const show = (id: string) => set({ ...Object.fromEntries(params), job: id === open ? "" : id });
  return (
    <section aria-labelledby="jobs-h">
      <h2 id="jobs-h">Fine-tuning jobs</h2>
      <ErrorBox error={jobs.error} />
      <DataTable caption={`${rows.length} jobs`} csv="jobs" rows={rows} columns={[
        { key: "id", render: (r) => (
          <button type="button" class="linklike" aria-expanded={open === r.id} onClick={() => show(String(r.id))}>
            Details of <code>{String(r.id).slice(0, 8)}…</code></button>) },
        { key: "status", render: (r) => <span class={`status s-${String(r.status)}`}>{String(r.status)}</span> },
        { key: "progress", render: (r) => <Progress value={r.progress} id={String(r.id)} /> },
        { key: "base_model", label: "base" },
        { key: "result_model", label: "result", render: (r) => r.result_model ? <a href={href("/training", { model: String(r.result_model) })}>{String(r.result_model)}</a> : "–" },
        { key: "example_count", label: "examples" }, { key: "error", render: (r) => r.error ? <span class="error">{String(r.error)}</span> : "–" },
        { key: "created_at", label: "created", render: (r) => fmtDate(r.created_at) },
      ]} />
      {open && <JobDetail id={open} onSynced={() => { jobs.reload(); onChanged(); }} />}
    </section>
  );
}

function JobDetail({ id, onSynced }: { id: string; onSynced: () => void }) {
  const s = useSession();
  const job = useApi(() => ok(client.GET("/v1/training/jobs/{job_id}", { params: { path: { job_id: id } } })), [id]);
  const events = useApi(() => ok(client.GET("/v1/training/jobs/{job_id}/events", { params: { path: { job_id: id } } })), [id]);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const sync = async () => {
    setMsg(null);
    setBusy(true);
    try {
      const j = await ok(client.POST("/v1/training/jobs/{job_id}/sync", { params: { path: { job_id: id } } }));
      setMsg({ ok: true, text: `Synced: ${j.status}${j.provider_status ? ` (provider: ${j.provider_status})` : ""}, ${pctText(j.progress)}.` });
      job.reload();
      events.reload();
      onSynced();
    } catch (e) {
      setMsg({ ok: false, text: e instanceof Error ? e.message : String(e) });
    } finally {
      setBusy(false);
    }
  };
  if (job.error) return <ErrorBox error={job.error} />;
  if (!job.data) return <Loading what="Loading the job" />;
  const j = job.data;
  const ev = (events.data || []) as Row[];
  return (
    <article class="card" aria-labelledby="job-h">
      <h3 id="job-h">Job {j.id}</h3>
      <dl class="facts">
        <div><dt>Status</dt><dd><span class={`status s-${j.status}`}>{j.status}</span>{j.provider_status ? ` (provider: ${j.provider_status})` : ""}</dd></div>
        <div><dt>Progress</dt><dd><Progress value={j.progress} id={j.id} /></dd></div>
        <div><dt>Provider job</dt><dd>{j.provider} {j.provider_job_id ?? "–"}</dd></div>
        <div><dt>Base → result</dt><dd>{j.base_model} → {j.result_model ? <a href={href("/training", { model: j.result_model, job: j.id })}>{j.result_model}</a> : "(not yet)"}</dd></div>
        <div><dt>Examples / tokens</dt><dd>{j.example_count} / {j.trained_tokens ?? "–"}</dd></div>
        <div><dt>Started / finished</dt><dd>{fmtDate(j.started_at) || "–"} / {fmtDate(j.finished_at) || "–"}</dd></div>
        <div><dt>Last synced</dt><dd>{fmtDate(j.synced_at) || "never"}</dd></div>
      </dl>
      {j.error && <p class="error">Failed: {j.error}</p>}
      {j.sync_error && <p class="error">Last sync failed: {j.sync_error}</p>}
      <JsonView label="hyperparameters" value={j.hyperparameters} />
      {s.is_admin
        ? <button type="button" onClick={sync} disabled={busy}>{busy ? "Syncing…" : "Sync with the provider"}</button>
        : <p class="muted">Syncing a job needs an admin key.</p>}
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
      <ErrorBox error={events.error} />
      {events.data && !ev.length && <Empty>No provider events yet: sync to fetch them.</Empty>}
      {ev.length > 0 && <DataTable caption={`${ev.length} provider events`} csv={`job-${j.id.slice(0, 8)}-events`} rows={ev} columns={[
        { key: "created_at", label: "at", render: (r) => fmtDate(r.created_at) }, { key: "level" }, { key: "message" },
        { key: "data", render: (r) => r.data ? <JsonView label="data" value={r.data} /> : "–" },
      ]} />}
    </article>
  );
}
