import type { ComponentChildren } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { marked } from "marked";
import DOMPurify from "dompurify";
import { imageSrc, toCsv } from "../util";

export function Page({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  useEffect(() => { document.title = `${title} · learnloop`; }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title">{title}</h1>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function ErrorBox({ error }: { error?: string | null }) {
  if (!error) return null;
  return <p class="error" role="alert">{error}</p>;
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p class="muted" aria-live="polite">{what}…</p>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

export function JsonView({ label, value, open = false }: { label: string; value: unknown; open?: boolean }) {
  const empty = value == null || (typeof value === "object" && Object.keys(value as object).length === 0);
  return (
    <details class="json" open={open && !empty}>
      <summary>{label}{empty ? " (empty)" : ""}</summary>
      {/* A text node: whatever the JSON holds is shown, never parsed as markup. */}
      <pre tabIndex={0}>{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

// Links and images only to http(s) (a relative src would hit this server; javascript: runs).
// Attributes are dropped rather than nodes removed: removing nodes inside a DOMPurify hook
// cuts its walk short.
const HTTP_ONLY = /^https?:\/\//i;
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "IMG" && !HTTP_ONLY.test(node.getAttribute("src") || "")) node.removeAttribute("src");
  if (node.tagName === "A") {
    if (!HTTP_ONLY.test(node.getAttribute("href") || "")) node.removeAttribute("href");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

// Raw HTML inside user markdown is shown as text, never parsed: the sanitizer then only
// ever sees markup that marked wrote (and still cleans its URLs).
const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
marked.use({ renderer: { html: ({ text }) => escapeHtml(text) } });

export function Markdown({ text }: { text: string | null | undefined }) {
  const html = useMemo(() => {
    const out = marked.parse(text || "", { async: false, gfm: true }) as string;
    return DOMPurify.sanitize(out, {
      FORBID_TAGS: ["style", "form", "input", "button", "iframe", "svg", "math"], FORBID_ATTR: ["style", "srcset"],
      ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    });
  }, [text]);
  return <div class="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

export function SafeImage({ url, alt, class: cls }: { url: unknown; alt: string; class?: string }) {
  const src = imageSrc(url);
  if (!src) return null;
  return <img src={src} alt={alt} class={cls} loading="lazy" referrerpolicy="no-referrer" />;
}

export function Verdict({ v }: { v: string | null | undefined }) {
  const label = v || "unrated";
  return <span class={`verdict v-${label.toLowerCase()}`}>{label}</span>;
}

export function Tags({ tags }: { tags: unknown }) {
  if (!Array.isArray(tags) || !tags.length) return null;
  return <span class="tags">{tags.map((t) => <span class="tag">{String(t)}</span>)}</span>;
}

export function download(filename: string, text: string, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// csv: false leaves a column out of the CSV download (controls such as a button: no data).
export type Column = { key: string; label?: string; render?: (row: Record<string, unknown>) => ComponentChildren; csv?: false };

export function DataTable({ caption, columns, rows, csv }: {
  caption: string; columns: Column[]; rows: Record<string, unknown>[]; csv?: string;
}) {
  return (
    <div class="table-wrap">
      <table>
        <caption>
          {caption}
          {csv && (
            <button type="button" class="small" onClick={() => download(`${csv}.csv`, toCsv(columns.filter((c) => c.csv !== false).map((c) => c.key), rows))}>
              Download CSV
            </button>
          )}
        </caption>
        <thead><tr>{columns.map((c) => <th scope="col">{c.label || c.key}</th>)}</tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr>{columns.map((c) => <td>{c.render ? c.render(r) : fmtCell(r[c.key])}</td>)}</tr>
          ))}
          {!rows.length && <tr><td colSpan={columns.length} class="muted">No rows.</td></tr>}
        </tbody>
      </table>
    </div>
  );
}

function fmtCell(v: unknown): string {
  if (v == null) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// Two clicks instead of window.confirm(): no modal dialog, and keyboard users see the step.
export function ConfirmButton({ label, confirm, onConfirm }: { label: string; confirm: string; onConfirm: () => void }) {
  const [armed, setArmed] = useState(false);
  return armed
    ? <span class="row"><button type="button" class="small" onClick={() => { setArmed(false); onConfirm(); }}>{confirm}</button>
        <button type="button" class="small secondary" onClick={() => setArmed(false)}>Cancel</button></span>
    : <button type="button" class="small secondary" onClick={() => setArmed(true)}>{label}</button>;
}
