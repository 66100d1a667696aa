// The learned call graph as a small SVG: services in columns by call depth (callers left of
// callees), edges labelled with their fan-out (calls of the callee per request of the caller).
// The root element carries data-nodes and data-edges; each edge group data-caller/data-callee.
"use strict";

const PrescaleGraph = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const NODE_W = 96, NODE_H = 26, COL_GAP = 64, ROW_GAP = 22, PAD = 12;

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }

  // Column of each node: 0 for nodes nobody calls, else one more than its deepest caller.
  // Bounded by the node count, so a cycle cannot loop forever.
  function layers(nodes, edges) {
    const layer = new Map(nodes.map((n) => [n.name, 0]));
    for (let round = 0; round < nodes.length; round++) {
      let changed = false;
      for (const e of edges) {
        const next = layer.get(e.caller) + 1;
        if (e.caller !== e.callee && next < nodes.length && layer.get(e.callee) < next) {
          layer.set(e.callee, next);
          changed = true;
        }
      }
      if (!changed) break;
    }
    return layer;
  }

  function short(name) { return name.length > 13 ? name.slice(0, 12) + "…" : name; }

  function render(root, graph) {
    root.replaceChildren();
    root.dataset.nodes = String(graph.nodes.length);
    root.dataset.edges = String(graph.edges.length);
    if (graph.nodes.length === 0) {
      root.appendChild(Object.assign(document.createElement("p"),
                                     { className: "none", textContent: "No services yet." }));
      return;
    }
    const layer = layers(graph.nodes, graph.edges);
    const columns = [];
    for (const n of graph.nodes) {
      const l = layer.get(n.name);
      (columns[l] = columns[l] || []).push(n);
    }
    const used = columns.filter(Boolean);
    const rows = Math.max(...used.map((c) => c.length));
    const width = PAD * 2 + used.length * NODE_W + (used.length - 1) * COL_GAP;
    const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + 14;
    const pos = new Map();
    used.forEach((col, ci) => {
      const x = PAD + ci * (NODE_W + COL_GAP);
      const top = (height - (col.length * NODE_H + (col.length - 1) * ROW_GAP)) / 2;
      col.forEach((n, ri) => pos.set(n.name, { x, y: top + ri * (NODE_H + ROW_GAP) }));
    });

    const s = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                           "aria-label": "call graph" });
    // Wide graphs shrink to the panel; small ones (one service) must not grow to fill it.
    s.style.maxWidth = `${Math.round(width * 1.25)}px`;
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
                                   markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#94a3b8" }));
    defs.appendChild(marker);
    s.appendChild(defs);

    for (const e of graph.edges) {
      const a = pos.get(e.caller), b = pos.get(e.callee);
      if (!a || !b) continue;
      const g = svg("g", { class: "edge", "data-caller": e.caller, "data-callee": e.callee,
                           "data-fanout": e.fanout });
      let d, lx, ly;
      if (b.x > a.x) {  // forward: right side of the caller to left side of the callee
        const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
        const mx = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        lx = mx; ly = (y1 + y2) / 2;
      } else {  // same column or backwards: an arc below
        const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y + NODE_H;
        const dip = Math.max(y1, y2) + 22;
        d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`;
        lx = (x1 + x2) / 2; ly = dip - 4;
      }
      g.appendChild(svg("path", { d, "marker-end": "url(#arrow)" }));
      const label = "×" + (e.fanout == null ? "?" : Number(e.fanout).toFixed(2));
      g.appendChild(svg("rect", { class: "label-bg", x: lx - 17, y: ly - 8, width: 34, height: 13,
                                  rx: 3 }));
      g.appendChild(svg("text", { x: lx, y: ly + 2 }, label));
      const rps = e.calls_rps == null ? "" : `, ${PrescaleCharts.fmt(e.calls_rps)} calls/s`;
      g.appendChild(svg("title", {}, `${e.caller} → ${e.callee}: ${label} per request${rps}`));
      s.appendChild(g);
    }
    for (const n of graph.nodes) {
      const p = pos.get(n.name);
      const g = svg("g", { class: "node" + (n.kind === "external" ? " external" : ""),
                           "data-name": n.name });
      g.appendChild(svg("rect", { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }));
      g.appendChild(svg("text", { x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 + 1 }, short(n.name)));
      g.appendChild(svg("title", {}, n.kind ? `${n.name} (${n.kind})` : n.name));
      s.appendChild(g);
    }
    root.appendChild(s);
  }

  return { render };
})();
