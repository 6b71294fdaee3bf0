import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { ErrorBox, Loading, Page } from "../components/ui";
import { fmtDate, href, short, useApi, useQueryParams } from "../util";

const FIELDS: [string, string, string][] = [
  ["text", "Text in prompt or output", "refund"], ["kind", "Kind", "chat"], ["model", "Model", "gpt-4o"],
  ["user_ref", "User", "user-42"], ["session_ref", "Session", "s-1"], ["tag", "Feedback tag", "TOO_DARK"],
  ["since", "Since", "2024-01-01"], ["until", "Until", "2024-12-31"],
];

export function Generations() {
  const { params, set } = useQueryParams();
  const q = Object.fromEntries(FIELDS.map(([k]) => [k, params.get(k) || ""]));
  const links = params.getAll("link");
  const verdict = params.get("verdict") || "";
  const after = params.get("after") || "";
  const [draft, setDraft] = useState<Record<string, string>>({ ...q, link: links.join(" "), verdict, where: params.getAll("where").join(" ") });
  const key = params.toString();
  const res = useApi(() => ok(client.GET("/v1/generations", {
    params: {
      query: {
        text: q.text || undefined, kind: q.kind || undefined, model: q.model || undefined,
        user_ref: q.user_ref || undefined, session_ref: q.session_ref || undefined, tag: q.tag ? [q.tag] : undefined,
        since: q.since || undefined, until: q.until || undefined, link: links, where: params.getAll("where"),
        verdict: verdict ? [verdict as "POSITIVE"] : undefined, after: after || undefined, limit: 50,
      },
    },
  })), [key]);

  const apply = (e: Event) => {
    e.preventDefault();
    const next: Record<string, string | string[]> = {};
    for (const [k] of FIELDS) if (draft[k]) next[k] = draft[k].trim();
    if (draft.verdict) next.verdict = draft.verdict;
    const l = (draft.link || "").split(/\s+/).filter(Boolean);
    if (l.length) next.link = l;
    const w = (draft.where || "").split(/\s+/).filter(Boolean);
    if (w.length) next.where = w;
    set(next);
  };
  const input = (k: string) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });

  return (
    <Page title="Generations">
      <form class="filters" onSubmit={apply} aria-label="Filter generations">
        {FIELDS.map(([k, label, ph]) => (
          <label>{label}
            <input name={k} value={draft[k]} onInput={input(k)} placeholder={ph} type={k === "since" || k === "until" ? "date" : "text"} />
          </label>
        ))}
        <label>Links (TYPE:ID, space separated)
          <input name="link" value={draft.link} onInput={input("link")} placeholder="client:123 loan:456" />
        </label>
        <label>Conditions (config/context, space separated)
          <input name="where" value={draft.where} onInput={input("where")} placeholder="style_preset=CYBERPUNK_DARK efficiency<0.08" />
        </label>
        <label>Verdict
          <select name="verdict" value={draft.verdict} onChange={input("verdict")}>
            <option value="">any</option><option>POSITIVE</option><option>NEGATIVE</option>
            <option>NEUTRAL</option><option>UNRATED</option>
          </select>
        </label>
        <button type="submit">Apply filters</button>
        <a href={href("/generations")} class="button secondary">Clear</a>
      </form>
      <ErrorBox error={res.error} />
      {res.loading && !res.data ? <Loading /> : res.data && (
        <>
          <div class="table-wrap">
            <table>
              <caption>{res.data.items.length} generations{after ? " (older page)" : ""}</caption>
              <thead><tr><th scope="col">Created</th><th scope="col" class="nowrap">Kind</th><th scope="col">Prompt</th>
                <th scope="col">Output</th><th scope="col" class="nowrap">Model</th><th scope="col" class="nowrap">Iteration</th></tr></thead>
              <tbody>
                {res.data.items.map((g) => (
                  <tr>
                    <td class="nowrap">{fmtDate(g.created_at)}</td>
                    <td class="nowrap">{short(g.kind, 24)}</td>
                    <td><a href={href(`/generations/${g.id}`)}>{short(g.prompt ?? "(no prompt)", 90) || "(empty)"}</a></td>
                    <td>{short(g.output_text ?? g.output_url, 90)}</td>
                    <td class="nowrap" title={g.model ?? undefined}>{short(g.model ?? "–", 28)}</td>
                    <td class="nowrap">{g.iteration}</td>
                  </tr>
                ))}
                {!res.data.items.length && <tr><td colSpan={6} class="muted">No generation matches these filters.</td></tr>}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages">
            {after && <a href={href("/generations", { ...Object.fromEntries(params), after: undefined, link: links, where: params.getAll("where") })}>Newest</a>}
            {res.data.next_after && (
              <a href={href("/generations", { ...Object.fromEntries(params), link: links, where: params.getAll("where"), after: res.data.next_after })} rel="next">Older →</a>
            )}
          </nav>
        </>
      )}
    </Page>
  );
}
