// The phone agent's flows against a live `learnloop serve` (tests/test_examples_phone_agent.py
// starts it and passes LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY). Latency is measured
// and written to PHONE_AGENT_REPORT, never asserted: speed is for benchmarks, not tests.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { unwrap } from "@learnloop/client";
import type { StreamEvent } from "@learnloop/client";

import { PhoneAgent, percentile, provisionAccount, watchLatency } from "../src/agent.js";
import type { ProvisionedAccount } from "../src/agent.js";
import { ACCOUNTS } from "../src/knowledge.js";

const baseUrl = process.env.LEARNLOOP_URL ?? "";
const installationKey = process.env.LEARNLOOP_INSTALLATION_KEY ?? "";
const [dentalSpec, garageSpec] = ACCOUNTS;
let dental: ProvisionedAccount;
let garage: ProvisionedAccount;
const suffix = `-${Date.now().toString(36)}`;
const measured: Record<string, number[]> = { search: [], serverSearch: [], turn: [] };

before(async () => {
  assert.ok(baseUrl && installationKey, "LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY must be set");
  assert.ok(dentalSpec && garageSpec);
  dental = await provisionAccount(baseUrl, installationKey, dentalSpec, { suffix });
  // Every search of this account counts as slow: the alert path is exercised on any machine.
  garage = await provisionAccount(baseUrl, installationKey, garageSpec, { suffix, slowSearchMs: 0.001 });
});

after(() => {
  const report = process.env.PHONE_AGENT_REPORT;
  if (report) {
    const summary = Object.fromEntries(Object.entries(measured).map(([k, v]) =>
      [k, { n: v.length, p50: percentile(v, 0.5), p95: percentile(v, 0.95), max: Math.max(...v) }]));
    writeFileSync(report, JSON.stringify(summary, null, 2));
  }
});

test("a call is answered from the account's own knowledge base", async () => {
  const agent = new PhoneAgent(dental);
  const callId = "call-hours";
  const t1 = await agent.handleTurn(callId, "Hi, what time do you open on Saturday?");
  assert.match(t1.answer, /Saturday from 9:00 to 13:00/);
  const t2 = await agent.handleTurn(callId, "I broke a tooth and it really hurts, what should I do?");
  assert.match(t2.answer, /555-0199/);
  const t3 = await agent.handleTurn(callId, "How much is a cleaning?");
  assert.match(t3.answer, /65 euros/);
  await agent.callEnded(callId, "+34-600-000-001", 3);
  for (const t of agent.turns) {
    measured.search?.push(t.searchMs);
    measured.serverSearch?.push(t.serverSearchMs);
    measured.turn?.push(t.turnMs);
  }
  // Each turn is a logged generation of the call, with its latency in the context.
  const logged = await unwrap(dental.ll.GET("/v1/generations", { params: { query: { session_ref: callId } } }));
  assert.equal(logged.items.length, 3);
  assert.ok(logged.items.every((g) => typeof g.context?.search_ms === "number"));
  const ended = await unwrap(dental.ll.GET("/v1/events", { params: { query: { event_type: ["call.ended"] } } }));
  assert.deepEqual(ended.items.map((e) => [e.entity_id, e.actor, e.payload.turns]), [[callId, "+34-600-000-001", 3]]);
});

test("accounts never see each other's documents", async () => {
  const agent = new PhoneAgent(dental);
  const turn = await agent.handleTurn("call-x", "How much is an oil change with a new filter?");
  const dentalTitles = new Set(dentalSpec?.documents.map((d) => d.title));
  assert.ok(turn.sources.length > 0 && turn.sources.every((s) => dentalTitles.has(s)), turn.sources.join(", "));
  assert.doesNotMatch(turn.answer, /89 euros/);
  const garageAgent = new PhoneAgent(garage);
  const g = await garageAgent.handleTurn("call-y", "How much is an oil change?");
  assert.match(g.answer, /89 euros/);
});

test("metrics per account count that account's searches only", async () => {
  const fresh = await provisionAccount(baseUrl, installationKey, garageSpec!, { suffix: `${suffix}-m` });
  const agent = new PhoneAgent(fresh);
  for (const said of ["What warranty do you give?", "Can I get a courtesy car?"]) await agent.handleTurn("c", said);
  const m = await agent.metrics();
  assert.equal(m.searches, 2);
  assert.ok((m.search_ms_mean ?? 0) > 0 && m.query_embeddings === 2);
});

test("a search above the account's threshold raises the latency alert", async () => {
  const alerts: StreamEvent[] = [];
  const stream = await watchLatency(baseUrl, garage, (e) => { alerts.push(e); });
  try {
    await new Promise((r) => setTimeout(r, 300)); // subscribed before the call starts
    const agent = new PhoneAgent(garage);
    await agent.handleTurn("call-slow", "Do I get a replacement car while you fix my clutch?");
    const deadline = Date.now() + 10000;
    while (alerts.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    stream.close();
  }
  assert.equal(alerts.length, 1);
  assert.equal(alerts[0]?.event_type, "search.slow");
  assert.equal(alerts[0]?.payload.threshold_ms, 0.001);
  // The dental account (threshold 200 ms) shares the server but not the alert.
  const none = await unwrap(dental.ll.GET("/v1/events", { params: { query: { event_type: ["search.slow"] } } }));
  assert.ok(none.items.every((e) => Number(e.payload.ms) > 200));
});
