import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { ChartView } from "../components/chart";
import { DataTable, Empty, ErrorBox, Loading, Page, SafeImage } from "../components/ui";
import { Drivers } from "./drivers";
import { href, pct, short, useApi, useQueryParams } from "../util";

type Source = "config" | "context" | "output_meta";
const SOURCES: Source[] = ["config", "context", "output_meta"];
const COLUMNS = ["model", "kind", "provider", "user_ref", "tag", "day", "week", "month"];
type Row = Record<string, unknown>;

export function Analytics() {
  const { params, set } = useQueryParams();
  const source = (params.get("source") || "config") as Source;
  const keys = useApi(() => ok(client.GET("/v1/analytics/keys", { params: { query: { source } } })), [source]);
  const by = params.get("by") || keys.data?.[0]?.key || "";
  const current = Object.fromEntries(params);
  const setParam = (k: string, v: string) => set({ ...current, [k]: v, ...(k === "source" ? { by: "" } : {}), where: params.getAll("where") });

  // A key of the chosen source, or a column / tag / time unit; a second dimension is any
  // text form the API takes (context.demand_kw:bands=100,500, context.efficiency:bins=4, week...).
  const dim = !by ? "" : COLUMNS.includes(by) || by.includes(".") || by.includes(":") ? by : `${source}.${by}`;
  const by2 = params.get("by2") || "";
  const [draft2, setDraft2] = useState(by2);
  // latency: false: these charts show failure rates, and latency percentiles are ordered-set
  // aggregates PostgreSQL cannot split across workers (1.0-1.5 s instead of ~0.4 s at 1M).
  const fr = useApi(() => dim ? ok(client.GET("/v1/analytics/breakdown", { params: { query: { by: by2 ? [dim, by2] : [dim], latency: false } } })) : Promise.resolve(null), [dim, by2]);
  const time = useApi(() => ok(client.GET("/v1/analytics/breakdown", { params: { query: { by: ["day"], latency: false } } })), []);
  const tags = useApi(() => ok(client.GET("/v1/analytics/tags", {})), []);
  const corr = useApi(() => ok(client.GET("/v1/analytics/corrections", {})), []);
  const frRows: Row[] = (fr.data?.groups || []).map((g) => ({
    value: g.by[0]?.value ?? "(none)", ...(by2 ? { [by2]: g.by[1]?.value ?? "(none)" } : {}),
    attempts: g.attempts, rated: g.rated, negative: g.negative, positive: g.positive,
    failure_rate: g.failure_rate, failure_low: g.failure_low, failure_high: g.failure_high,
  }));
  const values = [...new Set(frRows.map((r) => String(r.value)))];
  const second = by2 ? [...new Set(frRows.map((r) => String(r[by2])))].slice(0, 7) : [];
  const frSeries = by2
    ? second.map((v2) => ({ label: `${by2} ${v2}`, data: values.map((v) => (frRows.find((r) => String(r.value) === v && String(r[by2]) === v2)?.failure_rate as number) ?? null) }))
    : [{ label: "failure rate", data: frRows.map((r) => r.failure_rate as number | null) }];
  const daily = (time.data?.groups || []).map((g) => ({ day: String(g.by[0]?.value ?? "").slice(0, 10), negative: g.negative, positive: g.positive,
    rated: g.rated, failure_rate: g.failure_rate, failure_low: g.failure_low, failure_high: g.failure_high }));
  const tagRows = (tags.data || []) as Row[];
  const c = (corr.data || {}) as Row;
  const iters = Object.entries((c.iterations || {}) as Record<string, number>).map(([k, v]) => ({ iteration: k, trees: v }));
  if (c.never != null) iters.push({ iteration: "never positive", trees: c.never as number });
  const funnel = [
    { step: "judged negative", count: c.negative }, { step: "regenerated", count: c.regenerated }, { step: "fixed", count: c.fixed },
  ];

  return (
    <Page title="Analytics">
      <section aria-labelledby="fr-h">
        <h2 id="fr-h">Failure rate by a key</h2>
        <div class="filters">
          <label>Source
            <select value={source} onChange={(e) => setParam("source", (e.target as HTMLSelectElement).value)}>
              {SOURCES.map((s) => <option>{s}</option>)}
            </select>
          </label>
          <label>Group by
            <select value={by} onChange={(e) => setParam("by", (e.target as HTMLSelectElement).value)}>
              {(keys.data || []).map((k) => <option value={k.key}>{k.key} ({k.count})</option>)}
              {COLUMNS.map((c) => <option value={c}>{c}</option>)}
            </select>
          </label>
          <form class="row" onSubmit={(e) => { e.preventDefault(); set({ ...current, by2: draft2, where: params.getAll("where") }); }}>
            <label>Second dimension (optional)
              <input value={draft2} onInput={(e) => setDraft2((e.target as HTMLInputElement).value)} placeholder="context.demand_kw:bands=100,500" />
            </label>
            <button type="submit" class="secondary">Cross</button>
          </form>
        </div>
        <ErrorBox error={keys.error || fr.error} />
        {!by && !keys.loading && <Empty>No {source} keys in this project's generations.</Empty>}
        {/* While a new grouping loads, the old numbers must not sit under its title. */}
        {fr.loading ? <Loading /> : by && (
          <>
            <ChartView type="bar" label={`Failure rate by ${dim}${by2 ? ` × ${by2}` : ""}`} yMax={1}
              labels={(by2 ? values : frRows.map((r) => String(r.value))).map((v) => short(v, 30))} series={frSeries} />
            <DataTable caption={`Failure rate by ${dim}${by2 ? ` × ${by2}` : ""}`} csv={`failure-rate-${by}${by2 ? "-" + by2 : ""}`} rows={frRows}
              columns={[{ key: "value", label: dim }, ...(by2 ? [{ key: by2 }] : []), { key: "attempts" }, { key: "rated" }, { key: "negative" }, { key: "positive" },
                { key: "failure_rate", label: "failure rate", render: (r) => pct(r.failure_rate) },
                { key: "failure_low", label: "95% low", render: (r) => pct(r.failure_low) }, { key: "failure_high", label: "95% high", render: (r) => pct(r.failure_high) }]} />
          </>
        )}
      </section>
      <Drivers />
      <section aria-labelledby="ft-h">
        <h2 id="ft-h">Failure rate over time</h2>
        <ErrorBox error={time.error} />
        <ChartView type="line" label="Failure rate per day" yMax={1} labels={daily.map((x) => x.day)}
          series={[{ label: "failure rate", data: daily.map((x) => x.failure_rate) }, { label: "95% low", data: daily.map((x) => x.failure_low) },
            { label: "95% high", data: daily.map((x) => x.failure_high) }]} />
        <DataTable caption="Failure rate per day" csv="failure-rate-daily" rows={daily}
          columns={[{ key: "day" }, { key: "rated" }, { key: "negative" }, { key: "positive" }, { key: "failure_rate", label: "failure rate", render: (r) => pct(r.failure_rate) },
            { key: "failure_low", label: "95% low", render: (r) => pct(r.failure_low) }, { key: "failure_high", label: "95% high", render: (r) => pct(r.failure_high) }]} />
      </section>
      <div class="grid">
        <section aria-labelledby="tags-h">
          <h2 id="tags-h">Tag frequencies</h2>
          <ErrorBox error={tags.error} />
          <ChartView type="bar" label="Feedback tags by count" labels={tagRows.map((r) => short(r.tag, 24))}
            series={[{ label: "count", data: tagRows.map((r) => r.count as number) }]} />
          <DataTable caption="Tags" csv="tags" rows={tagRows} columns={Object.keys(tagRows[0] || { tag: 1, count: 1 }).map((k) => ({ key: k }))} />
        </section>
        <section aria-labelledby="corr-h">
          <h2 id="corr-h">Corrections</h2>
          <ErrorBox error={corr.error} />
          <ChartView type="bar" label="Corrections funnel: negative, regenerated, fixed" labels={funnel.map((f) => f.step)}
            series={[{ label: "replies", data: funnel.map((f) => (f.count as number) ?? null) }]} />
          <DataTable caption={`Corrections funnel (fix rate ${pct(c.fix_rate)})`} csv="corrections-funnel" rows={funnel} columns={[{ key: "step" }, { key: "count" }]} />
          <ChartView type="bar" label="Iteration of the first positive verdict, per tree" labels={iters.map((i) => String(i.iteration))}
            series={[{ label: "trees", data: iters.map((i) => i.trees) }]} />
          <DataTable caption="Iterations needed" csv="iterations" rows={iters} columns={[{ key: "iteration" }, { key: "trees" }]} />
        </section>
      </div>
      <Golden />
    </Page>
  );
}

const OPS = ["<", "<=", ">", ">=", "="];

function Golden() {
  const { params, set } = useQueryParams();
  const where = params.getAll("where");
  const gsource = (params.get("gsource") || "context") as Source;
  const [rows, setRows] = useState(() => (where.length ? where : [""]).map(parseCond));
  const g = useApi(() => ok(client.GET("/v1/analytics/golden", { params: { query: { where, source: gsource, limit: 24 } } })), [where.join("&"), gsource]);
  const apply = (e: Event) => {
    e.preventDefault();
    const w = rows.filter((r) => r.key && r.value !== "").map((r) => `${r.key}${r.op}${r.value}`);
    set({ ...Object.fromEntries(params), where: w, gsource });
  };
  const items = (g.data || []) as Row[];
  return (
    <section aria-labelledby="gold-h">
      <h2 id="gold-h">Golden examples</h2>
      <form onSubmit={apply} class="card" aria-label="Golden example conditions">
        <label>Numbers from
          <select value={gsource} onChange={(e) => set({ ...Object.fromEntries(params), where, gsource: (e.target as HTMLSelectElement).value })}>
            {SOURCES.map((s) => <option>{s}</option>)}
          </select>
        </label>
        {rows.map((r, i) => (
          <div class="row" role="group" aria-label={`Condition ${i + 1}`}>
            <label>Key<input value={r.key} onInput={(e) => setRows(rows.map((x, j) => j === i ? { ...x, key: (e.target as HTMLInputElement).value } : x))} placeholder="efficiency" /></label>
            <label>Operator<select value={r.op} onChange={(e) => setRows(rows.map((x, j) => j === i ? { ...x, op: (e.target as HTMLSelectElement).value } : x))}>
              {OPS.map((o) => <option>{o}</option>)}</select></label>
            <label>Number<input type="number" step="any" value={r.value} onInput={(e) => setRows(rows.map((x, j) => j === i ? { ...x, value: (e.target as HTMLInputElement).value } : x))} /></label>
            <button type="button" class="secondary small" onClick={() => setRows(rows.filter((_, j) => j !== i))}>Remove</button>
          </div>
        ))}
        <div class="row">
          <button type="button" class="secondary" onClick={() => setRows([...rows, { key: "", op: "<", value: "" }])}>Add condition</button>
          <button type="submit">Show golden examples</button>
        </div>
      </form>
      <ErrorBox error={g.error} />
      {!g.loading && !items.length && <Empty>No positively judged generation meets these conditions.</Empty>}
      <ul class="gallery">
        {items.map((it) => (
          <li class="card">
            <SafeImage url={it.output_url} alt={short(it.prompt, 80) || "golden output"} />
            <a href={href(`/generations/${it.id ?? it.generation_id}`)}>{short(it.prompt, 80) || "(no prompt)"}</a>
            <p class="text">{short(it.output_text, 140)}</p>
            <p class="muted">+{String(it.positives ?? "")} · rating {String(it.avg_rating ?? "–")}</p>
          </li>
        ))}
      </ul>
      {items.length > 0 && <DataTable caption="Golden examples" csv="golden" rows={items.map((it) => ({ id: it.id, prompt: it.prompt, positives: it.positives, avg_rating: it.avg_rating }))}
        columns={[{ key: "id" }, { key: "prompt", render: (r) => short(r.prompt, 80) }, { key: "positives" }, { key: "avg_rating" }]} />}
    </section>
  );
}

function parseCond(s: string) {
  const m = /^(.+?)(<=|>=|<|>|=)(.*)$/.exec(s);
  return m ? { key: m[1], op: m[2], value: m[3] } : { key: "", op: "<", value: "" };
}
