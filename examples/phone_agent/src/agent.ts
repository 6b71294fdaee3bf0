// The phone agent of seed 002 on learnloop: accounts are tenants (provisioned over HTTP
// with the installation key), each with its own knowledge base; a call turn is
// transcript -> account-scoped search -> answer -> logged generation, measured against
// the seed's budget (search < 100 ms, whole turn < 500 ms). A slow search reaches the
// app as a `search.slow` event on the live stream (threshold set per account), which
// is the seed's "alert if latency > 200 ms" without polling.
import { performance } from "node:perf_hooks";

import { createClient, EventStream, unwrap, uploadDocument } from "@learnloop/client";
import type { LearnloopClient, Schemas, StreamEvent } from "@learnloop/client";

import type { Account } from "./knowledge.js";

export const SEARCH_BUDGET_MS = 100;
export const TURN_BUDGET_MS = 500;
export const ALERT_MS = 200;

export interface ProvisionedAccount {
  name: string;
  key: string;
  ll: LearnloopClient;
}

/** Create the account's tenant with its first key, set its alert threshold, load its documents. */
export async function provisionAccount(baseUrl: string, installationKey: string, account: Account,
                                       opts: { suffix?: string; slowSearchMs?: number } = {}): Promise<ProvisionedAccount> {
  const admin = createClient({ baseUrl, apiKey: installationKey });
  const name = account.name + (opts.suffix ?? "");
  const made = await unwrap(admin.POST("/v1/installation/tenants", {
    body: { name, key_name: "phone-agent backend", scopes: ["admin"], slow_search_ms: opts.slowSearchMs ?? ALERT_MS },
  }));
  const ll = createClient({ baseUrl, apiKey: made.key.key, project: "phone-agent" });
  for (const doc of account.documents) {
    const res = await uploadDocument(ll, doc.file, doc.text, { title: doc.title });
    if (res.status !== "processed") throw new Error(`${name}: ${doc.file} was not ingested: ${JSON.stringify(res)}`);
  }
  return { name, key: made.key.key, ll };
}

export interface Turn {
  transcript: string;
  answer: string;
  sources: string[];
  /** The search as the app sees it (HTTP round trip) and as the server measured it. */
  searchMs: number;
  serverSearchMs: number;
  turnMs: number;
}

/** The LLM's stand-in: the best passage's sentences that share the most words with the question. */
export function composeAnswer(question: string, hits: Schemas["ChunkHit"][]): string {
  const top = hits[0];
  if (!top) return "I'm sorry, I don't have that information. Let me transfer you to a colleague.";
  const words = new Set(question.toLowerCase().match(/[a-z]{4,}/g) ?? []);
  const sentences = String(top.content ?? "").replace(/^#.*$/gm, "").split(/(?<=\.)\s+/).map((s) => s.trim())
    .filter(Boolean);
  const score = (s: string) => (s.toLowerCase().match(/[a-z]{4,}/g) ?? []).filter((w) => words.has(w)).length;
  const best = [...sentences].sort((a, b) => score(b) - score(a)).slice(0, 2);
  return best.join(" ");
}

export class PhoneAgent {
  readonly turns: Turn[] = [];

  constructor(readonly account: ProvisionedAccount) {}

  async handleTurn(callId: string, transcript: string): Promise<Turn> {
    const t0 = performance.now();
    const res = await unwrap(this.account.ll.POST("/v1/search", {
      body: { query: transcript, k: 3, owner_types: ["chunk"] },
    }));
    const searchMs = performance.now() - t0;
    // owner_types ["chunk"]: every hit is a chunk (the type guard narrows the union for TypeScript)
    const chunks = res.items.filter((h): h is Schemas["ChunkHit"] => h.owner_type === "chunk");
    const answer = composeAnswer(transcript, chunks);
    const sources = chunks.map((h) => String(h.title ?? h.file_name ?? h.owner_id));
    await unwrap(this.account.ll.POST("/v1/generations", {
      body: {
        kind: "call_turn", prompt: transcript, output_text: answer, session_ref: callId, model: "template-v1",
        context: { search_ms: searchMs, server_search_ms: res.ms, search_path: res.path, sources },
      },
    }));
    const turn: Turn = { transcript, answer, sources, searchMs, serverSearchMs: res.ms, turnMs: performance.now() - t0 };
    this.turns.push(turn);
    return turn;
  }

  async callEnded(callId: string, caller: string, turns: number): Promise<void> {
    await unwrap(this.account.ll.POST("/v1/events", {
      body: { type: "call.ended", entity_type: "call", entity_id: callId, user: caller, payload: { turns } },
    }));
  }

  /** The account's search metrics as learnloop stored them (every server process). */
  async metrics(): Promise<Schemas["SearchStats"]> {
    return unwrap(this.account.ll.GET("/v1/stats/search", { params: { query: { days: 1 } } }));
  }
}

/** Subscribe to an account's `search.slow` events: the latency alert. */
export async function watchLatency(baseUrl: string, account: ProvisionedAccount,
                                   onAlert: (e: StreamEvent) => void): Promise<EventStream> {
  const stream = new EventStream({ baseUrl, apiKey: account.key, eventTypes: ["search.slow"], onEvent: onAlert });
  await stream.start();
  return stream;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))] as number;
}
