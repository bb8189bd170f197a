import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Colours come from the page's CSS (light or dark scheme), since the chart draws on a canvas. */
function cssColor(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export interface Series {
  label: string;
  color: string;
  /** A dashed line (e.g. a threshold). */
  dash?: boolean;
  bars?: boolean;
}

/**
 * A uPlot chart that follows its data: x is seconds (time) or an index; one array per series.
 * `label` names the chart for screen readers, which cannot read the canvas.
 */
export function Chart({
  label,
  x,
  series,
  data,
  height = 220,
  time = true,
  yRange,
  xLabels,
}: {
  label: string;
  x: number[];
  series: Series[];
  data: number[][];
  height?: number;
  time?: boolean;
  yRange?: [number, number];
  xLabels?: string[];
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = JSON.stringify([series, time, yRange, xLabels, height]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axis = {
      stroke: cssColor('--fg-muted'),
      grid: { stroke: cssColor('--grid') },
      ticks: { stroke: cssColor('--grid') },
    };
    const bars = uPlot.paths.bars?.({ size: [0.6, 60] });
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth),
      height,
      scales: {
        x: { time },
        ...(yRange ? { y: { range: yRange } } : {}),
      },
      axes: [
        xLabels ? { ...axis, values: (_u, splits) => splits.map((v) => xLabels[Math.round(v)] ?? '') } : axis,
        axis,
      ],
      legend: { show: true },
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: cssColor(s.color),
          width: 2,
          ...(s.dash ? { dash: [6, 4] } : {}),
          ...(s.bars && bars ? { paths: bars, fill: cssColor(s.color), points: { show: false } } : {}),
        })),
      ],
    };
    const chart = new uPlot(opts, [x, ...data] as uPlot.AlignedData, el);
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(320, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // The chart is rebuilt when its shape changes; new data alone only redraws (below).
    // biome-ignore lint/correctness/useExhaustiveDependencies: data updates go through setData
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([x, ...data] as uPlot.AlignedData);
  }, [x, data]);

  return <div ref={box} class="chart" role="img" aria-label={label} data-testid="chart" />;
}
