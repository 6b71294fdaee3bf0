import { client, ok } from "../api/client";
import { ChartView } from "../components/chart";
import { DataTable, Empty, ErrorBox, Loading, Page } from "../components/ui";
import { fmtDate, href, pct, useApi, useQueryParams } from "../util";

type Row = Record<string, unknown>;

export function Predictions() {
  const { params } = useQueryParams();
  const model = params.get("model") || "";
  const version = params.get("version") || "";
  const vs = useApi(() => ok(client.GET("/v1/predictions/versions", {})), []);
  const rows = (vs.data || []) as Row[];
  return (
    <Page title="Predictions">
      <ErrorBox error={vs.error} />
      {vs.data && !rows.length && <Empty>No model predictions registered in this project yet. An app registers each
        prediction (<code>POST /v1/predictions</code>, <code>ll.predictions.log(...)</code> or <code>learnloop predict log</code>)
        and later its outcome; each model version's report and reliability diagram then appear here.</Empty>}
      {rows.length > 0 && <DataTable caption="Model versions" csv="prediction-versions" rows={rows} columns={[
        { key: "model_name", label: "model", render: (r) => <a href={href("/predictions", { model: String(r.model_name), version: String(r.model_version) })}>{String(r.model_name)}</a> },
        { key: "model_version", label: "version" }, { key: "predictions" }, { key: "with_outcome", label: "with outcome" },
        { key: "last_at", label: "latest", render: (r) => fmtDate(r.last_at) },
      ]} />}
      {model && version && <Report model={model} version={version} />}
    </Page>
  );
}

function Report({ model, version }: { model: string; version: string }) {
  const r = useApi(() => ok(client.GET("/v1/predictions/models/{model_name}/versions/{model_version}/report", {
    params: { path: { model_name: model, model_version: version }, query: { bins: 10 } },
  })), [model, version]);
  if (r.error) return <ErrorBox error={r.error} />;
  if (!r.data) return <Loading />;
  const d = r.data as Row;
  const cal = (d.calibration || []) as Row[];
  const labels = cal.map((c) => (Number(c.mean_predicted) || 0).toFixed(2));
  return (
    <section aria-labelledby="rep-h">
      <h2 id="rep-h">{model} {version}</h2>
      <dl class="facts">
        {["predictions", "with_outcome", "awaiting_outcome"].map((k) => <div><dt>{k.replace("_", " ")}</dt><dd>{String(d[k] ?? "–")}</dd></div>)}
        {["accuracy", "precision", "recall", "base_rate"].map((k) => <div><dt>{k.replace("_", " ")}</dt><dd>{pct(d[k])}</dd></div>)}
        <div><dt>ROC AUC</dt><dd>{typeof d.roc_auc === "number" ? d.roc_auc.toFixed(3) : "–"}</dd></div>
        <div><dt>Brier</dt><dd>{typeof d.brier === "number" ? d.brier.toFixed(4) : "–"}</dd></div>
      </dl>
      <h3>Reliability diagram</h3>
      {cal.length ? (
        <>
          <ChartView type="line" label="Reliability: observed rate against mean predicted score per bin" labels={labels} yMax={1}
            series={[{ label: "observed rate", data: cal.map((c) => c.observed_rate as number) },
              { label: "perfect calibration", data: cal.map((c) => Number(c.mean_predicted)) }]} />
          <DataTable caption="Calibration bins" csv={`calibration-${model}-${version}`} rows={cal}
            columns={[{ key: "bin" }, { key: "count" }, { key: "mean_predicted", label: "mean predicted" }, { key: "observed_rate", label: "observed rate" }]} />
        </>
      ) : <Empty>No outcomes recorded yet: the diagram needs predictions with outcomes.</Empty>}
      {d.confusion != null && <DataTable caption="Confusion at the threshold" rows={[d.confusion as Row]} columns={Object.keys(d.confusion as Row).map((k) => ({ key: k }))} />}
    </section>
  );
}
