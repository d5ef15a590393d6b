// solarjax CME search: talks to the /api/cme JSON API of solarjax.app.server (no build step).
"use strict";

const state = { info: null, timer: null, generation: 0 };
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "n/a" : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(2));
const escape = (text) => String(text ?? "n/a").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const NAMES = { width_deg: "angular width (deg)", cpa_deg: "central position angle (deg)", excess: "brightness excess", front_height_rsun: "front height (Rsun)" };

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = kind || "";
  document.body.classList.toggle("loading", kind === "busy");
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
  return body;
}

const jsonBody = (payload) => ({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });

function sliderState() {
  const sliders = {}, hold = [];
  for (const name of state.info.steerable) {
    sliders[name] = parseFloat($(`alpha-${name}`).value);
    if ($(`hold-${name}`).checked) hold.push(name);
  }
  return { seed: parseInt($("seed").value || "0", 10), sliders, hold };
}

function filterSpec() {
  const spec = { k: parseInt($("k").value || "8", 10), rank: $("rank").value };
  if ($("t-start").value) spec.t_start = $("t-start").value;
  if ($("t-end").value) spec.t_end = $("t-end").value;
  if ($("pa-start").value !== "" && $("pa-end").value !== "") {
    spec.pa_start = parseFloat($("pa-start").value);
    spec.pa_end = parseFloat($("pa-end").value);
  }
  return spec;
}

function buildControls() {
  const limit = state.info.alpha_limit;
  for (const name of state.info.steerable) {
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<label for="alpha-${name}">${NAMES[name] || name} <span class="note">(path length <output id="out-${name}">0.00</output>)</span></label>
      <input id="alpha-${name}" type="range" min="${-limit}" max="${limit}" step="0.25" value="0">
      <label><input id="hold-${name}" type="checkbox"> hold ${name}</label>`;
    $("cme-sliders").appendChild(row);
    $(`alpha-${name}`).addEventListener("input", () => { $(`out-${name}`).textContent = parseFloat($(`alpha-${name}`).value).toFixed(2); schedule(); });
    $(`hold-${name}`).addEventListener("change", () => { $(`alpha-${name}`).disabled = $(`hold-${name}`).checked; schedule(); });
  }
  $("seed").addEventListener("change", schedule);
  $("rank").innerHTML = state.info.ranking.modes.map((m) => `<option value="${m}">${m}</option>`).join("");
  $("rank").value = state.info.ranking.default;
  $("rank-note").textContent = state.info.ranking.modes.length > 1
    ? `hybrid and physics compare ${state.info.ranking.quantities.join(", ")}`
    : "SSL similarity (the demo wrote no CME ranking)";
}

function showQuery(query, caption) {
  $("query-image").src = query.image;
  $("query-caption").textContent = caption;
  const rows = state.info.quantities.map((name) => `<tr><th>${NAMES[name] || name}</th><td>${fmt(query.quantities[name])}</td></tr>`);
  $("query-quantities").innerHTML = `<tr><th>measured</th><th>query</th></tr>${rows.join("")}`;
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(generate, 150);
}

async function generate() {
  const generation = ++state.generation;
  try {
    const query = await api("/api/cme/generate", jsonBody(sliderState()));
    if (generation === state.generation) showQuery(query, "generated CME");
  } catch (error) { setStatus(`Could not generate: ${error.message}`, "error"); }
}

function resultCard(hit, query) {
  const li = document.createElement("li");
  const rows = state.info.quantities.map((n) => `<tr><th>${n}</th><td>${fmt(hit.quantities[n])}</td><td>${fmt(query.quantities[n])}</td></tr>`).join("");
  li.innerHTML = `<img src="${hit.image_url}" alt="match ${hit.rank}, CME ${escape(hit.id)}" width="160" height="160">
    <div class="meta">#${hit.rank} similarity <b class="similarity">${hit.similarity.toFixed(3)}</b><br>
    ${escape(hit.id)}<br>${escape(hit.detector)} ${escape(hit.t_obs)}</div>
    <table><tr><th></th><th>match</th><th>query</th></tr>${rows}</table>
    <button type="button">search like this</button>`;
  li.querySelector("button").addEventListener("click", () => runSearch("/api/cme/search/row", jsonBody({ row: hit.row, filters: filterSpec() }), `CME row ${hit.row}`));
  return li;
}

async function runSearch(path, options, caption) {
  setStatus("Searching...", "busy");
  try {
    const body = await api(path, options);
    showQuery(body.query, caption);
    $("results").replaceChildren(...body.results.map((hit) => resultCard(hit, body.query)));
    $("export-csv").href = body.export.csv;
    $("exports").hidden = false;
    setStatus(`${body.results.length} matches (${body.rank} ranking).`);
  } catch (error) { setStatus(`Search failed: ${error.message}`, "error"); }
}

function searchUpload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { setStatus("Choose a .npy file first.", "error"); return; }
  if (file.size > state.info.max_upload_bytes) { setStatus(`${file.name}: over the ${state.info.max_upload_bytes} byte limit.`, "error"); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("filters", JSON.stringify(filterSpec()));
  runSearch("/api/cme/search/upload", { method: "POST", body: form }, `uploaded ${file.name}`);
}

function searchRow(event) {
  event.preventDefault();
  const text = $("row").value.trim();
  const query = /^\d+$/.test(text) ? { row: parseInt(text, 10) } : { id: text };
  runSearch("/api/cme/search/row", jsonBody({ ...query, filters: filterSpec() }), `CME ${text}`);
}

async function start() {
  try {
    state.info = await api("/api/cme/info");
    buildControls();
    $("search-button").addEventListener("click", () => runSearch("/api/cme/search/generated", jsonBody({ ...sliderState(), filters: filterSpec() }), "generated CME"));
    $("upload-form").addEventListener("submit", searchUpload);
    $("row-form").addEventListener("submit", searchRow);
    setStatus(`${state.info.num_rows} real CMEs indexed (${state.info.index_kind}).`);
    await generate();
  } catch (error) { setStatus(`Could not start: ${error.message}`, "error"); }
}

start();
