// The bullflag dashboard: a live table of CNNOutput documents from the server's event stream
// (/api/events) and, for the row clicked, its window drawn on a canvas: candles, volume and
// the Grad-CAM strip. No libraries: everything the page needs is served by the dashboard.
"use strict";

const MAX_ROWS = 2000;
const SHOWN_ROWS = 300;
const WINDOW_RETRIES = 120;
const WINDOW_RETRY_MS = 1000;
const BACKGROUND = "#0f1420";
const UP = "#26a69a";
const DOWN = "#ef5350";
const HEADS = ["flag_prob", "breakout_prob", "retest_prob", "continuation_prob"];
// Colour stops of the strip (intensity 0 to 1): dark blue, violet, orange, yellow.
const STOPS = [[0.0, [13, 8, 135]], [0.35, [126, 3, 168]], [0.65, [240, 120, 50]], [1.0, [250, 235, 35]]];

const rows = new Map();
const state = { selected: null, pending: false, seen: new Set() };
const $ = (id) => document.getElementById(id);

function utc(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z");
}

function fixed(x) {
  return Number(x).toFixed(3);
}

function filters() {
  const symbol = $("symbol-filter").value.trim().toUpperCase();
  const min = parseFloat($("min-score").value);
  return { symbol, min: Number.isFinite(min) ? min : 0 };
}

function visibleRows() {
  const { symbol, min } = filters();
  return [...rows.values()]
    .filter((r) => r.sequence_score >= min && (!symbol || r.symbol.toUpperCase().includes(symbol)))
    .sort((a, b) => b.bar_end_ts - a.bar_end_ts || b.seq - a.seq);
}

function renderTable() {
  state.pending = false;
  const shown = visibleRows();
  const body = document.createElement("tbody");
  for (const r of shown.slice(0, SHOWN_ROWS)) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.symbol = r.symbol;
    tr.dataset.score = String(r.sequence_score);
    tr.className = "signal-row";
    if (r.signal) tr.classList.add("signal");
    if (r.id === state.selected) tr.classList.add("selected");
    if (!state.seen.has(r.id)) tr.classList.add("fresh");
    const cells = [r.symbol, utc(r.last_bar_ts), ...HEADS.map((h) => fixed(r[h])), fixed(r.sequence_score)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === cells.length - 1) td.className = "score";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  for (const r of shown) state.seen.add(r.id);
  $("signals").replaceChild(body, $("signals").tBodies[0]);
  $("row-count").textContent = `${shown.length} of ${rows.size} documents`;
  document.body.dataset.rows = String(shown.length);
  const symbols = [...new Set([...rows.values()].map((r) => r.symbol))].sort();
  const list = $("symbols");
  if (list.options.length !== symbols.length) {
    list.replaceChildren(...symbols.map((s) => Object.assign(document.createElement("option"), { value: s })));
  }
}

function scheduleRender() {
  if (!state.pending) {
    state.pending = true;
    requestAnimationFrame(renderTable);
  }
}

function addRows(batch) {
  for (const r of batch) rows.set(r.id, r);
  if (rows.size > MAX_ROWS) {
    const oldest = [...rows.values()].sort((a, b) => a.seq - b.seq).slice(0, rows.size - MAX_ROWS);
    for (const r of oldest) {
      rows.delete(r.id);
      state.seen.delete(r.id);
    }
  }
  scheduleRender();
}

function pill(id, text, ok, title) {
  const el = $(id);
  el.textContent = text;
  el.dataset.state = ok === null ? "unknown" : ok ? "ok" : "bad";
  el.title = title || "";
}

function renderStatus(status) {
  const w = status.worker;
  const label = w.reachable ? (w.ready ? "worker: ready" : `worker: not ready (${w.detail})`) : "worker: unknown";
  pill("worker", label, w.reachable ? w.ready : null, w.detail);
  for (const [name, topic] of Object.entries(status.topics)) {
    pill(`topic-${name}`, `${name}: ${topic.status}`, topic.status === "following", topic.name);
  }
  const docs = status.documents;
  $("error-count").textContent = String(docs.error_total);
  $("errors").dataset.count = String(docs.error_total);
  $("error-list").replaceChildren(
    ...docs.recent_errors.map((m) => Object.assign(document.createElement("li"), { textContent: m }))
  );
  const metrics = { ...w.metrics, "documents kept": docs.kept, duplicates: docs.duplicates };
  $("metrics").replaceChildren(
    ...Object.entries(metrics).map(([k, v]) => {
      const div = document.createElement("div");
      div.append(
        Object.assign(document.createElement("dt"), { textContent: k }),
        Object.assign(document.createElement("dd"), { textContent: Number(v).toLocaleString("en-US") })
      );
      return div;
    })
  );
}

