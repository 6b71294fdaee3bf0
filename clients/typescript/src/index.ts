/**
 * learnloop's TypeScript client: the HTTP API's own types (generated from its OpenAPI
 * schema into schema.ts by openapi-typescript), a thin typed fetch layer (openapi-fetch)
 * and an event stream that resumes from the last event id it delivered.
 *
 *   const ll = createClient({ baseUrl: "http://127.0.0.1:8000", apiKey: "llk_..." });
 *   const hits = await unwrap(ll.POST("/v1/search", { body: { query: "refund policy", k: 3 } }));
 *
 * Every route, body and response is checked by the compiler against the server's schema;
 * `make test` fails when schema.ts is older than the server.
 */
import createFetchClient from "openapi-fetch";
import type { Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type Schemas = components["schemas"];
export type LearnloopClient = Client<paths>;

export interface ClientOptions {
  /** The server, e.g. http://127.0.0.1:8000 */
  baseUrl: string;
  /** A tenant key (llk_...) or, for /v1/installation routes, the installation key (lli_...). */
  apiKey: string;
  /** The X-Learnloop-Project header (default "default"). */
  project?: string;
  fetch?: typeof globalThis.fetch;
}

/** A typed client: `ll.GET(path, { params })`, `ll.POST(path, { body })`, ... */
export function createClient(options: ClientOptions): LearnloopClient {
  return createFetchClient<paths>({
    baseUrl: options.baseUrl.replace(/\/$/, ""),
    fetch: options.fetch,
    headers: {
      Authorization: `Bearer ${options.apiKey}`,
      "X-Learnloop-Project": options.project ?? "default",
    },
  });
}

/**
 * One search hit: a union discriminated by `owner_type` ("chunk", "entity", "generation",
 * "term"; "document" with `group_by: "document"`), so `if (hit.owner_type === "document")`
 * narrows to the document's fields (`chunks`, `title`, ...).
 */
export type SearchHit = Schemas["SearchResults"]["items"][number];

/** A problem+json answer (4xx/5xx) as an exception. */
export class LearnloopApiError extends Error {
  readonly status: number;
  readonly problem: Record<string, unknown>;

  constructor(status: number, problem: Record<string, unknown>) {
    const detail = typeof problem.detail === "string" ? problem.detail : JSON.stringify(problem.detail ?? problem);
    super(`learnloop API ${status}: ${detail}`);
    this.name = "LearnloopApiError";
    this.status = status;
    this.problem = problem;
  }
}

type Result<T> = { data?: T; error?: unknown; response: Response };

/** The response body of a successful call, or a LearnloopApiError. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw new LearnloopApiError(response.status, (error ?? {}) as Record<string, unknown>);
  }
  return data as T;
}

export interface UploadOptions {
  source?: string;
  title?: string;
  description?: string;
  metadata?: Record<string, unknown>;
  force?: boolean;
}

/** POST /v1/documents as multipart: the file is extracted, chunked and embedded server-side. */
export async function uploadDocument(ll: LearnloopClient, fileName: string, content: Blob | string,
                                     options: UploadOptions = {}): Promise<Record<string, unknown>> {
  const form = new FormData();
  form.append("file", typeof content === "string" ? new Blob([content]) : content, fileName);
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined) form.append(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  return (await unwrap(ll.POST("/v1/documents", {
    body: {} as Schemas["Body_upload_document_v1_documents_post"],
    bodySerializer: () => form,
  }))) as Record<string, unknown>;
}

/** One event of the live stream (the same shape as GET /v1/events items). */
export type StreamEvent = Schemas["OutboxEvent"];

interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(): void;
}
type SocketFactory = new (url: string) => SocketLike;

export interface EventStreamOptions {
  baseUrl: string;
  apiKey: string;
  /** Last event id already seen: the stream starts after it. Omit for "from now on". */
  after?: number;
  eventTypes?: string[];
  entityTypes?: string[];
  onEvent: (event: StreamEvent) => void | Promise<void>;
  /** Server-side refusals (bad key, unknown `after`): no reconnect follows. */
  onError?: (error: LearnloopApiError) => void;
  /** Called each time the server says it is ready (after every (re)connect). */
  onReady?: (after: number) => void;
  reconnectDelayMs?: number;
  /** A WebSocket implementation; default the global one, else the `ws` package (Node 20). */
  WebSocket?: SocketFactory;
}

/**
 * The tenant's events over WebSocket. The key goes in the first message, never in the URL.
 * When the connection drops it reconnects with `after=<last delivered id>`: the server's
 * commit-safe cursor then sends every later event exactly once (no gap, no duplicate).
 */
export class EventStream {
  lastEventId: number | undefined;
  private socket: SocketLike | undefined;
  private stopped = false;
  private readonly opts: EventStreamOptions;

  constructor(opts: EventStreamOptions) {
    this.opts = opts;
    this.lastEventId = opts.after;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const Impl = this.opts.WebSocket ?? (await defaultWebSocket());
    this.connect(Impl);
  }

  /** Drop the connection as a network failure would (the stream reconnects). */
  interrupt(): void {
    this.socket?.close();
  }

  close(): void {
    this.stopped = true;
    this.socket?.close();
  }

  private url(): string {
    const u = new URL(this.opts.baseUrl.replace(/^http/, "ws").replace(/\/$/, "") + "/v1/events/stream");
    if (this.lastEventId !== undefined) u.searchParams.set("after", String(this.lastEventId));
    for (const t of this.opts.eventTypes ?? []) u.searchParams.append("event_type", t);
    for (const t of this.opts.entityTypes ?? []) u.searchParams.append("entity_type", t);
    return u.toString();
  }

  private connect(Impl: SocketFactory): void {
    const ws = new Impl(this.url());
    this.socket = ws;
    let refused = false;
    let chain = Promise.resolve();
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", key: this.opts.apiKey }));
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as Record<string, unknown>;
      if (msg.type === "ready") {
        this.opts.onReady?.(Number(msg.after));
      } else if (msg.type === "event") {
        const { type: _kind, ...event } = msg;
        // Deliver in order, one at a time, and only then count the event as seen.
        chain = chain.then(async () => {
          await this.opts.onEvent(event as unknown as StreamEvent);
          this.lastEventId = Number(event.id);
        });
      } else if (msg.type === "error") {
        refused = true;
        this.opts.onError?.(new LearnloopApiError(Number(msg.status), msg));
      }
    };
    ws.onerror = () => undefined; // onclose follows
    ws.onclose = () => {
      if (this.stopped || refused) return;
      void chain.then(() => {
        if (!this.stopped) setTimeout(() => this.connect(Impl), this.opts.reconnectDelayMs ?? 500);
      });
    };
  }
}

async function defaultWebSocket(): Promise<SocketFactory> {
  const g = (globalThis as { WebSocket?: SocketFactory }).WebSocket;
  if (g) return g;
  const mod = await import("ws");
  return mod.default as unknown as SocketFactory;
}
