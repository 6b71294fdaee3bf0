// "What drives failure": every config/context key ranked by how far the failure rate moves
// across its values (GET /v1/analytics/drivers), as a chart, a table and a CSV; keys whose
// groups' 95% intervals all overlap are said to make no difference.
import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { ChartView } from "../components/chart";
import { DataTable, Empty, ErrorBox, Loading } from "../components/ui";
import { pct, short, useApi, useQueryParams } from "../util";

type Group = { bucket: { value: string | null }; rated: number; failure_rate: number | null };

function extreme(groups: Group[], minRated: number, pick: (a: number, b: number) => boolean): Group | undefined {
  return groups.filter((g) => g.failure_rate != null && g.rated >= minRated)
    .reduce<Group | undefined>((best, g) => (!best || pick(g.failure_rate as number, best.failure_rate as number) ? g : best), undefined);
}

const label = (g: Group | undefined) => (g ? `${g.bucket.value ?? "(none)"} ${pct(g.failure_rate)} of ${g.rated}` : "–");

export function Drivers() {
  const { params, set } = useQueryParams();
  const kind = params.get("dkind") || "";
  const minRated = Number(params.get("dmin") || 10);
  const [draft, setDraft] = useState({ kind, min: String(minRated) });
  const d = useApi(() => ok(client.GET("/v1/analytics/drivers", {
    params: { query: { kind: kind ? [kind] : undefined, min_rated: minRated } },
  })), [kind, minRated]);
  const rows = (d.data?.drivers || []).map((x, i) => ({
    rank: i + 1, key: `${x.source}.${x.key}`, source: x.source, name: x.key, kind: x.kind, edges: x.edges ?? [],
    groups: x.groups.length,
    spread: x.spread, differs: x.differs ? "yes" : "no",
    worst: label(extreme(x.groups as Group[], minRated, (a, b) => a > b)),
    best: label(extreme(x.groups as Group[], minRated, (a, b) => a < b)),
  }));
  const apply = (e: Event) => {
    e.preventDefault();
    set({ ...Object.fromEntries(params), where: params.getAll("where"), dkind: draft.kind, dmin: draft.min });
  };
  // Show a key in the breakdown chart above (source + key in the URL, as a bookmark would).
  // A binned key is charted in the very bands its row ranks (grid edges the rollup counts).
  const breakDown = (source: string, key: string, kind: string, edges: number[]) =>
    set({ ...Object.fromEntries(params), where: params.getAll("where"), source,
      by: kind !== "bins" ? key : edges.length ? `${source}.${key}:bands=${edges.join(",")}` : `${source}.${key}:bins=4`,
      by2: "" });
  return (
    <section aria-labelledby="drivers-h">
      <h2 id="drivers-h">What drives failure</h2>
      <p class="muted">Every config and context key, ranked: keys whose groups' 95% intervals do not all overlap come
        first, then by spread (highest minus lowest failure rate among groups with at least {minRated} ratings).</p>
      <form class="filters" onSubmit={apply} aria-label="Drivers filters">
        <label>Generation kind<input value={draft.kind} onInput={(e) => setDraft({ ...draft, kind: (e.target as HTMLInputElement).value })} placeholder="image" /></label>
        <label>Ratings per group at least<input type="number" min="1" value={draft.min} onInput={(e) => setDraft({ ...draft, min: (e.target as HTMLInputElement).value })} /></label>
        <button type="submit" class="secondary">Rank keys</button>
      </form>
      <ErrorBox error={d.error} />
      {d.loading && !d.data ? <Loading /> : d.data && (
        <>
          <p>{d.data.rated} rated generations, failure rate {pct(d.data.failure_rate)} overall.</p>
          {!kind && <p class="muted">All generation kinds together: a key is compared among the kinds that set it
            (a chat's missing style preset is not counted as a value), but kinds that share a key still mix. Name a
            kind (e.g. <code>image</code>) to compare like with like.</p>}
          {!rows.length && <Empty>No config or context key has enough ratings to compare.</Empty>}
          {rows.length > 0 && (
            <>
              <ChartView type="bar" label="Spread of the failure rate by key (ranked)" yMax={1}
                labels={rows.map((r) => short(r.key, 28))} series={[{ label: "spread", data: rows.map((r) => r.spread ?? null) }]} />
              <DataTable caption="Keys ranked by how much they move the failure rate" csv="failure-drivers" rows={rows} columns={[
                { key: "rank" }, { key: "key" }, { key: "kind", label: "grouped by" }, { key: "groups" },
                { key: "spread", render: (r) => pct(r.spread) }, { key: "differs", label: "intervals differ" },
                { key: "worst", label: "worst group" }, { key: "best", label: "best group" },
                { key: "breakdown", label: "chart", csv: false, render: (r) => (
                  <button type="button" class="small secondary" aria-label={`Break down by ${r.key}`}
                    onClick={() => breakDown(String(r.source), String(r.name), String(r.kind), r.edges as number[])}>Break down</button>) },
              ]} />
            </>
          )}
          <p class="no-difference"><strong>Make no difference</strong> (every group's interval overlaps the others):{" "}
            {d.data.no_difference.length ? d.data.no_difference.join(", ") : "none"}</p>
          {d.data.skipped.length > 0 && <p class="muted">Not compared (too many distinct values): {d.data.skipped.join(", ")}</p>}
        </>
      )}
    </section>
  );
}
