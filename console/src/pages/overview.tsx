import { client, ok } from "../api/client";
import { ChartView } from "../components/chart";
import { DataTable, ErrorBox, Loading, Page } from "../components/ui";
import { fmtDate, href, pct, useApi } from "../util";

export function Overview() {
  const o = useApi(() => ok(client.GET("/v1/overview", { params: { query: { days: 30 } } })), []);
  if (o.error) return <Page title="Overview"><ErrorBox error={o.error} /></Page>;
  if (!o.data) return <Page title="Overview"><Loading /></Page>;
  const d = o.data;
  const labels = d.daily.map((x) => x.day.slice(0, 10));
  const s = d.search;
  return (
    <Page title="Overview">
      <div class="grid">
        <div class="card"><div class="stat">{d.totals.generations}</div>generations</div>
        <div class="card"><div class="stat">{d.totals.feedback}</div>feedback rows</div>
        <div class="card"><div class="stat"><a href={href("/review")}>{d.totals.waiting_review}</a></div>
          negative feedback waiting for review{d.totals.oldest_waiting ? `, oldest ${fmtDate(d.totals.oldest_waiting)}` : ""}</div>
        <div class="card"><div class="stat">{s && s.searches ? `${s.search_ms_p50_at_most ?? "–"} / ${s.search_ms_p99_at_most ?? "–"} ms` : "–"}</div>
          search latency p50 / p99 (at most, last {s?.days ?? 30} days, {s?.searches ?? 0} searches); cache hit rate {pct(s?.cache_hit_rate)}</div>
        <div class="card"><div class="stat">{d.archive.unarchived_events.toLocaleString()}{d.archive.unarchived_more ? "+" : ""}</div>events not archived yet{d.archive.lag_seconds != null ? `; oldest ${Math.round(d.archive.lag_seconds / 60)} min old` : ""}</div>
      </div>
      <h2>Activity (last {d.days} days of activity)</h2>
      <ChartView type="bar" label="Generations and feedback per day" labels={labels}
        series={[{ label: "generations", data: d.daily.map((x) => x.generations) }, { label: "feedback", data: d.daily.map((x) => x.feedback) }]} />
      <h2>Failure rate per day</h2>
      <ChartView type="line" label="Share of rated feedback that is negative, per day" labels={labels} yMax={1}
        series={[{ label: "failure rate", data: d.daily.map((x) => x.failure_rate) }]} />
      <DataTable caption="By day" csv="overview-daily" rows={d.daily.map((x) => ({ ...x, day: x.day.slice(0, 10) }))}
        columns={[{ key: "day" }, { key: "generations" }, { key: "feedback" }, { key: "negative" }, { key: "positive" },
          { key: "failure_rate", label: "failure rate", render: (r) => pct(r.failure_rate) }]} />
    </Page>
  );
}
