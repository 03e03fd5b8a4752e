/// The live dashboard (`GET /api/realtime/`): one self-contained page, no external scripts, styles or fonts, so it
/// works offline. It connects to `/api/realtime/ws` on its own host (passing on its `token`, `event_type` and
/// `page` query parameters), shows only what the server sends, and reconnects with backoff.
enum RealtimeDashboard {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Analytics API · Realtime</title>
<style>
  :root { --bg:#0f172a; --panel:#111c33; --line:#23314f; --text:#e2e8f0; --muted:#94a3b8; --accent:#38bdf8; --ok:#22c55e; --bad:#ef4444; --warn:#f59e0b; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; justify-content:space-between; padding:16px 24px; border-bottom:1px solid var(--line); }
  h1 { font-size:18px; margin:0; font-weight:600; }
  h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:0 0 10px; font-weight:600; }
  #status { display:flex; align-items:center; gap:8px; color:var(--muted); }
  #status .dot { width:10px; height:10px; border-radius:50%; background:var(--warn); }
  #status.live .dot { background:var(--ok); box-shadow:0 0 8px var(--ok); }
  #status.down .dot { background:var(--bad); }
  main { padding:20px 24px; display:grid; gap:16px; grid-template-columns: repeat(12, 1fr); }
  .card { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
  .metric { grid-column: span 12; }
  @media (min-width: 700px) { .metric { grid-column: span 4; } }
  @media (min-width: 1100px) { .metric { grid-column: span 2; } .metric.wide { grid-column: span 4; } }
  .metric .value { font-size:28px; font-weight:650; font-variant-numeric: tabular-nums; }
  .metric .label { color:var(--muted); font-size:12px; }
  .chart { grid-column: span 12; }
  @media (min-width: 1100px) { .chart { grid-column: span 8; } .pages { grid-column: span 4; } }
  .pages { grid-column: span 12; }
  .events { grid-column: span 12; }
  svg { width:100%; height:180px; display:block; }
  ol { margin:0; padding:0; list-style:none; }
  #top-pages li { display:grid; grid-template-columns: 1fr auto; gap:8px; padding:4px 0; position:relative; }
  #top-pages .bar { position:absolute; left:0; bottom:0; height:2px; background:var(--accent); }
  #top-pages .page, #events .page { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; font-size:12px; }
  td.page { max-width:380px; }
  tr.fresh { animation: flash 1.2s ease-out; }
  @keyframes flash { from { background:#1e3a5f; } to { background:transparent; } }
  .muted { color:var(--muted); }
  .empty { color:var(--muted); padding:8px 0; }
</style>
</head>
<body>
<header>
  <h1>Analytics API · Realtime</h1>
  <div id="status" class="connecting"><span class="dot"></span><span id="status-text">connecting…</span></div>
</header>
<main>
  <section class="card metric wide"><div class="label">Total events</div><div class="value" id="total-events">–</div></section>
  <section class="card metric"><div class="label">Active sessions (5 min)</div><div class="value" id="active-sessions">–</div></section>
  <section class="card metric"><div class="label">Page views (last min)</div><div class="value" id="page-views">–</div></section>
  <section class="card metric"><div class="label">Events / second</div><div class="value" id="eps">–</div></section>
  <section class="card metric"><div class="label">Avg duration (5 min)</div><div class="value" id="avg-duration">–</div></section>
  <section class="card chart">
    <h2>Events per second <span class="muted" id="chart-range"></span></h2>
    <svg id="chart" viewBox="0 0 600 180" preserveAspectRatio="none" role="img" aria-label="events per second">
      <g id="grid"></g><path id="area" fill="rgba(56,189,248,.15)"></path><path id="line" fill="none" stroke="#38bdf8" stroke-width="2"></path>
    </svg>
  </section>
  <section class="card pages">
    <h2>Top pages now</h2>
    <ol id="top-pages"><li class="empty">no page views in the last 5 minutes</li></ol>
  </section>
  <section class="card events">
    <h2>Live events <span class="muted" id="event-count"></span></h2>
    <table>
      <thead><tr><th>Time</th><th>Type</th><th>Page</th><th>Visitor</th><th>Session</th><th>Device</th><th>Country</th></tr></thead>
      <tbody id="events"><tr class="empty"><td colspan="7">waiting for events…</td></tr></tbody>
    </table>
  </section>
</main>
<script>
(function () {
  "use strict";
  const MAX_EVENTS = 50, MAX_POINTS = 300;
  const $ = (id) => document.getElementById(id);
  const number = new Intl.NumberFormat();
  let history = [];          // events per second, oldest first, one point per stats message
  let lastStatsTime = null;
  let received = 0;
  let attempt = 0;

  function setStatus(kind, text) {
    $("status").className = kind;
    $("status-text").textContent = text;
  }

  function socketURL() {
    const own = new URLSearchParams(location.search);
    const params = new URLSearchParams();
    for (const name of ["token", "event_type", "page"]) if (own.get(name)) params.set(name, own.get(name));
    const query = params.toString();
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/realtime/ws" + (query ? "?" + query : "");
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
  }

  function showEvent(event, fresh) {
    const body = $("events");
    if (body.querySelector('tr[data-id="' + Number(event.id) + '"]')) return;
    const placeholder = body.querySelector("tr.empty");
    if (placeholder) placeholder.remove();
    const row = document.createElement("tr");
    if (fresh) row.className = "fresh";
    row.dataset.id = event.id;
    cell(row, new Date(event.time).toLocaleTimeString());
    cell(row, event.event_type);
    cell(row, event.page, "page");
    cell(row, event.user_id || event.session_id);
    cell(row, event.session_id);
    cell(row, [event.device_type, event.browser].filter(Boolean).join(" · ") || null);
    cell(row, event.country);
    body.insertBefore(row, body.firstChild);
    while (body.children.length > MAX_EVENTS) body.removeChild(body.lastChild);
    received += 1;
    $("event-count").textContent = "(" + number.format(received) + " received)";
  }

  function showStats(stats) {
    $("total-events").textContent = number.format(stats.total_events);
    $("active-sessions").textContent = number.format(stats.active_sessions);
    $("page-views").textContent = number.format(stats.page_views_last_minute);
    $("eps").textContent = stats.events_per_second.toFixed(1);
    $("avg-duration").textContent = stats.avg_duration == null ? "–" : stats.avg_duration.toFixed(1) + " s";
    const pages = $("top-pages");
    pages.replaceChildren();
    if (stats.top_pages.length === 0) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = "no page views in the last 5 minutes"; pages.appendChild(li);
    }
    const most = Math.max(1, ...stats.top_pages.map((p) => p.views));
    for (const entry of stats.top_pages) {
      const li = document.createElement("li");
      const page = document.createElement("span"); page.className = "page"; page.textContent = entry.page;
      const views = document.createElement("span"); views.textContent = number.format(entry.views);
      const bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (100 * entry.views / most) + "%";
      li.append(page, views, bar);
      pages.appendChild(li);
    }
    // The first message after (re)connecting brings the last minute; later ones add their newest second.
    const time = Date.parse(stats.time);
    if (lastStatsTime === null || time - lastStatsTime > 5000) history = stats.per_second.slice();
    else if (time > lastStatsTime) history.push(stats.per_second[stats.per_second.length - 1]);
    lastStatsTime = time;
    if (history.length > MAX_POINTS) history = history.slice(history.length - MAX_POINTS);
    drawChart();
  }

  function drawChart() {
    const width = 600, height = 180, top = 10, bottom = 170;
    const peak = Math.max(1, ...history);
    const scale = niceCeiling(peak);
    const step = history.length > 1 ? width / (history.length - 1) : width;
    const points = history.map((value, i) => [i * step, bottom - (bottom - top) * value / scale]);
    const line = points.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
    $("line").setAttribute("d", line);
    $("area").setAttribute("d", points.length ? line + " L" + points[points.length - 1][0].toFixed(1) + " " + bottom + " L0 " + bottom + " Z" : "");
    const grid = $("grid");
    grid.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const y = bottom - (bottom - top) * fraction;
      const rule = document.createElementNS("http://www.w3.org/2000/svg", "line");
      rule.setAttribute("x1", 0); rule.setAttribute("x2", width); rule.setAttribute("y1", y); rule.setAttribute("y2", y);
      rule.setAttribute("stroke", "#23314f");
      const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
      label.setAttribute("x", 4); label.setAttribute("y", y - 3); label.setAttribute("fill", "#94a3b8"); label.setAttribute("font-size", "10");
      label.textContent = number.format(scale * fraction) + "/s";
      grid.append(rule, label);
    }
    $("chart-range").textContent = "(last " + history.length + " s)";
  }

  function niceCeiling(value) {
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 5, 10]) if (m * power >= value) return m * power;
    return 10 * power;
  }

  function connect() {
    setStatus("connecting", attempt ? "reconnecting…" : "connecting…");
    let socket;
    try { socket = new WebSocket(socketURL()); } catch (error) { scheduleReconnect(); return; }
    let pinger = null;
    socket.onopen = () => {
      attempt = 0;
      setStatus("live", "live");
      pinger = setInterval(() => { if (socket.readyState === WebSocket.OPEN) socket.send("ping"); }, 25000);
    };
    socket.onmessage = (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch (error) { return; }
      if (data.type === "event") showEvent(data.event, !data.recent);
      else if (data.type === "stats") showStats(data);
    };
    socket.onclose = () => { if (pinger) clearInterval(pinger); scheduleReconnect(); };
    socket.onerror = () => socket.close();
  }

  function scheduleReconnect() {
    attempt += 1;
    const delay = Math.min(30000, 1000 * Math.pow(2, attempt - 1)) * (0.8 + 0.4 * Math.random());
    let remaining = Math.round(delay / 1000);
    setStatus("down", "disconnected · retrying in " + remaining + " s");
    const countdown = setInterval(() => {
      remaining -= 1;
      if (remaining > 0) setStatus("down", "disconnected · retrying in " + remaining + " s");
    }, 1000);
    setTimeout(() => { clearInterval(countdown); connect(); }, delay);
  }

  drawChart();
  connect();
})();
</script>
</body>
</html>
"""#
}
