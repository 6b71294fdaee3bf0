import { useState } from "preact/hooks";
import { client, ok } from "../api/client";
import { useSession } from "../session";

// Feedback on one generation: every field the API takes; shown only to keys that may write.
export function FeedbackForm({ generationId, onSaved }: { generationId: string; onSaved: () => void }) {
  const s = useSession();
  const [f, setF] = useState({ sentiment: "", rating: "", thumbs: "", tags: "", comment: "", instruction: "", corrected_output: "" });
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  if (!s.can_write) return <p class="muted">This key is read only: no feedback can be given with it.</p>;
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setMsg(null);
    try {
      await ok(client.POST("/v1/generations/{generation_id}/feedback", {
        params: { path: { generation_id: generationId } },
        body: {
          sentiment: f.sentiment || null, rating: f.rating ? Number(f.rating) : null,
          thumbs: f.thumbs ? Number(f.thumbs) : null,
          tags: f.tags.split(/[,\s]+/).map((t) => t.trim()).filter(Boolean),
          comment: f.comment || null, instruction: f.instruction || null, corrected_output: f.corrected_output || null,
          source: "admin", author_ref: `console:${s.key_name}`,
        },
      }));
      setF({ sentiment: "", rating: "", thumbs: "", tags: "", comment: "", instruction: "", corrected_output: "" });
      setMsg({ ok: true, text: "Feedback saved." });
      onSaved();
    } catch (err) {
      setMsg({ ok: false, text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card feedback-form" onSubmit={submit} aria-label="Give feedback">
      <h3>Give feedback</h3>
      <div class="row">
        <label>Sentiment
          <select value={f.sentiment} onChange={set("sentiment")} name="sentiment">
            <option value="">–</option><option>POSITIVE</option><option>NEGATIVE</option><option>NEUTRAL</option>
          </select>
        </label>
        <label>Rating
          <select value={f.rating} onChange={set("rating")} name="rating">
            <option value="">–</option>{[1, 2, 3, 4, 5].map((n) => <option value={String(n)}>{n}</option>)}
          </select>
        </label>
        <label>Thumbs
          <select value={f.thumbs} onChange={set("thumbs")} name="thumbs">
            <option value="">–</option><option value="1">up</option><option value="-1">down</option>
          </select>
        </label>
        <label>Tags (comma separated)<input name="tags" value={f.tags} onInput={set("tags")} placeholder="TOO_DARK, OFF_TOPIC" /></label>
      </div>
      <label>Comment<textarea name="comment" value={f.comment} onInput={set("comment")} rows={2} /></label>
      <label>Instruction for the next attempt<textarea name="instruction" value={f.instruction} onInput={set("instruction")} rows={2} /></label>
      <label>Corrected output<textarea name="corrected_output" value={f.corrected_output} onInput={set("corrected_output")} rows={3} /></label>
      {msg && <p class={msg.ok ? "ok" : "error"} role={msg.ok ? "status" : "alert"}>{msg.text}</p>}
      <button type="submit" disabled={busy}>Save feedback</button>
    </form>
  );
}
