// Per-service charts: three uPlot charts that share the time axis (the same x values and a synced
// cursor): (a) load with the forecast band, (b) planned vs ready replicas, (c) p99 latency vs the
// SLO with errors/s. Each chart's root element carries data-points="N": how many points of its
// main series it drew, and data-gaps="N": how many breaks its lines have (the browser test reads
// both).
"use strict";

const PrescaleCharts = (() => {
  // What the browser keeps per service: the server keeps 4 h of 5 s points; so does the page.
  const MAX_POINTS = 2880;
  const HEIGHT = 170;
  // Points further apart than this many usual steps are not joined: the platform was stopped
  // or not scraping between them, and a straight line would draw data nobody measured.
  const GAP_STEPS = 5;
  const FIELDS = ["t", "load_rps", "forecast_p50", "forecast_p90", "forecast_p99",
                  "planned_replicas", "ready_replicas", "p99_ms", "errors_rps"];

  const C = {
    load: "#1d4ed8", p50: "#7c3aed", p90: "rgba(124,58,237,0.55)", p99: "rgba(124,58,237,0.3)",
    band90: "rgba(124,58,237,0.16)", band99: "rgba(124,58,237,0.07)",
    planned: "#ea580c", ready: "#15803d", p99ms: "#0f766e", slo: "#b91c1c", errors: "#d97706",
  };

  function fmt(v, digits = 1) {
    if (v == null || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    return v.toFixed(digits);
  }
  const axisValues = (u, splits) => splits.map((v) => fmt(v, v % 1 === 0 ? 0 : 1));
  const zeroBased = (u, min, max) => [0, max != null && max > 0 ? max * 1.1 : 1];

  // A dashed vertical line at the latest tick: left of it is observed, right of it is forecast.
  function nowLine(getNow) {
    return {
      hooks: {
        draw: (u) => {
          const t = getNow();
          if (t == null) return;
          const x = u.valToPos(t, "x", true);
          if (!isFinite(x) || x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#9ca3af";
          ctx.lineWidth = 1;
          ctx.setLineDash([4, 4]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      },
    };
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    return e;
  }

  class ServiceCharts {
    // `root`: the element the three charts go into. `syncKey`: charts with the same key move
    // their cursors together.
    constructor(root, syncKey) {
      this.cols = Object.fromEntries(FIELDS.map((f) => [f, []]));
      this.band = { t: [], p50: [], p90: [], p99: [] };
      this.sloMs = null;
      this.syncKey = syncKey;
      this.slots = {};
      for (const [key, title] of [["load", "Load (req/s) and forecast"],
                                  ["replicas", "Replicas: planned vs ready"],
                                  ["latency", "p99 latency (ms) vs SLO, errors/s"]]) {
        const box = el("div", "chart");
        box.dataset.chart = key;
        box.dataset.points = "0";
        const h = el("h4", null, title);
        const note = el("small", "note");
        h.appendChild(note);
        box.appendChild(h);
        const plot = el("div", "plot");
        box.appendChild(plot);
        root.appendChild(box);
        this.slots[key] = { box, plot, note, chart: null };
      }
    }

    // The newest point's time (unix seconds), for ?since=; null before the first point.
    lastT() {
      const t = this.cols.t;
      return t.length ? t[t.length - 1] : null;
    }

    // The median spacing of the last points (seconds); null before there are two.
    usualStep() {
      const t = this.cols.t;
      const diffs = [];
      for (let i = Math.max(1, t.length - 64); i < t.length; i++) diffs.push(t[i] - t[i - 1]);
      if (!diffs.length) return null;
      diffs.sort((a, b) => a - b);
      return diffs[Math.floor(diffs.length / 2)];
    }

    // Merges a /api/v1/services/{name} answer: appends its series, replaces the forecast band.
    update(payload) {
      this.sloMs = payload.slo_p99_ms;
      const s = payload.series;
      const last = this.lastT();
      for (let i = 0; i < s.t.length; i++) {
        if (last != null && s.t[i] <= last) continue;  // already have it
        const prev = this.lastT();
        const step = this.usualStep();
        if (prev != null && step != null && s.t[i] - prev > GAP_STEPS * step) {
          // A row of nulls one step after the last point: uPlot breaks every line there.
          for (const f of FIELDS) this.cols[f].push(f === "t" ? prev + step : null);
        }
        for (const f of FIELDS) this.cols[f].push(s[f][i]);
      }
      const extra = this.cols.t.length - MAX_POINTS;
      if (extra > 0) for (const f of FIELDS) this.cols[f].splice(0, extra);
      this.band = payload.forecast;
      // A fresh platform has no history to forecast from yet: say so rather than draw an
      // unexplained empty band.
      const forecasting = this.band.t.length > 0 || this.cols.forecast_p50.some((v) => v != null);
      this.slots.load.note.textContent = forecasting ? "" : " · no forecast yet";
      this.draw();
    }

    // x: observed times, then the forecast steps after the last one.
    data() {
      const c = this.cols;
      const last = this.lastT();
      const ahead = [];
      for (let i = 0; i < this.band.t.length; i++) {
        if (last == null || this.band.t[i] > last) ahead.push(i);
      }
      const pad = ahead.map(() => null);
      const x = c.t.concat(ahead.map((i) => this.band.t[i]));
      const withBand = (col, q) => c[col].concat(ahead.map((i) => this.band[q][i]));
      const slo = this.sloMs == null ? null : this.sloMs;
      return {
        load: [x, c.load_rps.concat(pad), withBand("forecast_p50", "p50"),
               withBand("forecast_p90", "p90"), withBand("forecast_p99", "p99")],
        replicas: [x, c.ready_replicas.concat(pad), c.planned_replicas.concat(pad)],
        latency: [x, c.p99_ms.concat(pad), x.map(() => slo), c.errors_rps.concat(pad)],
      };
    }

    options(key, width) {
      const base = {
        width,
        height: HEIGHT,
        cursor: { sync: { key: this.syncKey } },
        scales: { x: { time: true } },
        legend: { live: true },
        plugins: [nowLine(() => this.lastT())],
      };
      const yAxis = { size: 44, values: axisValues };
      if (key === "load") {
        return Object.assign(base, {
          scales: { x: { time: true }, y: { range: zeroBased } },
          series: [
            {},
            { label: "load", stroke: C.load, width: 2, value: (u, v) => fmt(v) },
            { label: "P50", stroke: C.p50, width: 1.5, dash: [6, 3], value: (u, v) => fmt(v) },
            { label: "P90", stroke: C.p90, width: 1, value: (u, v) => fmt(v) },
            { label: "P99", stroke: C.p99, width: 1, value: (u, v) => fmt(v) },
          ],
          bands: [{ series: [4, 3], fill: C.band99 }, { series: [3, 2], fill: C.band90 }],
          axes: [{}, yAxis],
        });
      }
      if (key === "replicas") {
        const stepped = uPlot.paths.stepped({ align: 1 });
        return Object.assign(base, {
          scales: { x: { time: true }, y: { range: zeroBased } },
          series: [
            {},
            // Planned drawn over ready, dashed, so both show where they agree.
            { label: "ready", stroke: C.ready, width: 2, paths: stepped },
            { label: "planned", stroke: C.planned, width: 1.5, paths: stepped, dash: [5, 4] },
          ],
          axes: [{}, yAxis],
        });
      }
      return Object.assign(base, {
        scales: { x: { time: true }, ms: { range: zeroBased }, err: { range: zeroBased } },
        series: [
          {},
          { label: "p99 ms", stroke: C.p99ms, width: 2, scale: "ms", value: (u, v) => fmt(v) },
          { label: "SLO", stroke: C.slo, width: 1, dash: [4, 4], scale: "ms",
            value: (u, v) => fmt(v) },
          { label: "errors/s", stroke: C.errors, width: 1, scale: "err",
            fill: "rgba(217,119,6,0.10)", value: (u, v) => fmt(v, 2) },
        ],
        axes: [{}, Object.assign({ scale: "ms" }, yAxis),
               { scale: "err", side: 1, size: 40, grid: { show: false }, values: axisValues }],
      });
    }

    draw() {
      const data = this.data();
      for (const [key, slot] of Object.entries(this.slots)) {
        if (!slot.chart) {
          const width = Math.max(200, slot.plot.clientWidth);
          slot.chart = new uPlot(this.options(key, width), data[key], slot.plot);
        } else {
          slot.chart.setData(data[key]);
        }
        const main = data[key][1];  // load, ready replicas, p99
        slot.box.dataset.points = String(main.filter((v) => v != null).length);
        const isBreak = (i) => FIELDS.every((f) => f === "t" || this.cols[f][i] === null);
        slot.box.dataset.gaps = String(this.cols.t.filter((t, i) => isBreak(i)).length);
      }
    }

    resize() {
      for (const slot of Object.values(this.slots)) {
        if (slot.chart) slot.chart.setSize({ width: Math.max(200, slot.plot.clientWidth), height: HEIGHT });
      }
    }
  }

  return { ServiceCharts, fmt };
})();
