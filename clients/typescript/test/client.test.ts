// The client against a live `learnloop serve` (started by tests/test_typescript_client.py,
// which passes LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY). Each run provisions its own
// tenant over HTTP with the installation key, as a SaaS onboarding an account would.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { createClient, EventStream, LearnloopApiError, unwrap, uploadDocument } from "../src/index.js";
import type { LearnloopClient, SearchHit, StreamEvent } from "../src/index.js";

const baseUrl = process.env.LEARNLOOP_URL ?? "";
const installationKey = process.env.LEARNLOOP_INSTALLATION_KEY ?? "";
let key = "";
let ll: LearnloopClient;

before(async () => {
  assert.ok(baseUrl && installationKey, "LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY must be set");
  const admin = createClient({ baseUrl, apiKey: installationKey });
  const made = await unwrap(admin.POST("/v1/installation/tenants", {
    body: { name: `ts-client-${Date.now()}`, key_name: "ts tests", scopes: ["admin"] },
  }));
  key = made.key.key;
  ll = createClient({ baseUrl, apiKey: key, project: "support" });
});

test("documents are uploaded and found by search", async () => {
  const doc = await uploadDocument(ll, "refunds.md",
    "# Refunds\n\nA customer can ask for a refund within 30 days of the purchase. "
    + "Refunds are paid back to the original card within five business days.", { title: "Refund policy" });
  assert.equal(doc.status, "processed");
  const res = await unwrap(ll.POST("/v1/search", { body: { query: "how long do refunds take", k: 3 } }));
  assert.ok(res.items.length >= 1);
  assert.equal(res.items[0]?.owner_type, "chunk");
  assert.match(String(res.items[0]?.content), /refund/i);
  const docs = await unwrap(ll.GET("/v1/documents", { params: { query: { limit: 10 } } }));
  assert.equal(docs.items.length, 1);
});

test("feedback lands in the review queue and leaves it when reviewed", async () => {
  const g = await unwrap(ll.POST("/v1/generations", {
    body: { kind: "call_turn", prompt: "When do I get my money back?", output_text: "Never.",
            user_ref: "caller-1" },
  }));
  const fb = await unwrap(ll.POST("/v1/generations/{generation_id}/feedback", {
    params: { path: { generation_id: g.id } },
    body: { sentiment: "NEGATIVE", tags: ["WRONG_POLICY"], comment: "refunds take five days" },
  }));
  const queue = await unwrap(ll.GET("/v1/review-queue", { params: { query: {} } }));
  assert.ok(queue.items.some((it) => it.id === fb.id));
  const reviewed = await unwrap(ll.POST("/v1/feedback/{feedback_id}/review", {
    params: { path: { feedback_id: fb.id } }, body: { notes: "prompt fixed", improved: true },
  }));
  assert.equal(reviewed.processed, true);
  const after = await unwrap(ll.GET("/v1/review-queue", { params: { query: {} } }));
  assert.ok(!after.items.some((it) => it.id === fb.id));
});

test("app events: emitted, listed, refused when outside the pattern", async () => {
  const ev = await unwrap(ll.POST("/v1/events", {
    body: { type: "call.ended", entity_type: "call", entity_id: "c-1", user: "caller-1", payload: { seconds: 42 } },
  }));
  assert.equal(ev.event_type, "call.ended");
  const listed = await unwrap(ll.GET("/v1/events", { params: { query: { event_type: ["call.ended"] } } }));
  assert.deepEqual(listed.items.map((e) => e.entity_id), ["c-1"]);
  assert.equal(listed.items[0]?.actor, "caller-1");
  await assert.rejects(unwrap(ll.POST("/v1/events", { body: { type: "Call Ended" } })),
    (err: unknown) => err instanceof LearnloopApiError && err.status === 422);
});

test("a tenant key cannot call installation routes", async () => {
  await assert.rejects(unwrap(ll.GET("/v1/installation/tenants")),
    (err: unknown) => err instanceof LearnloopApiError && err.status === 403);
});

test("the event stream resumes from the last event id without gaps or duplicates", async () => {
  const seen: StreamEvent[] = [];
  let readies = 0;
  const waitFor = async (n: number) => {
    const deadline = Date.now() + 15000;
    while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, n);
  };
  const emit = (id: string) => unwrap(ll.POST("/v1/events", {
    body: { type: "turn.completed", entity_type: "call", entity_id: id },
  }));
  const stream = new EventStream({ baseUrl, apiKey: key, after: 0, eventTypes: ["turn.completed"],
    onEvent: (e) => { seen.push(e); }, onReady: () => { readies += 1; }, reconnectDelayMs: 200 });
  await stream.start();
  try {
    await emit("t-1");
    await emit("t-2");
    await waitFor(2);
    stream.interrupt(); // the connection drops; events keep happening
    await emit("t-3");
    await emit("t-4");
    await waitFor(4);
    assert.ok(readies >= 2, "it reconnected");
  } finally {
    stream.close();
  }
  assert.deepEqual(seen.map((e) => e.entity_id), ["t-1", "t-2", "t-3", "t-4"]);
  assert.equal(new Set(seen.map((e) => e.id)).size, 4);
  assert.equal(stream.lastEventId, seen[3]?.id);
});

