// Every component once, with hostile sample data (script in text, a javascript: URL, a long
// id, empty states): reviewers see the whole UI at once, the browser tests screenshot it
// and check that nothing here runs.
import { ChartView } from "../components/chart";
import { LineageTree, type TreeNode } from "../components/tree";
import { DataTable, Empty, ErrorBox, JsonView, Markdown, Page, SafeImage, Tags, Verdict } from "../components/ui";

const HOSTILE = `<script>window.__xss=1;alert(1)</script><img src=x onerror="window.__xss=1;alert(1)">`;
const LONG_ID = "0193a6f2-9c1e-7d4b-8a5f-3e2d1c0b9a87".repeat(4);
const MD = `# Heading\n\n**bold**, _italic_, \`code\`, [a javascript: link](javascript:alert(1)), [a real link](https://example.org)\n\n${HOSTILE}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![image with a javascript URL](javascript:alert(1))`;
const tree: TreeNode = {
  id: "n1", iteration: 1, verdict: "NEGATIVE", output_text: HOSTILE, feedback_tags: ["TOO_DARK", HOSTILE], children: [
    { id: "n2", iteration: 2, verdict: "NEGATIVE", output_text: "second try", children: [
      { id: "n4", iteration: 3, verdict: "POSITIVE", output_text: "fixed", output_url: "javascript:alert(1)", children: [] }] },
    { id: "n3", iteration: 2, verdict: null, output_text: "", children: [] },
  ],
};

export function Patterns() {
  return (
    <Page title="Patterns">
      <p>Every component with hostile sample data. Nothing on this page may run script.</p>
      <h2>Text and markdown</h2>
      <pre class="text" tabIndex={0}>{HOSTILE}</pre>
      <Markdown text={MD} />
      <h2>Badges</h2>
      <p><Verdict v="POSITIVE" /> <Verdict v="NEGATIVE" /> <Verdict v="NEUTRAL" /> <Verdict v={null} /> <Tags tags={["TOO_DARK", HOSTILE, LONG_ID]} /></p>
      <h2>JSON</h2>
      <JsonView label="config" value={{ [HOSTILE]: HOSTILE, id: LONG_ID, nested: { list: [1, 2, null] } }} open />
      <JsonView label="empty" value={{}} />
      <h2>Images</h2>
      <SafeImage url="javascript:alert(1)" alt="must not render" />
      <p class="muted">(a javascript: output URL renders nothing above)</p>
      <h2>Messages</h2>
      <ErrorBox error={`Server said: ${HOSTILE}`} />
      <Empty>Nothing here yet (an empty state).</Empty>
      <h2>Table and chart</h2>
      <DataTable caption="A table with a CSV download" csv="patterns" rows={[{ value: HOSTILE, n: 3, rate: 0.25 }, { value: LONG_ID, n: 1, rate: null }]}
        columns={[{ key: "value" }, { key: "n" }, { key: "rate" }]} />
      <ChartView type="bar" label="A sample chart" labels={["<b>a</b>", "b", "c"]} series={[{ label: "count", data: [3, 1, 2] }]} />
      <h2>Lineage tree</h2>
      <LineageTree root={tree} current="n2" />
    </Page>
  );
}
