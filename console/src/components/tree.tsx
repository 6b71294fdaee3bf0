// The lineage tree, laid out by d3-hierarchy and drawn as SVG: each node is a link to its
// generation (click or Enter to move), coloured by verdict, with iteration, tags and a
// thumbnail when its output is an http(s) image.
import { hierarchy, tree as d3tree } from "d3-hierarchy";
import { href, imageSrc, short } from "../util";

export type TreeNode = {
  id: string; iteration: number; verdict: string | null; output_text?: string | null; prompt?: string | null;
  output_url?: string | null; positives?: number; negatives?: number; children: TreeNode[];
  feedback_tags?: string[];
};

const W = 150, H = 64, GAP_X = 24, GAP_Y = 46;

export function LineageTree({ root, current }: { root: TreeNode; current: string }) {
  const h = hierarchy(root, (d) => d.children);
  const layout = d3tree<TreeNode>().nodeSize([W + GAP_X, H + GAP_Y])(h);
  const nodes = layout.descendants();
  const xs = nodes.map((n) => n.x);
  const minX = Math.min(...xs) - W / 2 - 8, maxX = Math.max(...xs) + W / 2 + 8;
  const height = (layout.height + 1) * (H + GAP_Y);
  const width = maxX - minX;
  return (
    <div class="tree-wrap" tabIndex={0} role="region" aria-label="Lineage tree (scrolls)">
      <svg width={width} height={height} viewBox={`${minX} -8 ${width} ${height}`} role="group"
        aria-label={`Lineage tree: ${nodes.length} generations`}>
        {layout.links().map((l) => (
          <path class="tree-link" d={`M${l.source.x},${l.source.y + H} C${l.source.x},${(l.source.y + H + l.target.y) / 2} ${l.target.x},${(l.source.y + H + l.target.y) / 2} ${l.target.x},${l.target.y}`} />
        ))}
        {nodes.map((n) => {
          const d = n.data;
          const v = (d.verdict || "unrated").toLowerCase();
          const here = d.id === current;
          const thumb = imageSrc(d.output_url);
          return (
            <a href={href(`/generations/${d.id}`)} class={`tree-node v-${v}${here ? " current" : ""}`}
              aria-current={here ? "page" : undefined} data-node={d.id}>
              <rect x={n.x - W / 2} y={n.y} width={W} height={H} rx={6} />
              {thumb && <image href={thumb} x={n.x - W / 2 + 4} y={n.y + 4} width={40} height={40} preserveAspectRatio="xMidYMid slice" />}
              <text x={n.x - W / 2 + (thumb ? 50 : 8)} y={n.y + 18} class="t-head">#{d.iteration} {d.verdict || "unrated"}</text>
              <text x={n.x - W / 2 + (thumb ? 50 : 8)} y={n.y + 36} class="t-body">{short(d.output_text, thumb ? 14 : 22)}</text>
              <text x={n.x - W / 2 + 8} y={n.y + 55} class="t-tags">{short((d.feedback_tags || []).join(" "), 24) || `+${d.positives ?? 0} −${d.negatives ?? 0}`}</text>
            </a>
          );
        })}
      </svg>
    </div>
  );
}
