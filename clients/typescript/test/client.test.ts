// The client against a live `learnloop serve` (started by tests/test_typescript_client.py,
// which passes LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY). Each run provisions its own
// tenant over HTTP with the installation key, as a SaaS onboarding an account would.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { createClient, EventStream, LearnloopApiError, unwrap, uploadDocument } from "../src/index.js";
import type { LearnloopClient, StreamEvent } from "../src/index.js";

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
