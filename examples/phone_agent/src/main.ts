// `npm start`: provision the accounts, take their calls, print latency against the budget,
// per-account metrics and alerts. Needs LEARNLOOP_URL and LEARNLOOP_INSTALLATION_KEY
// (run.sh starts a server and makes the key).
import { ACCOUNTS } from "./knowledge.js";
import { ALERT_MS, PhoneAgent, percentile, provisionAccount, SEARCH_BUDGET_MS, TURN_BUDGET_MS, watchLatency }
  from "./agent.js";

const baseUrl = process.env.LEARNLOOP_URL ?? "http://127.0.0.1:8000";
const installationKey = process.env.LEARNLOOP_INSTALLATION_KEY;
if (!installationKey) {
  console.error("set LEARNLOOP_INSTALLATION_KEY (learnloop keys create --installation --name phone-agent)");
  process.exit(2);
}
const rounds = Number(process.env.ROUNDS ?? "5");
const suffix = `-${Date.now().toString(36)}`;

for (const account of ACCOUNTS) {
  const acc = await provisionAccount(baseUrl, installationKey, account, { suffix });
  const agent = new PhoneAgent(acc);
  const alerts: string[] = [];
  const stream = await watchLatency(baseUrl, acc, (e) =>
    alerts.push(`search took ${Number(e.payload.ms).toFixed(0)} ms (> ${e.payload.threshold_ms} ms)`));
  console.log(`\n=== account ${acc.name}: ${account.documents.length} documents ===`);
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    for (const [i, call] of account.calls.entries()) {
      const callId = `call-${r}-${i}`;
      for (const said of call) {
        const turn = await agent.handleTurn(callId, said);
        if (r === 0) console.log(`  caller: ${said}\n  agent:  ${turn.answer}\n          (search ${turn.searchMs.toFixed(1)} ms, turn ${turn.turnMs.toFixed(1)} ms)`);
        n++;
      }
      await agent.callEnded(callId, `+34-600-000-${i}`, call.length);
    }
  }
  const search = agent.turns.map((t) => t.searchMs);
  const turns = agent.turns.map((t) => t.turnMs);
  const verdict = (v: number, budget: number) => (v < budget ? "within" : "OVER");
  console.log(`  ${n} turns: search p50 ${percentile(search, 0.5).toFixed(1)} ms / p95 ${percentile(search, 0.95).toFixed(1)} ms `
    + `(${verdict(percentile(search, 0.95), SEARCH_BUDGET_MS)} the ${SEARCH_BUDGET_MS} ms budget); `
    + `turn p50 ${percentile(turns, 0.5).toFixed(1)} ms / p95 ${percentile(turns, 0.95).toFixed(1)} ms `
    + `(${verdict(percentile(turns, 0.95), TURN_BUDGET_MS)} the ${TURN_BUDGET_MS} ms budget)`);
  const m = await agent.metrics();
  console.log(`  learnloop metrics: ${m.searches} searches, mean ${m.search_ms_mean?.toFixed(1)} ms, `
    + `max ${m.search_ms_max?.toFixed(1)} ms, embedding cache hit rate ${((m.cache_hit_rate ?? 0) * 100).toFixed(0)}%`);
  await new Promise((r) => setTimeout(r, 1500)); // let the stream deliver the last alerts
  stream.close();
  console.log(`  latency alerts (search > ${ALERT_MS} ms): ${alerts.length ? alerts.join("; ") : "none"}`);
}
