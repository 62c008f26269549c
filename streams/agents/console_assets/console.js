// The streams web console: reads the worker's JSON endpoints every few seconds and renders them.
// Plain DOM calls only (no innerHTML): every text shown comes from the index or the sources, and is
// set as text, never parsed as HTML.
"use strict";

const KEY_STORAGE = "streams.searchKey";
const HISTORY_MS = 3600 * 1000; // the chart keeps the last hour this page has seen
const params = new URLSearchParams(window.location.search);
const REFRESH_MS = Math.max(Number(params.get("refresh")) || 5000, 200);
const history = {}; // source -> [{at, p50, p99}]
let captureAges = {};

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function seconds(value) {
  return value === null || value === undefined ? "-" : `${Number(value).toFixed(3)} s`;
}

function time(value) {
  return value ? new Date(value).toLocaleTimeString() : "-";
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function getJson(path, options) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(REFRESH_MS, 4000));
  try {
    const response = await fetch(path, { ...(options || {}), signal: controller.signal, headers: { Accept: "application/json", ...((options || {}).headers || {}) } });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = { error: `${response.status} ${response.statusText}` };
    }
    return { status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

function storedKey() {
  return window.sessionStorage.getItem(KEY_STORAGE) || "";
}

function authHeaders() {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// -- health --------------------------------------------------------------------------------------

async function refreshHealth() {
  const verdict = document.getElementById("health-verdict");
  const reasons = document.getElementById("health-reasons");
  try {
    const { status, body } = await getJson("/health");
    // "behind" is healthy (200): the heartbeats are queued behind a backlog that drains. It is shown
    // apart, so that a backlog is not read as a stall nor as nothing to watch.
    const healthy = status === 200 && body.healthy === true;
    const shown = !healthy ? "unhealthy" : body.status === "behind" ? "behind" : "healthy";
    verdict.textContent = shown;
    verdict.className = `verdict ${shown}`;
    document.getElementById("health-threshold").textContent =
      body.threshold_s !== undefined ? `(capture age threshold ${body.threshold_s} s)` : "";
    reasons.replaceChildren(...(body.reasons || []).map((reason) => el("li", {}, reason)));
    captureAges = body.capture_age_s || {};
    document.getElementById("worker-id").textContent = body.worker_id || "";
  } catch (error) {
    verdict.textContent = "no answer";
    verdict.className = "verdict unknown";
    reasons.replaceChildren(el("li", {}, `/health did not answer: ${error}`));
  }
}

// -- freshness -----------------------------------------------------------------------------------

function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  const usable = points.filter((p) => p.p99 !== null);
  if (usable.length < 2) return svg;
  const top = Math.max(...usable.map((p) => p.p99), 0.001);
  const first = usable[0].at;
  const span = Math.max(usable[usable.length - 1].at - first, 1);
  for (const field of ["p50", "p99"]) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", field);
    line.setAttribute(
      "points",
      usable.map((p) => `${(((p.at - first) / span) * 100).toFixed(1)},${(20 - (p[field] / top) * 19).toFixed(1)}`).join(" ")
    );
    svg.append(line);
  }
  const title = document.createElementNS(ns, "title");
  title.textContent = `live p50 (blue) and p99 (amber), top ${top.toFixed(3)} s`;
  svg.append(title);
  return svg;
}

function remember(source, figures) {
  const now = Date.now();
  const points = (history[source] = (history[source] || []).filter((p) => now - p.at < HISTORY_MS));
  points.push({ at: now, p50: figures.p50_s, p99: figures.p99_s });
}

