import { client, ok } from "../api/client";
import { FeedbackForm } from "../components/feedback";
import { LineageTree, type TreeNode } from "../components/tree";
import { ErrorBox, JsonView, Loading, Markdown, Page, SafeImage, Tags, Verdict } from "../components/ui";
import { fmtDate, href, useApi } from "../util";

type Msg = { role?: unknown; content?: unknown };

export function GenerationPage({ id }: { id: string }) {
  const g = useApi(() => ok(client.GET("/v1/generations/{generation_id}", { params: { path: { generation_id: id } } })), [id]);
  const tree = useApi(() => ok(client.GET("/v1/generations/{generation_id}/tree", { params: { path: { generation_id: id } } })), [id]);
  const fb = useApi(() => ok(client.GET("/v1/generations/{generation_id}/feedback", { params: { path: { generation_id: id } } })), [id]);
  const trace = useApi(() => ok(client.GET("/v1/generations/{generation_id}/training", { params: { path: { generation_id: id } } })), [id]);

  if (g.error) {
    return (
      <Page title="Generation not found">
        <ErrorBox error={g.error} />
        <p><a href={href("/generations")}>Back to generations</a></p>
      </Page>
    );
  }
  if (!g.data) return <Page title="Generation"><Loading /></Page>;
  const d = g.data;
  const messages = Array.isArray(d.messages) ? (d.messages as Msg[]) : [];
  const t = (trace.data || {}) as { datasets?: Record<string, unknown>[]; jobs?: Record<string, unknown>[] };
  return (
    <Page title={`Generation · ${d.kind} #${d.iteration}`}>
      <p class="muted ids">id <code>{d.id}</code> · {fmtDate(d.created_at)} · project {d.project}
        {d.parent_id && <> · parent <a href={href(`/generations/${d.parent_id}`)}>{d.parent_id.slice(0, 8)}…</a></>}</p>
      <dl class="facts">
        <div><dt>Model</dt><dd>{d.model ?? "–"}{d.provider ? ` (${d.provider})` : ""}</dd></div>
        <div><dt>Tokens</dt><dd>{d.tokens_in ?? "–"} in / {d.tokens_out ?? "–"} out</dd></div>
        <div><dt>Latency</dt><dd>{d.latency_ms != null ? `${Math.round(d.latency_ms)} ms` : "–"}</dd></div>
        <div><dt>Cost</dt><dd>{d.cost ?? "–"}</dd></div>
        <div><dt>User</dt><dd>{d.user_ref ?? "–"}</dd></div>
        <div><dt>Session</dt><dd>{d.session_ref ?? "–"}</dd></div>
        <div><dt>Links</dt><dd>{Object.entries(d.links || {}).map(([k, v]) => (
          <a class="tag" href={href("/generations", { link: `${k}:${v}` })}>{k}:{v}</a>)) }{!Object.keys(d.links || {}).length && "–"}</dd></div>
      </dl>
      <div class="cols">
        <div>
          {d.prompt != null && <section><h2>Prompt</h2><pre class="text" tabIndex={0}>{d.prompt}</pre></section>}
          {d.negative_prompt && <section><h2>Negative prompt</h2><pre class="text" tabIndex={0}>{d.negative_prompt}</pre></section>}
          {messages.length > 0 && (
            <section><h2>Conversation</h2>
              <ol class="chat">{messages.map((m) => (
                <li class={`msg role-${String(m.role || "user").replace(/[^a-z]/gi, "")}`}><strong>{String(m.role ?? "?")}</strong>
                  <pre class="text" tabIndex={0}>{typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2)}</pre></li>))}
              </ol>
            </section>
          )}
          <section><h2>Output</h2>
            <SafeImage url={d.output_url} alt="Generated output" class="output-image" />
            {d.output_url && <p class="muted">output URL: <code>{d.output_url}</code></p>}
            {d.output_text != null ? <Markdown text={d.output_text} /> : <p class="muted">No text output.</p>}
          </section>
          <section><h2>Data</h2>
            <JsonView label="context" value={d.context} />
            <JsonView label="config" value={d.config} />
            <JsonView label="output_meta" value={d.output_meta} />
          </section>
          <Retrieved id={d.id} count={(d.retrieved || []).length} />
        </div>
        <div>
          <section><h2>Feedback</h2>
            <ErrorBox error={fb.error} />
            {(fb.data || []).length === 0 && !fb.loading && <p class="muted">No feedback yet.</p>}
            <ul class="feedback-list">{(fb.data || []).map((f) => (
              <li class="card">
                <Verdict v={f.sentiment} /> {f.rating != null && <span>rating {f.rating}/5</span>}{" "}
                {f.thumbs != null && <span>{f.thumbs > 0 ? "thumbs up" : "thumbs down"}</span>} <Tags tags={f.tags} />
                <span class="muted"> · {f.source} · {fmtDate(f.created_at)}{f.processed ? " · reviewed" : ""}</span>
                {f.comment && <p class="text">{f.comment}</p>}
                {f.instruction && <p class="text"><em>Instruction:</em> {f.instruction}</p>}
                {f.corrected_output && <details><summary>Corrected output</summary><pre class="text" tabIndex={0}>{f.corrected_output}</pre></details>}
                {f.review_notes && <p class="text"><em>Review notes:</em> {f.review_notes}</p>}
              </li>))}
            </ul>
            <FeedbackForm generationId={d.id} onSaved={() => { fb.reload(); tree.reload(); }} />
          </section>
          <section><h2>Training</h2>
            {trace.error && <ErrorBox error={trace.error} />}
            {(t.datasets || []).length === 0 && (t.jobs || []).length === 0 && !trace.loading && <p class="muted">Not part of any dataset or fine-tuned model.</p>}
            <ul>{(t.datasets || []).map((x) => <li>dataset <a href={href("/training", { dataset: String(x.name) })}>{String(x.name)} v{String(x.version)}</a> ({String(x.role)}, {String(x.split)})</li>)}</ul>
            <ul>{(t.jobs || []).map((j) => <li>fine-tune job {String(j.id).slice(0, 8)}… {String(j.status)} → model {j.result_model ? <a href={href("/training", { model: String(j.result_model) })}>{String(j.result_model)}</a> : "(not yet)"}</li>)}</ul>
          </section>
        </div>
      </div>
      <section><h2>Lineage</h2>
        <ErrorBox error={tree.error} />
        {tree.data && <LineageTree root={tree.data as unknown as TreeNode} current={d.id} />}
      </section>
    </Page>
  );
}

