import { useEffect, useRef, useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { LineageTree, type TreeNode } from "../components/tree";
import { ErrorBox, Loading, Page, SafeImage, Tags, Verdict } from "../components/ui";
import { useSession } from "../session";
import { fmtDate, href, useApi, useQueryParams } from "../util";

type Item = Record<string, unknown> & { id: string; generation_id: string; tags: string[] };

function typing(e: KeyboardEvent): boolean {
  const t = e.target as HTMLElement | null;
  return !!t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

export function ReviewQueue() {
  const s = useSession();
  const { params, set } = useQueryParams();
  const filters = {
    sentiment: params.get("sentiment") || "NEGATIVE", tag: params.get("tag") || "",
    source: params.get("source") || "", older_than_days: params.get("older_than_days") || "",
  };
  const key = params.toString();
  const q = useApi(() => ok(client.GET("/v1/review-queue", {
    params: {
      query: {
        sentiment: filters.sentiment, tag: filters.tag || undefined,
        source: (filters.source || undefined) as "user" | undefined,
        older_than_days: filters.older_than_days ? Number(filters.older_than_days) : undefined, limit: 100,
      },
    },
  })), [key]);
  const items = (q.data?.items || []) as Item[];
  const [pos, setPos] = useState(0);
  const [notes, setNotes] = useState("");
  const [improved, setImproved] = useState<"" | "yes" | "no">("");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const notesRef = useRef<HTMLTextAreaElement>(null);
  const listRef = useRef<HTMLOListElement>(null);
  const cur = items[Math.min(pos, Math.max(items.length - 1, 0))];

  const review = async (ids: string[], imp: "" | "yes" | "no" = improved) => {
    if (!ids.length) return;
    // Read the textarea itself: the key handler is re-bound after each render, so a key
    // pressed right after typing would otherwise send the notes of the render before
    // (a fast typist's last character was lost).
    const text = notesRef.current?.value ?? notes;
    setMsg(null);
    const review = { notes: text || null, improved: imp === "" ? null : imp === "yes", by: `console:${s.key_name}` };
    try {
      // One item: its own route; several: one all-or-nothing call (none marked if one fails).
      if (ids.length === 1) {
        await ok(client.POST("/v1/feedback/{feedback_id}/review", { params: { path: { feedback_id: ids[0] } }, body: review }));
      } else {
        await ok(client.POST("/v1/feedback/review", { body: { ids, ...review } }));
      }
      setMsg({ ok: true, text: ids.length === 1 ? "Marked as reviewed." : `${ids.length} items marked as reviewed.` });
      setNotes("");
      setImproved("");
      setSelected(new Set());
      q.reload();
    } catch (err) {
      setMsg({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  };

  // The position lives in a ref too, moved by the key handler itself: keys pressed faster
  // than a render (x j x j x) must act on the item the previous key moved to, not on the
  // one the last render saw.
  const posRef = useRef(0);
  posRef.current = Math.min(posRef.current, Math.max(items.length - 1, 0));
  const moveTo = (p: number) => { posRef.current = p; setPos(p); };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (typing(e)) {
        if (e.key === "Escape") (e.target as HTMLElement).blur();
        return;
      }
      const it = items[posRef.current];
      if (e.key === "j") moveTo(Math.min(posRef.current + 1, items.length - 1));
      else if (e.key === "k") moveTo(Math.max(posRef.current - 1, 0));
      else if (e.key === "n" && s.can_write) { e.preventDefault(); notesRef.current?.focus(); }
      else if (e.key === "x" && it) setSelected((old) => { const n = new Set(old); n.has(it.id) ? n.delete(it.id) : n.add(it.id); return n; });
      else if (e.key === "y" && it && s.can_write) review([it.id], "yes");
      else if (e.key === "u" && it && s.can_write) review([it.id], "no");
      else if (e.key === "r" && it && s.can_write) review([it.id]);
      else return;
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [items, notes, improved]);

  useEffect(() => {
    listRef.current?.querySelector<HTMLElement>(`[data-pos="${pos}"]`)?.scrollIntoView({ block: "nearest" });
  }, [pos]);

  const setFilter = (k: string) => (e: Event) => set({ ...filters, [k]: (e.target as HTMLInputElement).value }, true);

  return (
    <Page title="Review queue">
      <form class="filters" aria-label="Filter the queue" onSubmit={(e) => e.preventDefault()}>
        <label>Sentiment
          <select value={filters.sentiment} onChange={setFilter("sentiment")}>
            <option>NEGATIVE</option><option>NEUTRAL</option><option>POSITIVE</option>
          </select>
        </label>
        <label>Tag<input value={filters.tag} onChange={setFilter("tag")} placeholder="TOO_DARK" /></label>
        <label>Source
          <select value={filters.source} onChange={setFilter("source")}>
            <option value="">any</option><option>user</option><option>admin</option><option>automatic</option>
          </select>
        </label>
        <label>Waiting at least (days)<input type="number" min="0" value={filters.older_than_days} onChange={setFilter("older_than_days")} /></label>
      </form>
      <p class="muted keys">Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous · <kbd>n</kbd> notes · <kbd>r</kbd> mark reviewed ·
        <kbd>y</kbd>/<kbd>u</kbd> reviewed and improved yes/no · <kbd>x</kbd> select for bulk · <kbd>Esc</kbd> leave a field</p>
      <ErrorBox error={q.error} />
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
      {q.loading && !q.data ? <Loading /> : (
        <div class="review">
          <div>
            <h2 class="small-h">{items.length}{q.data?.next_offset ? "+" : ""} waiting</h2>
            {!items.length && <p class="empty">Nothing waiting for review with these filters.</p>}
            <ol class="queue" ref={listRef}>
              {items.map((it, i) => (
                <li data-pos={i} data-id={it.id} class={i === pos ? "current" : ""} aria-current={i === pos ? "true" : undefined}>
                  {s.can_write && <input type="checkbox" aria-label={`select item ${i + 1}`} checked={selected.has(it.id)}
                    onChange={() => setSelected((old) => { const n = new Set(old); n.has(it.id) ? n.delete(it.id) : n.add(it.id); return n; })} />}
                  <button type="button" class="linklike" onClick={() => moveTo(i)}>
                    <Verdict v={it.sentiment as string} /> <Tags tags={it.tags} /> {String(it.comment || it.prompt || "").slice(0, 80)}
                  </button>
                </li>
              ))}
            </ol>
            {s.can_write && selected.size > 0 && (
              <div class="card bulk" role="group" aria-label="Bulk actions">
                <p>{selected.size} selected · the review notes and "Improved?" of the form apply to all of them</p>
                <div class="row">
                  <button type="button" onClick={() => review([...selected])}>Mark {selected.size} selected as reviewed</button>
                  <button type="button" class="secondary" onClick={() => review([...selected], "yes")}>… and improved</button>
                  <button type="button" class="secondary" onClick={() => review([...selected], "no")}>… not improved</button>
                  <button type="button" class="secondary" onClick={() => setSelected(new Set())}>Clear selection</button>
                </div>
              </div>
            )}
            {s.can_write && items.length > 1 && selected.size < items.length && (
              <button type="button" class="small secondary" onClick={() => setSelected(new Set(items.map((it) => it.id)))}>Select all {items.length}</button>
            )}
          </div>
          {cur && <ReviewItem item={cur} key={cur.id}
            notesSlot={s.can_write ? (
              <form class="card" aria-label="Review this item" onSubmit={(e) => { e.preventDefault(); review([cur.id]); }}>
                <label for="review-notes">Review notes</label>
                <textarea id="review-notes" ref={notesRef} rows={3} value={notes} onInput={(e) => setNotes((e.target as HTMLTextAreaElement).value)} />
                <fieldset class="row"><legend>Improved?</legend>
                  {(["", "yes", "no"] as const).map((v) => (
                    <label class="inline"><input type="radio" name="improved" checked={improved === v} onChange={() => setImproved(v)} /> {v || "not said"}</label>
                  ))}
                </fieldset>
                <button type="submit">Mark reviewed</button>
              </form>
            ) : <p class="muted">This key is read only: reviewing needs a key with the ingest scope.</p>} />}
        </div>
      )}
    </Page>
  );
}

function ReviewItem({ item, notesSlot }: { item: Item; notesSlot: preact.ComponentChildren }) {
  const s = useSession();
  const tree = useApi(() => ok(client.GET("/v1/generations/{generation_id}/tree", { params: { path: { generation_id: item.generation_id } } })), [item.generation_id]);
  const links = (item.links || {}) as Record<string, string>;
  return (
    <article class="review-item" aria-label="Selected feedback">
      <h2 class="small-h">Feedback from {String(item.source)} · {fmtDate(item.created_at)}</h2>
      <p><Verdict v={item.sentiment as string} /> {item.rating != null && `rating ${item.rating}/5`} <Tags tags={item.tags} /></p>
      {item.comment != null && <p class="text"><strong>Comment:</strong> {String(item.comment)}</p>}
      {item.instruction != null && <p class="text"><strong>Instruction:</strong> {String(item.instruction)}</p>}
      <p>Links: {Object.keys(links).length ? Object.entries(links).map(([k, v]) => <a class="tag" href={href("/generations", { link: `${k}:${v}` })}>{k}:{v}</a>) : "none"}</p>
      <h3>Prompt</h3><pre class="text" tabIndex={0}>{String(item.prompt ?? "")}</pre>
      <h3>Output</h3>
      <SafeImage url={item.output_url} alt="The output under review" class="output-image" />
      {item.output_text != null || !item.output_url ? <pre class="text clip" tabIndex={0}>{String(item.output_text ?? "")}</pre>
        : <p class="muted">output URL: <code>{String(item.output_url)}</code></p>}
      <p><a href={href(`/generations/${item.generation_id}`)}>Open the generation</a></p>
      {notesSlot}
      {s.can_write && <ImproveForms feedbackId={item.id} />}
      {tree.data && <details><summary>Lineage tree</summary><LineageTree root={tree.data as unknown as TreeNode} current={item.generation_id} /></details>}
    </article>
  );
}

// Fix the cause, linked to the feedback it answers: a dictionary term or a catalog definition.
function ImproveForms({ feedbackId }: { feedbackId: string }) {
  const [t, setT] = useState({ word: "", table_name: "", field_name: "", definition: "" });
  const [c, setC] = useState({ path: "", definition: "" });
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const run = async (fn: () => Promise<unknown>, done: string) => {
    setMsg(null);
    try { await fn(); setMsg({ ok: true, text: done }); } catch (e) { setMsg({ ok: false, text: e instanceof Error ? e.message : String(e) }); }
  };
  const addTerm = (e: Event) => {
    e.preventDefault();
    run(() => ok(client.POST("/v1/dictionary/terms", {
      body: { word: t.word, table_name: t.table_name || null, field_name: t.field_name || null, definition: t.definition || null, because_of: feedbackId },
    })), `Term "${t.word}" saved, linked to this feedback.`);
  };
  const fixField = (e: Event) => {
    e.preventDefault();
    const parts = c.path.split(".");
    if (parts.length !== 3) { setMsg({ ok: false, text: "Write the field as schema.table.field" }); return; }
    run(() => ok(client.PUT("/v1/catalog/fields/{schema_name}/{table_name}/{field_name}", {
      params: { path: { schema_name: parts[0], table_name: parts[1], field_name: parts[2] } },
      body: { definition: c.definition, because_of: feedbackId, create: true },
    })), `Definition of ${c.path} saved, linked to this feedback.`);
  };
  return (
    <details class="card">
      <summary>Fix the cause: dictionary term or catalog definition</summary>
      <form onSubmit={addTerm} aria-label="Add a dictionary term">
        <div class="row">
          <label>Word<input required value={t.word} onInput={(e) => setT({ ...t, word: (e.target as HTMLInputElement).value })} /></label>
          <label>Table<input value={t.table_name} onInput={(e) => setT({ ...t, table_name: (e.target as HTMLInputElement).value })} /></label>
          <label>Field<input value={t.field_name} onInput={(e) => setT({ ...t, field_name: (e.target as HTMLInputElement).value })} /></label>
        </div>
        <label>Definition<input value={t.definition} onInput={(e) => setT({ ...t, definition: (e.target as HTMLInputElement).value })} /></label>
        <button type="submit">Add term</button>
      </form>
      <form onSubmit={fixField} aria-label="Define a catalog field">
        <div class="row">
          <label>Field (schema.table.field)<input required value={c.path} onInput={(e) => setC({ ...c, path: (e.target as HTMLInputElement).value })} placeholder="public.loans.status" /></label>
          <label>Definition<input required value={c.definition} onInput={(e) => setC({ ...c, definition: (e.target as HTMLInputElement).value })} /></label>
        </div>
        <button type="submit">Save definition</button>
      </form>
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
    </details>
  );
}
