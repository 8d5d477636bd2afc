// oddity inspection UI: plain JavaScript, no libraries, nothing fetched from elsewhere.
// Data from the service is put into the page with textContent only, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { models: {}, results: [], cursors: [], cursor: null, next: null, rows: [], selected: -1 };

function status(text) { $("#status").textContent = text; }
function apiKey() { return sessionStorage.getItem("oddity-api-key") || ""; }
function model() { return state.models[$("#model").value]; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : `${response.status} ${response.statusText}`;
    status(message);
    throw new Error(message);
  }
  status("");
  return body;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function fmt(value) { return value === null || value === undefined ? "" : Number(value).toPrecision(4); }

// --- tabs ---------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $("#inspect").hidden = name !== "inspect";
  $("#history").hidden = name !== "history";
  $("#model-page").hidden = name !== "model";
  if (name === "history") loadHistory(state.cursor);
  if (name === "model") loadModelPage();
}

// --- models and the threshold slider ------------------------------------------------------
async function loadModels() {
  const body = await api("/v1/models");
  const select = $("#model");
  select.replaceChildren();
  for (const m of body.models) {
    state.models[m.name] = m;
    select.append(element("option", { value: m.name, text: `${m.name} (${m.detector})` }));
  }
  resetThreshold();
}

function sliderRange() {
  const m = model();
  const scores = state.results.map((r) => r.score);
  const high = Math.max(2 * m.threshold, ...scores.map((s) => 1.2 * s));
  const slider = $("#threshold");
  slider.min = 0;
  slider.max = high;
}

function resetThreshold() {
  if (!model()) return;
  sliderRange();
  $("#threshold").value = model().threshold;
  relabel();
}

function relabel() {
  const threshold = Number($("#threshold").value);
  $("#threshold-value").textContent = fmt(threshold);
  for (const card of document.querySelectorAll("#results .card")) {
    const anomalous = Number(card.dataset.score) > threshold;
    const badge = card.querySelector(".badge");
    badge.textContent = anomalous ? "anomalous" : "normal";
    badge.className = `badge ${anomalous ? "anomalous" : "normal"}`;
  }
}

function setOpacity() {
  document.querySelectorAll("img.heat").forEach((img) => { img.style.opacity = $("#opacity").value; });
}

// --- inspect ------------------------------------------------------------------------------
async function upload(files) {
  const images = [...files];
  if (!images.length || !model()) return;
  if (model().kind === "series") { await uploadSeries(images); return; }
  const form = new FormData();
  images.forEach((file) => form.append("images", file, file.name));
  status(`scoring ${images.length} image(s)...`);
  const body = await api(`/v1/models/${encodeURIComponent(model().name)}:predict`, { method: "POST", body: form });
  body.results.forEach((result, i) => { result.localUrl = URL.createObjectURL(images[i]); });
  state.results = [...body.results, ...state.results];
  sliderRange();
  renderResults();
}

async function uploadSeries(files) {
  const cards = [];
  for (const file of files) {
    status(`scoring ${file.name}...`);
    const body = await api(`/v1/models/${encodeURIComponent(model().name)}:predict`,
      { method: "POST", headers: { "Content-Type": "text/csv" }, body: await file.text() });
    const rows = body.ranges.map((r) => element("tr", {}, element("td", { text: String(r.start) }),
      element("td", { text: String(r.end) }), element("td", { text: String(r.steps) }),
      element("td", { text: fmt(r.peak_score) })));
    cards.push(element("div", { class: "card series", "data-testid": "series-result" },
      element("div", { text: `${file.name}: ${body.steps} steps, ${body.anomalous_steps} anomalous in ` +
                             `${body.ranges.length} range(s) · ${fmt(body.latency_ms)} ms` }),
      element("table", { "data-testid": "ranges" }, element("tr", {}, ...["start", "end", "steps", "peak score"]
        .map((h) => element("th", { text: h }))), ...rows)));
  }
  $("#results").replaceChildren(...cards);
}

function renderResults() {
  const cards = state.results.map((r) => {
    const frame = element("div", { class: "frame" }, element("img", { src: r.localUrl, alt: r.filename }));
    if (r.map_png_base64) {
      frame.append(element("img", { class: "heat", "data-testid": "heat-map", alt: "anomaly map",
                                    src: `data:image/png;base64,${r.map_png_base64}` }));
    }
    const card = element("div", { class: "card", "data-testid": "result", "data-score": r.score },
      frame,
      element("div", {}, element("span", { class: "badge", "data-testid": "label" }), " ",
              element("span", { text: `score ${fmt(r.score)} · #${r.id}` })),
      element("div", { class: "hint", text: `${r.filename} · ${fmt(r.latency_ms)} ms` }));
    return card;
  });
  $("#results").replaceChildren(...cards);
  relabel();
  setOpacity();
}

// --- history and review -------------------------------------------------------------------
function filterParams() {
  const params = new URLSearchParams({ limit: "20", model: model().name });
  const form = $("#filters");
  for (const name of ["label", "verdict"]) if (form[name].value) params.set(name, form[name].value);
  for (const name of ["since", "until"]) {
    if (form[name].value) params.set(name, new Date(form[name].value).toISOString());
  }
  return params;
}

async function loadHistory(cursor) {
  if (!model()) return;
  const params = filterParams();
  if (cursor) params.set("cursor", cursor);
  const body = await api(`/v1/inspections?${params}`);
  state.cursor = cursor;
  state.next = body.next_cursor;
  state.rows = body.inspections;
  $("#older").disabled = !state.next;
  $("#newer").disabled = state.cursors.length === 0;
  renderRows();
  select(state.rows.length ? 0 : -1);
}