async function refreshFreshness() {
  const status = document.getElementById("freshness-status");
  const tbody = document.querySelector("#freshness tbody");
  try {
    const { body } = await getJson("/freshness");
    status.textContent = "";
    const sources = body.sources || [];
    const select = document.getElementById("search-source");
    for (const figures of sources) {
      remember(figures.source, figures);
      if (![...select.options].some((option) => option.value === figures.source)) {
        select.append(el("option", { value: figures.source }, figures.source));
      }
    }
    fill(
      tbody,
      sources.map((f) =>
        el(
          "tr",
          { "data-source": f.source, id: `freshness-${f.source}` },
          el("td", {}, f.source),
          el("td", {}, f.events),
          el("td", { class: "live-p50" }, seconds(f.p50_s)),
          el("td", { class: "live-p99" }, seconds(f.p99_s)),
          el("td", {}, f.snapshot_events),
          el("td", { class: "snapshot-p50" }, seconds(f.snapshot_p50_s)),
          el("td", { class: "snapshot-p99" }, seconds(f.snapshot_p99_s)),
          el("td", {}, seconds(f.oldest_unindexed_age_s)),
          el("td", { class: "capture-age" }, seconds(captureAges[f.source])),
          el("td", {}, sparkline(history[f.source] || []))
        )
      )
    );
  } catch (error) {
    status.textContent = `/freshness did not answer yet (${error.name === "AbortError" ? "the worker is starting" : error})`;
  }
}

// -- lag and dead letters ------------------------------------------------------------------------

function drainText(lane) {
  if (lane.messages === 0) return "none behind";
  if (lane.drain_s !== null) return `about ${Math.round(lane.drain_s)} s`;
  return lane.drain_per_s === null ? "-" : "not draining";
}

async function refreshState() {
  const { body } = await getJson("/console/state");
  document.getElementById("lag-status").textContent = body.lag_read_at
    ? `as read at ${time(body.lag_read_at)}`
    : "not read yet (read every freshness interval)";
  fill(
    document.querySelector("#lag tbody"),
    body.lanes.map((lane) =>
      el(
        "tr",
        { "data-lane": lane.lane },
        el("td", {}, lane.lane),
        el("td", { class: "messages" }, lane.messages),
        el("td", {}, lane.drain_per_s === null ? "-" : lane.drain_per_s.toFixed(1)),
        el("td", { class: "drain" }, drainText(lane)),
        el("td", {}, Object.entries(lane.topics).map(([topic, n]) => `${topic}: ${n}`).join(", ") || "-")
      )
    )
  );
  document.getElementById("dead-letter-topic").textContent = body.dead_letter_topic;
  const stages = Object.entries(body.dead_letters);
  fill(
    document.querySelector("#dead-letters tbody"),
    stages.length
      ? stages.map(([stage, count]) => el("tr", { "data-stage": stage }, el("td", {}, stage), el("td", {}, count)))
      : [el("tr", {}, el("td", { colspan: "2" }, "none"))]
  );
}

// -- receipts ------------------------------------------------------------------------------------

async function refreshReceipts() {
  const status = document.getElementById("receipts-status");
  const table = document.getElementById("receipts");
  const { status: code, body } = await getJson("/console/receipts", { headers: authHeaders() });
  if (code !== 200) {
    status.textContent = body.error_description || body.error || `HTTP ${code}`;
    return;
  }
  table.classList.toggle("detailed", body.detailed === true);
  status.textContent = body.detailed
    ? `from ${body.topic}; subjects shown to this operator key`
    : `from ${body.topic}; subjects are shown only with an operator key`;
  fill(
    table.querySelector("tbody"),
    body.receipts.length
      ? body.receipts.map((r) =>
          el(
            "tr",
            { "data-request": r.request_id },
            el("td", {}, r.request_id),
            el("td", { class: "status" }, r.status),
            el("td", {}, time(r.received_at)),
            el("td", {}, r.status === "rejected" || r.status === "failed" ? "-" : time(r.unsearchable_at)),
            el("td", {}, time(r.purged_at)),
            el("td", {}, r.chunks_removed),
            el("td", { class: "detail" }, r.subject || ""),
            el("td", { class: "detail" }, r.error || "")
          )
        )
      : [el("tr", {}, el("td", { colspan: "6" }, "no receipts yet"))]
  );
}

