import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { DataTable, Empty, ErrorBox, Loading, Page } from "../components/ui";
import { useSession } from "../session";
import { short, useApi, useQueryParams } from "../util";

type Row = Record<string, unknown>;

export function Dictionary() {
  const s = useSession();
  const terms = useApi(() => ok(client.GET("/v1/dictionary/terms", { params: { query: { limit: 500 } } })), []);
  const [t, setT] = useState({ word: "", table_name: "", field_name: "", synonyms: "", definition: "" });
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    setMsg(null);
    try {
      await ok(client.POST("/v1/dictionary/terms", { body: {
        word: t.word, table_name: t.table_name || null, field_name: t.field_name || null, definition: t.definition || null,
        synonyms: t.synonyms.split(",").map((x) => x.trim()).filter(Boolean),
      } }));
      setMsg({ ok: true, text: `Term "${t.word}" saved.` });
      setT({ word: "", table_name: "", field_name: "", synonyms: "", definition: "" });
      terms.reload();
    } catch (err) {
      setMsg({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  };
  const rows = (terms.data?.items || []) as Row[];
  return (
    <Page title="Dictionary and catalog">
      <section aria-labelledby="terms-h">
        <h2 id="terms-h">Terms</h2>
        <ErrorBox error={terms.error} />
        {terms.loading && !terms.data ? <Loading /> : <DataTable caption={`${rows.length} terms`} csv="terms" rows={rows} columns={[
          { key: "word" }, { key: "synonyms", render: (r) => ((r.synonyms as string[]) || []).join(", ") || "–" },
          { key: "target", render: (r) => r.table_name ? `${r.table_name}.${r.field_name ?? ""}` : "–" },
          { key: "definition", render: (r) => short(r.definition, 160) }, { key: "category" },
        ]} />}
        {s.can_write && (
          <form class="card" onSubmit={add} aria-label="Add a term">
            <h3>Add a term</h3>
            <div class="row">
              <label>Word<input required value={t.word} onInput={(e) => setT({ ...t, word: (e.target as HTMLInputElement).value })} /></label>
              <label>Table<input value={t.table_name} onInput={(e) => setT({ ...t, table_name: (e.target as HTMLInputElement).value })} /></label>
              <label>Field<input value={t.field_name} onInput={(e) => setT({ ...t, field_name: (e.target as HTMLInputElement).value })} /></label>
              <label>Synonyms (comma separated)<input value={t.synonyms} onInput={(e) => setT({ ...t, synonyms: (e.target as HTMLInputElement).value })} /></label>
            </div>
            <label>Definition<input value={t.definition} onInput={(e) => setT({ ...t, definition: (e.target as HTMLInputElement).value })} /></label>
            {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
            <button type="submit">Save term</button>
          </form>
        )}
      </section>
      <Lookup />
      <Catalog />
    </Page>
  );
}

function Lookup() {
  const { params, set } = useQueryParams();
  const phrase = params.get("phrase") || "";
  const [draft, setDraft] = useState(phrase);
  const res = useApi(() => phrase ? ok(client.GET("/v1/dictionary/lookup", { params: { query: { phrase, k: 5 } } })) : Promise.resolve(null), [phrase]);
  return (
    <section aria-labelledby="lookup-h">
      <h2 id="lookup-h">Lookup tester</h2>
      <form class="row" onSubmit={(e) => { e.preventDefault(); set({ ...Object.fromEntries(params), phrase: draft }); }} aria-label="Look up a phrase">
        <label>Phrase<input value={draft} onInput={(e) => setDraft((e.target as HTMLInputElement).value)} placeholder="client's ID number" /></label>
        <button type="submit">Look up</button>
      </form>
      <ErrorBox error={res.error} />
      {res.data && !res.data.length && <Empty>No term matches “{phrase}”.</Empty>}
      {res.data && res.data.length > 0 && <DataTable caption={`Matches for “${phrase}”`} rows={res.data as Row[]}
        columns={Object.keys(res.data[0] as Row).filter((k) => !["id", "embedding"].includes(k)).slice(0, 8).map((k) => ({ key: k }))} />}
    </section>
  );
}

function Catalog() {
  const s = useSession();
  const fields = useApi(() => ok(client.GET("/v1/catalog/fields", { params: { query: { limit: 500 } } })), []);
  const rows = (fields.data?.items || []) as Row[];
  return (
    <section aria-labelledby="cat-h">
      <h2 id="cat-h">Catalog fields</h2>
      <ErrorBox error={fields.error} />
      {fields.data && !rows.length && <Empty>No catalog fields: run <code>learnloop catalog introspect</code> on the app's database.</Empty>}
      {rows.length > 0 && <DataTable caption={`${rows.length} fields`} csv="catalog" rows={rows} columns={[
        { key: "field", render: (r) => `${r.schema_name}.${r.table_name}.${r.field_name}` }, { key: "data_type", label: "type" },
        { key: "definition", render: (r) => s.can_write ? <DefinitionEditor row={r} onSaved={fields.reload} /> : String(r.definition ?? "–") },
      ]} />}
    </section>
  );
}

function DefinitionEditor({ row, onSaved }: { row: Row; onSaved: () => void }) {
  const [v, setV] = useState(String(row.definition ?? ""));
  const [msg, setMsg] = useState<string | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await ok(client.PUT("/v1/catalog/fields/{schema_name}/{table_name}/{field_name}", {
        params: { path: { schema_name: String(row.schema_name), table_name: String(row.table_name), field_name: String(row.field_name) } },
        body: { definition: v },
      }));
      setMsg("saved");
      onSaved();
    } catch (err) {
      setMsg(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form class="row" onSubmit={save} aria-label={`Definition of ${row.table_name}.${row.field_name}`}>
      <input value={v} onInput={(e) => setV((e.target as HTMLInputElement).value)} aria-label={`definition of ${row.table_name}.${row.field_name}`} />
      <button type="submit" class="small">Save</button>{msg && <span role="status">{msg}</span>}
    </form>
  );
}