function renderRows() {
  const rows = state.rows.map((r, i) => {
    const row = element("tr", { "data-testid": "history-row", "data-id": r.id },
      element("td", { text: r.id }), element("td", { text: r.created_at.replace("T", " ").slice(0, 19) }),
      element("td", { text: r.filename }), element("td", { text: fmt(r.score) }),
      element("td", { text: r.label }), element("td", { "data-testid": "verdict", text: r.verdict ? r.verdict.verdict : "" }));
    row.addEventListener("click", () => select(i));
    return row;
  });
  $("#rows tbody").replaceChildren(...rows);
}

async function select(index) {
  state.selected = index;
  document.querySelectorAll("#rows tbody tr").forEach((tr, i) => tr.classList.toggle("selected", i === index));
  if (index < 0) { $("#detail").replaceChildren(); return; }
  const item = await api(`/v1/inspections/${state.rows[index].id}`);
  const frame = element("div", { class: "frame" },
    element("img", { alt: item.filename, src: `data:${item.image.media_type};base64,${item.image.base64}` }));
  if (item.map) frame.append(element("img", { class: "heat", alt: "anomaly map", src: `data:image/png;base64,${item.map.base64}` }));
  const buttons = [["confirmed_defect", "Confirm defect (c)"], ["false_alarm", "False alarm (f)"], ["unsure", "Unsure (u)"]]
    .map(([verdict, text]) => {
      const button = element("button", { type: "button", "data-verdict": verdict, text });
      button.addEventListener("click", () => review(verdict));
      return button;
    });
  $("#detail").replaceChildren(
    element("h3", { text: `#${item.id} ${item.filename}` }), frame,
    element("p", { text: `score ${fmt(item.score)} (threshold ${fmt(item.threshold)}, ${item.threshold_source}) · ${item.label}` }),
    element("p", { "data-testid": "detail-verdict",
                   text: item.verdict ? `verdict: ${item.verdict.verdict} by ${item.verdict.who}` : "not reviewed" }),
    element("div", { class: "review" }, ...buttons));
  setOpacity();
}

async function review(verdict) {
  if (state.selected < 0) return;
  const row = state.rows[state.selected];
  const body = await api(`/v1/inspections/${row.id}/verdict`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ verdict, who: $("#who").value || "operator", note: "" }),
  });
  state.rows[state.selected] = body;
  renderRows();
  await select(Math.min(state.selected + 1, state.rows.length - 1));
}

function onKey(event) {
  if ($("#history").hidden || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
  const actions = { c: "confirmed_defect", f: "false_alarm", u: "unsure" };
  if (event.key in actions) review(actions[event.key]);
  else if (event.key === "j" && state.selected < state.rows.length - 1) select(state.selected + 1);
  else if (event.key === "k" && state.selected > 0) select(state.selected - 1);
}

// --- model page ---------------------------------------------------------------------------
async function loadModelPage() {
  if (!model()) return;
  const page = await api(`/v1/models/${encodeURIComponent(model().name)}`);
  state.models[page.name].threshold = page.threshold;
  const facts = [["detector", page.detector], ["version", page.version], ["threshold in force", fmt(page.threshold)],
    ["threshold in the model file", fmt(page.model_threshold)], ["target FPR", page.target_fpr],
    ...Object.entries(page.counts)];
  const report = page.report
    ? element("p", {}, element("a", { href: `/v1/models/${encodeURIComponent(page.name)}/report/`, target: "_blank",
                                      rel: "noopener", "data-testid": "report", text: "Evaluation report (oddity eval --report)" }))
    : element("p", { class: "hint", text: "No evaluation report beside this model." });
  $("#model-info").replaceChildren(element("h2", { text: page.name }),
    element("table", { "data-testid": "model-facts" },
      ...facts.map(([k, v]) => element("tr", {}, element("th", { text: k }), element("td", { text: String(v ?? "") })))),
    report);
  $("#threshold-history tbody").replaceChildren(...page.threshold_history.map((h) => element("tr", {},
    element("td", { text: h.created_at.replace("T", " ").slice(0, 19) }), element("td", { text: fmt(h.old_value) }),
    element("td", { text: fmt(h.new_value) }), element("td", { text: String(h.target_fpr) }),
    element("td", { text: h.who }), element("td", { text: h.why }))));
}

async function recalibrate(apply) {
  const form = $("#recalibrate");
  const body = { target_fpr: Number(form.target_fpr.value), apply };
  if (apply) Object.assign(body, { who: form.who.value, why: form.why.value });
  const answer = await api(`/v1/models/${encodeURIComponent(model().name)}/threshold:recalibrate`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  $("#proposal").textContent = JSON.stringify(answer, null, 2);
  if (apply) { await loadModelPage(); resetThreshold(); }
}

// --- wiring -------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#api-key").value = apiKey();
  $("#api-key").addEventListener("change", (e) => { sessionStorage.setItem("oddity-api-key", e.target.value); loadModels(); });
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#model").addEventListener("change", () => { state.results = []; renderResults(); resetThreshold(); });
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
  $("#files").addEventListener("change", (e) => upload(e.target.files));
  $("#threshold").addEventListener("input", relabel);
  $("#threshold-reset").addEventListener("click", resetThreshold);
  $("#opacity").addEventListener("input", setOpacity);
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); state.cursors = []; loadHistory(null); });
  $("#older").addEventListener("click", () => { state.cursors.push(state.cursor); loadHistory(state.next); });
  $("#newer").addEventListener("click", () => loadHistory(state.cursors.pop() || null));
  $("#recalibrate").addEventListener("submit", (e) => { e.preventDefault(); recalibrate(false); });
  $("#apply").addEventListener("click", () => recalibrate(true));
  document.addEventListener("keydown", onKey);
  loadModels().catch(() => {});
});