// -- search --------------------------------------------------------------------------------------

// A highlight is the index's text with <em> around the matches: only those marks become elements.
function highlighted(fragment) {
  const node = el("span", {});
  fragment.split(/(<em>.*?<\/em>)/).forEach((part) => {
    const match = /^<em>(.*)<\/em>$/.exec(part);
    node.append(match ? el("mark", {}, match[1]) : document.createTextNode(part));
  });
  return node;
}

function safeLink(link, title) {
  try {
    const url = new URL(link, window.location.href);
    if (url.protocol === "http:" || url.protocol === "https:") return el("a", { href: url.href, rel: "noreferrer" }, title);
  } catch (error) {
    // not a URL: shown as text
  }
  return el("span", {}, title);
}

function hitItem(hit) {
  const chunks = hit.chunks.map((chunk) =>
    el(
      "div",
      { class: "chunk" },
      el("div", {}, ...(chunk.highlights.length ? chunk.highlights.map(highlighted) : [chunk.text.slice(0, 300)])),
      el(
        "div",
        { class: "provenance" },
        `${chunk.section || ""} · bm25 rank ${chunk.bm25_rank ?? "-"} · kNN rank ${chunk.knn_rank ?? "-"} · ` +
          `${chunk.provenance.index} · ${chunk.provenance.model || "?"} · ${chunk.provenance.chunker || "?"}`
      )
    )
  );
  return el(
    "li",
    { "data-document": hit.document_id },
    el("strong", {}, safeLink(hit.link, hit.title || hit.document_id)),
    ` (${hit.source}, score ${hit.score})`,
    ...chunks
  );
}

async function search(event) {
  event.preventDefault();
  const error = document.getElementById("search-error");
  const summary = document.getElementById("search-summary");
  const results = document.getElementById("search-results");
  const key = document.getElementById("search-key").value.trim();
  if (key) window.sessionStorage.setItem(KEY_STORAGE, key);
  const query = new URLSearchParams({ q: document.getElementById("search-q").value, k: document.getElementById("search-k").value });
  const source = document.getElementById("search-source").value;
  if (source) query.set("source", source);
  error.textContent = "";
  summary.textContent = "searching…";
  try {
    const { status, body } = await getJson(`/search?${query}`, { headers: authHeaders() });
    if (status !== 200) {
      summary.textContent = "";
      results.replaceChildren();
      error.textContent = `${status}: ${body.error_description || body.error || JSON.stringify(body)}`;
      return;
    }
    const total = body.total === undefined || body.total === null ? "" : `, ${body.total}${body.total_relation === "gte" ? "+" : ""} containing the words`;
    summary.textContent =
      `${body.hits.length} ${body.hits.length === 1 ? "hit" : "hits"} for ${body.caller}` +
      (body.groups ? ` (groups ${body.groups.join(", ") || "none"})` : " (every group)") +
      total;
    results.replaceChildren(...body.hits.map(hitItem));
  } catch (failure) {
    summary.textContent = "";
    error.textContent = `/search did not answer: ${failure}`;
  }
  refreshReceipts().catch(() => {});
}

// -- the loop ------------------------------------------------------------------------------------

async function refresh() {
  // Health first: the freshness rows show its capture ages.
  await refreshHealth();
  const panels = [refreshFreshness(), refreshState(), refreshReceipts()];
  const outcomes = await Promise.allSettled(panels);
  for (const outcome of outcomes) {
    if (outcome.status === "rejected") console.warn("console panel not refreshed:", outcome.reason);
  }
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

async function loop() {
  try {
    await refresh();
  } finally {
    setTimeout(loop, REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search-key").value = storedKey();
  document.getElementById("search-form").addEventListener("submit", search);
  document.getElementById("search-forget-key").addEventListener("click", () => {
    window.sessionStorage.removeItem(KEY_STORAGE);
    document.getElementById("search-key").value = "";
    refreshReceipts().catch(() => {});
  });
  loop();
});