// What retrieval put in the prompt, each chunk with the document it belongs to (a link to
// that document on the Knowledge page, in the document's own project).
function Retrieved({ id, count }: { id: string; count: number }) {
  const r = useApi(() => count ? ok(client.GET("/v1/generations/{generation_id}/retrieved", { params: { path: { generation_id: id } } })) : Promise.resolve(null), [id, count]);
  return (
    <section aria-labelledby="retrieved-h"><h2 id="retrieved-h">Retrieved context</h2>
      {!count && <p class="muted">Nothing retrieved for this generation.</p>}
      <ErrorBox error={r.error} />
      {r.data && (
        <ol class="retrieved">{r.data.items.map((it) => (
          <li class="card" data-position={it.position}>
            <p>{it.type ?? "entry"}{it.chunk_index != null ? ` ${it.chunk_index + 1}` : ""}
              {it.document ? <> of <a href={`/knowledge?${new URLSearchParams({ project: it.document.project, document: it.document.id })}`}>
                {it.document.title || it.document.file_name}</a> <span class="muted">({it.document.file_name}{it.document.active ? "" : ", inactive"})</span></>
                : <span class="muted"> · not a stored document{it.ref ? ` (${it.ref})` : ""}</span>}
              {it.score != null && <span class="muted"> · score {it.score.toFixed(3)}</span>}</p>
            {it.text && <pre class="text clip" tabIndex={0}>{it.text}</pre>}
          </li>))}
        </ol>
      )}
      {count > 0 && <JsonView label="retrieved (as logged)" value={r.data?.items.map((it) => it.entry)} />}
    </section>
  );
}