function connect() {
  const events = new EventSource("api/events");
  events.addEventListener("signals", (e) => addRows(JSON.parse(e.data)));
  events.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
  events.onopen = () => pill("connection", "live", true);
  events.onerror = () => pill("connection", "reconnecting", false);
}

function colour(t) {
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < STOPS.length; i++) {
    const [t1, c1] = STOPS[i];
    const [t0, c0] = STOPS[i - 1];
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      return `rgb(${c0.map((c, k) => Math.round(c + f * (c1[k] - c))).join(",")})`;
    }
  }
  return "rgb(250,235,35)";
}

function draw(data) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const doc = data.document;
  const W = canvas.width;
  const H = canvas.height;
  const left = 64;
  const plotW = W - left - 10;
  const price = { top: 10, h: H * 0.58 };
  const volume = { top: H * 0.62, h: H * 0.2 };
  const strip = { top: H * 0.86, h: H * 0.1 };
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, W, H);
  const n = data.n_bars;
  const step = plotW / n;
  const x = (ts) => left + ((ts - doc.window_start_ts) / doc.interval_ms) * step;
  const bars = data.bars;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#8a96ad";
  if (bars.length) {
    const lo = Math.min(...bars.map((b) => b[3]));
    const hi = Math.max(...bars.map((b) => b[2]));
    const span = hi - lo || 1;
    const y = (p) => price.top + (1 - (p - lo) / span) * price.h;
    const maxVol = Math.max(...bars.map((b) => b[5])) || 1;
    for (const [ts, open, high, low, close, vol] of bars) {
      const cx = x(ts);
      ctx.strokeStyle = ctx.fillStyle = close >= open ? UP : DOWN;
      ctx.beginPath();
      ctx.moveTo(cx + step / 2, y(high));
      ctx.lineTo(cx + step / 2, y(low));
      ctx.stroke();
      const top = y(Math.max(open, close));
      ctx.fillRect(cx + step * 0.15, top, step * 0.7, Math.max(1, y(Math.min(open, close)) - top));
      const vh = (vol / maxVol) * volume.h;
      ctx.globalAlpha = 0.6;
      ctx.fillRect(cx + step * 0.1, volume.top + volume.h - vh, step * 0.8, vh);
      ctx.globalAlpha = 1;
    }
    ctx.fillStyle = "#8a96ad";
    ctx.fillText(hi.toPrecision(6), 4, price.top + 10);
    ctx.fillText(lo.toPrecision(6), 4, price.top + price.h);
    ctx.fillText("volume", 4, volume.top + volume.h / 2);
  }
  ctx.fillText("Grad-CAM", 4, strip.top + strip.h / 2 + 4);
  if (data.cam) {
    data.cam.forEach((v, i) => {
      ctx.fillStyle = colour(v);
      ctx.fillRect(left + i * step, strip.top, Math.ceil(step), strip.h);
    });
  } else {
    ctx.fillText("no activation map: the score is below the threshold", left + 8, strip.top + strip.h / 2 + 4);
  }
  ctx.fillStyle = "#8a96ad";
  ctx.fillText(utc(doc.window_start_ts), left, H - 2);
  ctx.textAlign = "right";
  ctx.fillText(utc(doc.last_bar_ts), W - 10, H - 2);
  ctx.textAlign = "left";
  const missing = n - bars.length;
  $("chart-title").textContent =
    `${doc.symbol} ${doc.interval}, window to ${utc(doc.last_bar_ts)}: score ${fixed(doc.sequence_score)}` +
    (doc.signal ? " (signal)" : "") + (missing ? `, ${missing} of ${n} bars not (yet) available` : "");
  canvas.dataset.drawn = doc.id;
  canvas.dataset.strip = data.cam ? "map" : "none";
  canvas.dataset.bars = String(bars.length);
  canvas.dataset.complete = String(data.complete);
}

async function show(id, attempt = 0) {
  if (id !== state.selected) return;
  let reply, data;
  try {
    reply = await fetch(`api/window/${encodeURIComponent(id)}`);
    data = await reply.json();
  } catch (error) {
    $("chart-title").textContent = `cannot reach the dashboard (${error}); click the row again`;
    return;
  }
  if (id !== state.selected) return;
  if (!reply.ok) {
    $("chart-title").textContent = data.error || `cannot load ${id}`;
    return;
  }
  draw(data);
  if (!data.complete && attempt < WINDOW_RETRIES) setTimeout(() => show(id, attempt + 1), WINDOW_RETRY_MS);
}

$("signals").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (!tr) return;
  state.selected = tr.dataset.id;
  for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  tr.classList.add("selected");
  show(state.selected);
});
$("symbol-filter").addEventListener("input", renderTable);
$("min-score").addEventListener("input", renderTable);
$("filters").addEventListener("submit", (e) => e.preventDefault());
connect();
