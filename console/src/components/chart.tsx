// Chart.js on a canvas; the numbers are always also in a table next to it (screen readers,
// copy-paste, CSV), so the canvas is labelled as an image with its summary.
import { useEffect, useRef } from "preact/hooks";
import Chart from "chart.js/auto";

export type Series = { label: string; data: (number | null)[] };
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

export function ChartView({ type, labels, series, label, yMax }: {
  type: "bar" | "line"; labels: string[]; series: Series[]; label: string; yMax?: number;
}) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!ref.current) return;
    const chart = new Chart(ref.current, {
      type,
      data: {
        labels,
        datasets: series.map((s, i) => ({
          label: s.label, data: s.data, backgroundColor: COLORS[i % COLORS.length],
          borderColor: COLORS[i % COLORS.length], spanGaps: true,
        })),
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ...(yMax !== undefined ? { max: yMax } : {}) } },
        plugins: { legend: { display: series.length > 1 } },
      },
    });
    return () => chart.destroy();
  }, [type, JSON.stringify(labels), JSON.stringify(series), yMax]);
  return (
    <div class="chart">
      <canvas ref={ref} role="img" aria-label={label} data-chart={label}
        data-values={JSON.stringify(series.map((s) => s.data))} data-labels={JSON.stringify(labels)} />
    </div>
  );
}
