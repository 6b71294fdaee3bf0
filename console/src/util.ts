import { useEffect, useState, useCallback } from "preact/hooks";
import { useLocation } from "preact-iso";
import { currentProject } from "./api/client";

// Data for a page: loading, the value, or the error's sentence; reload() after a write.
export function useApi<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    fn().then(
      (data) => live && setState({ data, loading: false }),
      (e: unknown) => live && setState({ error: e instanceof Error ? e.message : String(e), loading: false }),
    );
    return () => { live = false; };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

// A console URL: the project travels in the query string, so any page can be shared.
export function href(path: string, params: Record<string, string | string[] | undefined | null> = {}): string {
  const q = new URLSearchParams();
  q.set("project", currentProject());
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => x !== "" && q.append(k, x));
    else q.set(k, v);
  }
  return `${path}?${q.toString()}`;
}

export function useQueryParams() {
  const loc = useLocation();
  const params = new URLSearchParams(loc.url.split("?")[1] || "");
  const set = (next: Record<string, string | string[] | undefined>, replace = false) => {
    loc.route(href(loc.path, next), replace);
  };
  return { params, set, path: loc.path };
}

export function fmtDate(s: unknown): string {
  if (typeof s !== "string") return "";
  const d = new Date(s);
  return isNaN(d.getTime()) ? s : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function short(s: unknown, n = 120): string {
  const t = typeof s === "string" ? s : s == null ? "" : JSON.stringify(s);
  return t.length > n ? t.slice(0, n - 1) + "…" : t;
}

export function pct(x: unknown): string {
  return typeof x === "number" ? `${(x * 100).toFixed(1)}%` : "–";
}

// An output image's address, or null: absolute http(s) URLs, and relative ones (the demo's
// pictures, /demo-images/...) resolved against this page's origin; the protocol is checked
// after resolving, so javascript:, data: and the like never reach an <img>.
export function imageSrc(u: unknown): string | null {
  if (typeof u !== "string" || !u.trim()) return null;
  try {
    const p = new URL(u, location.origin);
    return p.protocol === "http:" || p.protocol === "https:" ? p.href : null;
  } catch {
    return null;
  }
}

export function toCsv(columns: string[], rows: Record<string, unknown>[]): string {
  const cell = (v: unknown) => {
    const s = v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    // A leading = + - @ would be a formula in a spreadsheet: quote it as text.
    const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
    return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
}