test("search metrics and settings of the tenant over HTTP", async () => {
  await unwrap(ll.PUT("/v1/settings", { body: { slow_search_ms: 250 } }));
  const settings = await unwrap(ll.GET("/v1/settings"));
  assert.equal(settings.effective_slow_search_ms, 250);
  const stats = await unwrap(ll.GET("/v1/stats/search", { params: { query: { days: 1 } } }));
  assert.ok(stats.searches >= 1);
});

test("project settings: read, change the language (admin), a language PostgreSQL lacks is a 422", async () => {
  // Its own project: the language re-stems this project's rows only, not "support"'s.
  await unwrap(ll.POST("/v1/projects", { body: { name: "ajustes-es" } }));  // reads never create a project
  const es = createClient({ baseUrl, apiKey: key, project: "ajustes-es" });
  const before = await unwrap(es.GET("/v1/project/settings"));
  assert.equal(before.project, "ajustes-es");
  assert.ok(before.available_languages.includes("spanish"), before.available_languages.join(","));
  assert.notEqual(before.language, "spanish");
  assert.ok(before.model_in_use.length > 0);
  const changed = await unwrap(es.PUT("/v1/project/settings", { body: { language: "spanish" } }));
  assert.equal(changed.language, "spanish");
  assert.equal(typeof changed.restemmed, "number");
  const after = await unwrap(es.GET("/v1/project/settings"));
  assert.equal(after.language, "spanish");
  assert.equal(after.embedding_model, before.embedding_model);  // fields left out keep their value
  await assert.rejects(unwrap(es.PUT("/v1/project/settings", { body: { language: "klingon" } })),
    (err: unknown) => err instanceof LearnloopApiError && err.status === 422 && /klingon/.test(err.message));
  assert.equal((await unwrap(es.GET("/v1/project/settings"))).language, "spanish");  // nothing changed
  // Another project of the tenant keeps its own language.
  assert.equal((await unwrap(ll.GET("/v1/project/settings"))).language, before.language);
});

// Every hit kind, narrowed by owner_type; `never` makes a new kind a compile error here.
function describeHit(hit: SearchHit): string {
  switch (hit.owner_type) {
    case "chunk": return `chunk ${hit.chunk_index ?? "?"} of ${hit.document_id ?? "?"}`;
    case "document": return `document ${hit.title ?? hit.document_id} (${hit.chunks.length} chunks)`;
    case "entity": return `entity ${hit.owner_id}`;
    case "generation": return `generation ${hit.owner_id}`;
    case "term": return `term ${hit.owner_id}`;
    default: {
      const unknownKind: never = hit;
      return String(unknownKind);
    }
  }
}

test("search hits narrow by owner_type: chunks, and documents with group_by", async () => {
  const kb = createClient({ baseUrl, apiKey: key, project: "grouped" });
  await uploadDocument(kb, "shipping.md", "# Shipping\n\nParcels ship within two days. Express parcels ship the same day."
    + "\n\nInternational parcels take a week and pay customs at delivery.", { title: "Shipping policy" });
  await uploadDocument(kb, "returns.md", "# Returns\n\nParcels can be returned within 30 days; the return label is free.",
    { title: "Returns policy" });
  const chunks = await unwrap(kb.POST("/v1/search", { body: { query: "how fast do parcels ship", k: 3 } }));
  assert.ok(chunks.items.length >= 1);
  for (const hit of chunks.items) {
    assert.equal(hit.owner_type, "chunk");
    if (hit.owner_type !== "chunk") continue;
    assert.ok(hit.document_id && typeof hit.content === "string", describeHit(hit));  // ChunkHit's own fields
  }
  const docs = await unwrap(kb.POST("/v1/search", {
    body: { query: "how fast do parcels ship", k: 5, group_by: "document", chunks_per_document: 2 },
  }));
  assert.equal(docs.items.length, 2);
  const titles: string[] = [];
  for (const hit of docs.items) {
    assert.equal(hit.owner_type, "document");
    if (hit.owner_type !== "document") continue;
    // Narrowed: a DocumentHit, with its best chunks (ChunkHits) inside.
    titles.push(String(hit.title));
    assert.ok(hit.chunks.length >= 1 && hit.chunks.length <= 2, describeHit(hit));
    for (const c of hit.chunks) {
      assert.equal(c.owner_type, "chunk");
      assert.equal(c.document_id, hit.document_id);
    }
  }
  assert.equal(titles[0], "Shipping policy");
  assert.deepEqual([...titles].sort(), ["Returns policy", "Shipping policy"]);
  assert.match(describeHit(docs.items[0] as SearchHit), /^document Shipping policy \(\d chunks\)$/);
});
