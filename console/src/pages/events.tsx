import { useEffect, useRef, useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { ChartView } from "../components/chart";
import { DataTable, ErrorBox, JsonView, Loading, Page } from "../components/ui";
import { fmtDate, short, useApi, useQueryParams } from "../util";

type Ev = { id: number; event_type: string; entity_type: string; entity_id: string; created_at: string; payload?: unknown; actor?: string | null };
const MAX = 500;

// The live tail: the WebSocket (the session cookie authenticates it) resumes from the last
// event id it delivered, so pausing, changing the filter or a dropped connection loses nothing.
export function Events() {
  const { params, set } = useQueryParams();
  const type = params.get("event_type") || "";
  const [events, setEvents] = useState<Ev[]>([]);
  const [paused, setPaused] = useState(false);
  const [state, setState] = useState("connecting");
  const last = useRef<number | null>(null);

  useEffect(() => {
    if (paused) { setState("paused"); return; }
    let ws: WebSocket | null = null;
    let retry: number | undefined;
    let closed = false;
    const connect = () => {
      const q = new URLSearchParams();
      if (last.current !== null) q.set("after", String(last.current));
      if (type) q.set("event_type", type);
      ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/events/stream?${q}`);
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === "ready") {
          if (last.current === null) last.current = msg.after;
          setState("live");
        } else if (msg.type === "event") {
          last.current = msg.id;
          setEvents((old) => [msg as Ev, ...old].slice(0, MAX));
        } else if (msg.type === "error") {
          setState(`error: ${msg.detail}`);
          closed = true;
        }
      };
      ws.onclose = () => {
        if (!closed) { setState("reconnecting"); retry = window.setTimeout(connect, 1500); }
      };
    };
    connect();
    return () => { closed = true; window.clearTimeout(retry); ws?.close(); };
  }, [paused, type]);

  return (
    <Page title="Events">
      <section aria-labelledby="tail-h">
        <h2 id="tail-h">Live tail</h2>
        <div class="row">
          <label>Event type
            <input value={type} onChange={(e) => set({ ...Object.fromEntries(params), event_type: (e.target as HTMLInputElement).value })} placeholder="feedback.reviewed" />
          </label>
          <button type="button" onClick={() => setPaused(!paused)}>{paused ? "Resume" : "Pause"}</button>
          <span role="status" class="muted">Stream: {state}{last.current !== null ? ` (after event ${last.current})` : ""}</span>
        </div>
        <div class="tail table-wrap">
          <table>
            <caption>{events.length} events received (newest first)</caption>
            <thead><tr><th scope="col">id</th><th scope="col">time</th><th scope="col">type</th><th scope="col">entity</th><th scope="col">payload</th></tr></thead>
            <tbody aria-live="polite">
              {events.map((e) => (
                <tr data-event-type={e.event_type}><td>{e.id}</td><td class="nowrap">{fmtDate(e.created_at)}</td><td>{e.event_type}</td>
                  <td>{e.entity_type} <code>{short(e.entity_id, 40)}</code></td><td><JsonView label="payload" value={e.payload} /></td></tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <ByTypeDay />
      <SqlBox />
    </Page>
  );
}

function ByTypeDay() {
  const res = useApi(() => ok(client.GET("/v1/events/by-type-day", { params: { query: { days: 90 } } })), []);
  const rows = (res.data || []) as Record<string, unknown>[];
  const days = [...new Set(rows.map((r) => String(r.day).slice(0, 10)))].sort();
  const types = [...new Set(rows.map((r) => String(r.event_type)))].sort().slice(0, 7);
  const series = types.map((t) => ({ label: t, data: days.map((d) => rows.filter((r) => String(r.day).slice(0, 10) === d && r.event_type === t).reduce((a, r) => a + Number(r.count ?? r.events ?? 0), 0)) }));
  return (
    <section aria-labelledby="btd-h">
      <h2 id="btd-h">Events by type and day (archive + live)</h2>
      <ErrorBox error={res.error} />
      {res.loading && !res.data ? <Loading /> : (
        <>
          <ChartView type="bar" label="Events per day by type" labels={days} series={series} />
          <DataTable caption="Events by type and day" csv="events-by-type-day" rows={rows} columns={Object.keys(rows[0] || { day: 1, event_type: 1, count: 1 }).map((k) => ({ key: k }))} />
        </>
      )}
    </section>
  );
}

function SqlBox() {
  const [sql, setSql] = useState("SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC");
  const [res, setRes] = useState<{ columns: string[]; rows: unknown[][] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setRes(await ok(client.POST("/v1/events/sql", { body: { sql, max_rows: 1000 } })) as never);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const rows = (res?.rows || []).map((r) => Object.fromEntries((res?.columns || []).map((c, i) => [c, r[i]])));
  return (
    <section aria-labelledby="sql-h">
      <h2 id="sql-h">SQL over this tenant's events (DuckDB, read only)</h2>
      <form onSubmit={run} aria-label="SQL query">
        <label for="sql">Query (the table is <code>events</code>)</label>
        <textarea id="sql" rows={4} value={sql} onInput={(e) => setSql((e.target as HTMLTextAreaElement).value)} spellcheck={false} />
        <button type="submit">Run</button>
      </form>
      <ErrorBox error={error} />
      {res && <DataTable caption={`${rows.length} rows`} csv="events-sql" rows={rows} columns={res.columns.map((c) => ({ key: c }))} />}
    </section>
  );
}
