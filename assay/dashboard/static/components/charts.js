// Plain-SVG charts: a time-series line chart (with gaps for missing values), a horizontal bar chart and
// a sparkline. No library, no canvas: the SVG scales with its card and text stays selectable.

import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["var(--accent)", "var(--green)", "var(--orange)", "var(--red)", "var(--yellow)", "#8e5bd8", "#1aa3b8", "#c2477f"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

function text(x, y, str, attrs = {}) {
  const t = s("text", { x, y, ...attrs });
  t.textContent = str;
  return t;
}

// A "nice" upper bound for an axis: 1, 2, 5 x 10^n at or above max.
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/** A line chart over the time window ending now. series: [{name, values}] aligned with t (seconds,
 *  epoch); null values leave a gap. Returns the <figure>; call .update(t, series, now, since) to redraw
 *  in place. The window is the last `maxWindow` seconds, shortened (to at least `minWindow`) when the
 *  history starts later (`since`: a freshly started engine), so a new engine's first minutes are legible. */
export function lineChart({ label, maxWindow = 3600, minWindow = 300, height = 170, format = (v) => String(v), empty = "No data yet" }) {
  const W = 640;
  const H = height;
  const pad = { l: 56, r: 12, t: 10, b: 22 };
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": label });
  const legend = h("ul", { class: "chart-legend" });
  const fig = h("figure", { class: "chart" }, svg, legend);
  fig.update = (t, series, now, since = now - maxWindow) => {
    svg.replaceChildren();
    legend.replaceChildren();
    const window = Math.min(maxWindow, Math.max(minWindow, now - since));
    const x0 = now - window;
    const xs = (ts) => pad.l + ((ts - x0) / window) * (W - pad.l - pad.r);
    let max = 0;
    for (const ser of series) for (const v of ser.values) if (v !== null && v > max) max = v;
    const top = niceMax(max);
    const ys = (v) => H - pad.b - (v / top) * (H - pad.t - pad.b);
    for (const f of [0, 0.5, 1]) {
      const y = ys(top * f);
      svg.append(s("line", { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: "chart-grid" }));
      svg.append(text(pad.l - 6, y + 4, format(top * f), { class: "chart-tick", "text-anchor": "end" }));
    }
    for (const [f, anchor] of [[1, "start"], [0.5, "middle"], [0, "end"]]) {
      const mins = (window * f) / 60;
      const tick = f ? `-${Number.isInteger(mins) ? mins : mins.toFixed(1)} min` : "now";
      svg.append(text(xs(now - window * f), H - 6, tick, { class: "chart-tick", "text-anchor": anchor }));
    }
    let points = 0;
    series.forEach((ser, i) => {
      const color = ser.color || PALETTE[i % PALETTE.length];
      let d = "";
      let pen = false;
      let end = null;
      ser.values.forEach((v, j) => {
        if (v === null || v === undefined || t[j] < x0) {
          pen = false;
          return;
        }
        end = [xs(t[j]), ys(v)];
        d += `${pen ? "L" : "M"}${end[0].toFixed(1)} ${end[1].toFixed(1)}`;
        pen = true;
        points++;
      });
      if (d) svg.append(s("path", { d, class: "chart-line", style: `stroke:${color}`, "data-series": ser.name }));
      if (end) svg.append(s("circle", { cx: end[0].toFixed(1), cy: end[1].toFixed(1), r: 3, style: `fill:${color}` }));
      const last = [...ser.values].reverse().find((v) => v !== null && v !== undefined);
      legend.append(h("li", {}, h("span", { class: "chart-swatch", style: { background: color } }), `${ser.name} `, h("span", { class: "muted" }, last === undefined ? "–" : format(last))));
    });
    if (!points) svg.append(text(W / 2, H / 2, empty, { class: "chart-empty", "text-anchor": "middle" }));
    fig.dataset.points = String(points);
  };
  return fig;
}

/** Horizontal bars: items [{label, value}], largest first. Returns the <figure> with .update(items). */
export function barChart({ label, empty = "Nothing yet" }) {
  const W = 640;
  const row = 24;
  const svg = s("svg", { class: "chart-svg", role: "img", "aria-label": label });
  const fig = h("figure", { class: "chart" }, svg);
  fig.update = (items) => {
    svg.replaceChildren();
    const H = Math.max(1, items.length) * row + 4;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const max = Math.max(1, ...items.map((i) => i.value));
    const labelW = 230;
    items.forEach((it, i) => {
      const y = i * row + 2;
      const w = ((W - labelW - 50) * it.value) / max;
      svg.append(text(labelW - 8, y + 16, it.label, { class: "chart-label", "text-anchor": "end" }));
      svg.append(s("rect", { x: labelW, y: y + 4, width: Math.max(2, w), height: row - 8, rx: 3, class: "chart-bar", style: `fill:${it.color || "var(--red)"}` }));
      svg.append(text(labelW + w + 6, y + 16, String(it.value), { class: "chart-tick" }));
    });
    if (!items.length) svg.append(text(W / 2, 16, empty, { class: "chart-empty", "text-anchor": "middle" }));
    fig.dataset.bars = String(items.length);
  };
  return fig;
}

/** A small inline line of recent values (no axes); the title tells the last and the peak. */
export function sparkline(values, { width = 120, height = 26, label = "" } = {}) {
  const vals = values.map((v) => (v === null || v === undefined ? 0 : v));
  if (vals.length === 1) vals.unshift(vals[0]); // one sample so far: a flat line at its value
  const max = Math.max(1, ...vals);
  const n = Math.max(1, vals.length - 1);
  const pts = vals.map((v, i) => `${((i / n) * (width - 2) + 1).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, class: "sparkline", role: "img", "aria-label": `${label}: last ${vals.at(-1) ?? 0}, peak ${max}` },
    s("title", {}, document.createTextNode(`${label}: now ${vals.at(-1) ?? 0}, peak ${Math.max(0, ...vals)} (last hour)`)),
    vals.length > 1 ? s("polyline", { points: pts.join(" "), class: "sparkline-line" }) : null,
  );
  svg.dataset.values = String(vals.length);
  return svg;
}
