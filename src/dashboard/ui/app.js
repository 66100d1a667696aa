// The dashboard page: polls the JSON API every 2 s and updates the overview, one card per
// service (charts.js), the call graph (graph.js) and the events timeline. Series and events are
// fetched incrementally (?since= / ?after_id=), never refetched whole.
"use strict";

(() => {
  const POLL_MS = 2000;
  const MAX_EVENTS_SHOWN = 500;
  const fmt = PrescaleCharts.fmt;
  const $ = (id) => document.getElementById(id);

  const cards = new Map();  // service name -> {root, charts, facts, reason}
  let lastEventId = 0;
  let startedAt = null;  // the controller's run, from the overview: another is a restart
  let graphKey = "";

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  function clock(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  function duration(seconds) {
    if (!(seconds > 0)) return "–";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min` : `${Math.floor(seconds)} s`;
  }

  function setStatus(state, text) {
    const s = $("status");
    s.dataset.state = state;
    s.textContent = text;
  }

  function renderOverview(o) {
    const policy = $("policy");
    policy.textContent = (o.policy || "–") + (o.recommend_only ? " · recommend only" : "");
    policy.classList.toggle("recommend", !!o.recommend_only);
    $("ov-requests").textContent = fmt(o.requests, 0);
    $("ov-slo").textContent =
        o.within_slo_share == null ? "–" : (o.within_slo_share * 100).toFixed(2) + " %";
    $("ov-replica-hours").textContent = fmt(o.replica_hours, 2);
    $("ov-scaling").textContent = String(o.scaling_events);
    $("ov-uptime").textContent = duration(o.now - o.started_at);
  }

  function fact(label) {
    const span = document.createElement("span");
    span.append(label + " ");
    const b = document.createElement("b");
    span.appendChild(b);
    return { span, b };
  }

  function makeCard(info) {
    const root = document.createElement("article");
    root.className = "card";
    root.dataset.service = info.name;
    const head = document.createElement("div");
    head.className = "card-head";
    const h = document.createElement("h3");
    h.textContent = info.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    const facts = {
      load: fact('load'),
      replicas: fact('replicas'),
      p99: fact('p99'),
      errors: fact('errors'),
      memory: fact('memory')
    };
    const factsBox = document.createElement("div");
    factsBox.className = "facts";
    for (const f of Object.values(facts)) factsBox.appendChild(f.span);
    head.append(h, kind, factsBox);
    const incident = document.createElement('p');
    incident.className = 'incident';
    incident.hidden = true;
    const slowdown = document.createElement('p');
    slowdown.className = 'slowdown';
    slowdown.hidden = true;
    const reason = document.createElement("p");
    reason.className = "reason";
    const chartsBox = document.createElement("div");
    chartsBox.className = "charts";
    root.append(head, incident, slowdown, reason, chartsBox);
    return {root, kind, facts, incident, slowdown, reason, chartsBox, charts: null};
  }

  function updateCard(card, s) {
    card.kind.textContent = `${s.kind || 'service'} · SLO p99 ${fmt(s.slo_p99_ms, 0)} ms · ` +
        `${s.min_replicas}–${s.max_replicas} replicas` +
        (s.revision != null ? ` · revision ${s.revision}` : '') +
        (s.rollout ? ` · ${s.rollout}` : '');
    card.kind.classList.toggle('over', !!s.rollout && s.rollout.includes('failed'));
    const p = s.latest;
    card.facts.load.b.textContent = p ? fmt(p.load_rps) + " rps" : "–";
    card.facts.replicas.b.textContent = p ? `${p.ready_replicas}/${p.planned_replicas}` : "–";
    card.facts.p99.b.textContent = p ? fmt(p.p99_ms) + " ms" : "–";
    card.facts.p99.span.classList.toggle(
        "over", !!p && p.p99_ms != null && s.slo_p99_ms != null && p.p99_ms > s.slo_p99_ms);
    card.facts.errors.b.textContent = p ? fmt(p.errors_rps, 2) + "/s" : "–";
    // The largest replica's resident memory, against the service's limit when it has one.
    const limit = s.memory_limit_mib;
    card.facts.memory.b.textContent = p && p.memory_mib != null ?
        fmt(p.memory_mib, 0) + (limit != null ? ` of ${fmt(limit, 0)} MiB` : ' MiB') :
                                                '–';
    card.facts.memory.span.classList.toggle(
        'over', !!p && p.memory_mib != null && limit != null && p.memory_mib > 0.9 * limit);
    // Its open incident: its requests failing or missing the SLO faster than its error budget
    // allows (docs/healing.md, "Incidents").
    card.incident.hidden = !s.incident;
    card.incident.textContent = s.incident ?
        `Incident ${s.incident.id} since ${clock(s.incident.opened_at)}: ${s.incident.summary}` :
        '';
    // Its open slowdown warning: each request taking markedly longer in service than usual
    // (docs/healing.md, "Slowdown warnings").
    card.slowdown.hidden = !s.slowdown;
    card.slowdown.textContent =
        s.slowdown ? `Slower since ${clock(s.slowdown.opened_at)}: ${s.slowdown.summary}` : '';
    card.reason.textContent = s.decision
        ? `${clock(s.decision.t)} planned ${s.decision.planned_replicas}: ${s.decision.reason}`
        : "";
  }

  // Keeps one card per listed service, in the listed order.
  function syncCards(list) {
    const box = $("services");
    $("services-empty").hidden = list.services.length > 0;
    const names = new Set(list.services.map((s) => s.name));
    for (const [name, card] of cards) {
      if (!names.has(name)) { card.root.remove(); cards.delete(name); }
    }
    for (const s of list.services) {
      let card = cards.get(s.name);
      if (!card) {
        card = makeCard(s);
        cards.set(s.name, card);
      }
      box.appendChild(card.root);  // moves it into order
      if (!card.charts) card.charts = new PrescaleCharts.ServiceCharts(card.chartsBox, "svc");
      updateCard(card, s);
    }
  }

  async function refreshSeries(name, card) {
    const since = card.charts.lastT();
    const q = since == null ? "" : `?since=${since}`;
    const payload = await getJSON(`/api/v1/services/${encodeURIComponent(name)}${q}`);
    card.charts.update(payload);
    card.root.dataset.lastT = String(card.charts.lastT());
  }

  function renderGraph(graph) {
    const key = JSON.stringify(graph);
    if (key === graphKey) return;
    graphKey = key;
    PrescaleGraph.render($("graph"), graph);
  }

  function eventItem(e) {
    const li = document.createElement("li");
    li.dataset.t = String(e.t);
    li.dataset.id = String(e.id);
    li.dataset.kind = e.kind;
    const time = document.createElement("time");
    time.textContent = clock(e.t);
    time.dateTime = new Date(e.t * 1000).toISOString();
    const badge = document.createElement("span");
    badge.className = "badge " + e.kind;
    badge.textContent = e.kind;
    const what = document.createElement("span");
    what.className = "what";
    const who = document.createElement("b");
    who.textContent = e.replica ? `${e.service} ${e.replica}` : e.service;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = e.message ? " " + e.message : "";
    what.append(who, msg);
    li.append(time, badge, what);
    return li;
  }

  // The incidents, open ones first (the API's order): a line each, with its cause.
  function renderIncidents(payload) {
    const list = $('incidents');
    const key = JSON.stringify(payload.incidents);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren();
    $('incidents-empty').hidden = payload.incidents.length > 0;
    for (const i of payload.incidents.slice(0, 20)) {
      const li = document.createElement('li');
      li.className = i.resolved_at == null ? 'open' : 'resolved';
      const head = document.createElement('b');
      head.textContent = `${i.id} ${i.service} · ${clock(i.opened_at)}` +
          (i.resolved_at == null ? ' · open' :
                                   ` · resolved after ${duration(i.resolved_at - i.opened_at)}`);
      const why = document.createElement('span');
      why.className = 'msg';
      why.textContent = ' ' + (i.cause ? `likely cause: ${i.cause}` : 'no cause seen');
      li.append(head, why);
      li.title = i.summary;
      list.appendChild(li);
    }
    list.dataset.incidents = String(payload.incidents.length);
  }

  // Inserts new events by time, newest first.
  function renderEvents(payload, restarted) {
    const list = $("events");
    // A restarted controller numbers its events from 1 again: the list holds the last run's, and
    // after_id skipped as many of the new run's (last_id is lower only while it has fewer).
    if (restarted || payload.last_id < lastEventId) {
      list.replaceChildren();
      list.dataset.events = "0";
      lastEventId = 0;
      return;  // the next poll fetches them all
    }
    for (const e of payload.events.slice().reverse()) {  // oldest of the batch first
      const li = eventItem(e);
      let before = list.firstElementChild;
      while (before && Number(before.dataset.t) > e.t) before = before.nextElementSibling;
      list.insertBefore(li, before);
    }
    while (list.children.length > MAX_EVENTS_SHOWN) list.lastElementChild.remove();
    list.dataset.events = String(list.children.length);
    lastEventId = Math.max(lastEventId, payload.last_id);
  }

  async function poll() {
    try {
      const [overview, services, graph, events, incidents] = await Promise.all([
        getJSON('/api/v1/overview'),
        getJSON('/api/v1/services'),
        getJSON('/api/v1/graph'),
        getJSON(`/api/v1/events?after_id=${lastEventId}`),
        getJSON('/api/v1/incidents'),
      ]);
      renderOverview(overview);
      syncCards(services);
      await Promise.all([...cards].map(([name, card]) => refreshSeries(name, card)));
      renderGraph(graph);
      // Compared only here: a poll that failed before rendering its events must not forget it.
      const restarted = startedAt != null && overview.started_at !== startedAt;
      startedAt = overview.started_at;
      renderEvents(events, restarted);
      renderIncidents(incidents);
      setStatus("live", "live · " + clock(overview.now || Date.now() / 1000));
    } catch (err) {
      // A restart of the controller is not a page error: say so and keep polling.
      setStatus("offline", "offline, retrying");
      console.warn("dashboard: poll failed:", err.message);
    }
    setTimeout(poll, POLL_MS);
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const card of cards.values()) card.charts.resize();
    }, 150);
  });

  poll();
})();
