// Charts drawn by uPlot (vendored, /static/vendor/uplot/): line charts for curves, a bar chart for counts.
// Each chart keeps a text twin (a caption or a table) for screen readers; the canvas itself is aria-hidden.
import uPlot from "/static/vendor/uplot/uPlot.esm.js";

import {h} from "./dom.js";

// colours with at least 4.5:1 contrast on white
const COLORS = ["#1f5fbf", "#b04a00", "#2e7d32", "#6a3d9a", "#9c1f3c"];
const HEIGHT = 220;

/** Points of several series, each [[x, y], ...], on one shared, sorted x axis (nulls where a series has no
 * point): uPlot's [xs, ys1, ys2, ...]. */
export function merge(...series) {
  const xs = [...new Set(series.flatMap((points) => points.map(([x]) => x)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  return [xs, ...series.map((points) => {
    const ys = new Array(xs.length).fill(null);
    for (const [x, y] of points) ys[index.get(x)] = y;
    return ys;
  })];
}

/** A chart in a <figure> with a title: `.element` to place, `.setData(data)` to update, `.note(text)` for the
 * text twin. `series`: [{label, dash, points: bool}], `axes`: [x label, y label]. */
function chart(title, series, {axes, scales = {}, options = {}}) {
  const note = h("p", {class: "chart-note"});
  const plot = h("div", {class: "plot", "aria-hidden": "true"});
  const element = h("figure", {class: "chart"}, h("figcaption", {}, title), plot, note);
  const opts = {
    width: 600, height: HEIGHT, legend: {live: false},
    scales: {x: {time: false}, ...scales},
    axes: [{label: axes[0]}, {label: axes[1], size: 60}],
    series: [{label: axes[0]}, ...series.map((s, i) => ({
      label: s.label, stroke: s.color ?? COLORS[i], width: 2, dash: s.dash, spanGaps: true,
      points: {show: s.points ?? false, size: 6}, ...s.extra,
    }))],
    ...options,
  };
  const plotObject = new uPlot(opts, [[], ...series.map(() => [])], plot);
  // follow the container's width (phones, resized windows)
  new ResizeObserver(() => {
    const width = plot.clientWidth;
    if (width > 0) plotObject.setSize({width, height: HEIGHT});
  }).observe(plot);
  return {
    element,
    setData: (data) => plotObject.setData(data),
    note: (text) => { note.textContent = text; },
  };
}

/** A line chart over a numeric x axis; `yRange` fixes the y axis, `yFormat` writes its values. */
export function lineChart(title, series, axes, {yRange, yFormat} = {}) {
  return chart(title, series, {axes, scales: yRange ? {y: {range: yRange}} : {},
    options: yFormat ? {axes: [{label: axes[0]}, {label: axes[1], size: 60, values: (_, ticks) => ticks.map(yFormat)}]} : {}});
}

/** A bar chart of {name: count}: bars by uPlot's bar path builder, the names on the x axis; a table twin. */
export function barChart(title, counts, axes) {
  const names = Object.keys(counts);
  const bars = chart(title, [{label: axes[1], extra: {fill: "#1f5fbf99", paths: uPlot.paths.bars({size: [0.7, 80]})}}], {
    axes,
    scales: {x: {time: false, range: () => [-0.5, names.length - 0.5]}, y: {range: (_, __, max) => [0, max * 1.1]}},
    options: {axes: [
      {label: axes[0], splits: () => names.map((_, i) => i), values: (_, splits) => splits.map((i) => names[i] ?? ""),
        rotate: names.length > 8 ? -45 : 0, size: names.length > 8 ? 70 : 40, gap: 4},
      {label: axes[1], size: 60},
    ]},
  });
  bars.setData([names.map((_, i) => i), Object.values(counts)]);
  const largest = names.reduce((a, b) => (counts[a] >= counts[b] ? a : b));
  bars.note(`${names.length} ${axes[0]}s; the largest, "${largest}", has ${counts[largest]} ${axes[1]}`);
  return bars;
}
