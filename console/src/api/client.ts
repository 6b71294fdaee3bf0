// The console's only way to the data: the public /v1 API, typed from its OpenAPI schema.
// The session cookie rides along by itself (same origin); writes carry the CSRF token.
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

let csrf: string | null = null;
let project = "default";
let onUnauthenticated: () => void = () => {};

export function setCsrf(token: string | null) { csrf = token; }
export function setProject(name: string) { project = name; }
export function currentProject() { return project; }
export function whenSignedOut(fn: () => void) { onUnauthenticated = fn; }

// The tenant's projects changed (one was created on Settings): whoever lists them (the
// header's project picker) reloads. Returns the unsubscribe function, for useEffect.
const projectEvents = new EventTarget();
export function projectsChanged() { projectEvents.dispatchEvent(new Event("changed")); }
export function onProjectsChanged(fn: () => void): () => void {
  projectEvents.addEventListener("changed", fn);
  return () => projectEvents.removeEventListener("changed", fn);
}

export function authHeaders(write: boolean): Record<string, string> {
  const h: Record<string, string> = { "X-Learnloop-Project": project };
  if (write && csrf) h["X-CSRF-Token"] = csrf;
  return h;
}

const headers: Middleware = {
  async onRequest({ request }) {
    const write = !["GET", "HEAD"].includes(request.method);
    for (const [k, v] of Object.entries(authHeaders(write))) request.headers.set(k, v);
    return request;
  },
};

export const client = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
client.use(headers);

export async function problemMessage(res: Response, body?: unknown): Promise<string> {
  let data = body;
  if (data === undefined) {
    try { data = await res.clone().json(); } catch { data = undefined; }
  }
  const d = data as { detail?: unknown; title?: unknown } | undefined;
  if (d && typeof d.detail === "string") return d.detail;
  if (res.status >= 500) return "The server had a problem with this request; try again shortly.";
  return `Request failed (${res.status})`;
}

// Unwrap an openapi-fetch result: the data, or an ApiError with the problem's sentence.
export async function ok<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await p;
  if (response.status === 401) onUnauthenticated();
  if (error !== undefined || !response.ok) {
    throw new ApiError(response.status, await problemMessage(response, error));
  }
  return data as T;
}

// For responses openapi-fetch cannot type (downloads) and for plain JSON calls.
export async function raw(path: string, init: RequestInit = {}): Promise<Response> {
  const method = (init.method || "GET").toUpperCase();
  const h = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders(method !== "GET"))) h.set(k, v);
  const res = await fetch(path, { ...init, headers: h, credentials: "same-origin" });
  if (res.status === 401) onUnauthenticated();
  if (!res.ok) throw new ApiError(res.status, await problemMessage(res));
  return res;
}

export async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const h = new Headers(init.headers);
  if (init.body && typeof init.body === "string") h.set("Content-Type", "application/json");
  const res = await raw(path, { ...init, headers: h });
  return (res.status === 204 ? null : await res.json()) as T;
}
