// solarjax reverse image search: talks to the JSON API of solarjax.app.server (no build step).
"use strict";

const state = { info: null, map: null, generateTimer: null, generation: 0 };
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "n/a" : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(3));

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
  document.body.classList.toggle("loading", kind === "busy");
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function sliderState() {
  const sliders = {}, hold = [];
  for (const name of state.info.steerable) {
    sliders[name] = parseFloat($(`alpha-${name}`).value);
    if ($(`hold-${name}`).checked) hold.push(name);
  }
  return { seed: parseInt($("seed").value || "0", 10), sliders, hold };
}

function filterSpec() {
  const spec = { k: parseInt($("k").value || "8", 10), one_per_harp: $("one-per-harp").checked,
                 exclude_same_harp: $("exclude-same-harp").checked };
  if ($("hemisphere").value) spec.hemisphere = $("hemisphere").value;
  if ($("t-start").value) spec.t_start = $("t-start").value;
  if ($("t-end").value) spec.t_end = $("t-end").value;
  return spec;
}

function buildSliders() {
  const box = $("sliders");
  for (const name of state.info.steerable) {
    const limit = state.info.alpha_limit;
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<label for="alpha-${name}">${name} <output id="out-${name}">0.00</output></label>
      <input id="alpha-${name}" type="range" min="${-limit}" max="${limit}" step="0.1" value="0">
      <label><input id="hold-${name}" type="checkbox"> hold ${name}</label>`;
    box.appendChild(row);
    $(`alpha-${name}`).addEventListener("input", () => { $(`out-${name}`).textContent = parseFloat($(`alpha-${name}`).value).toFixed(2); scheduleGenerate(); });
    $(`hold-${name}`).addEventListener("change", () => { $(`alpha-${name}`).disabled = $(`hold-${name}`).checked; scheduleGenerate(); });
  }
  $("seed").addEventListener("change", scheduleGenerate);
}

function showQuery(query, caption, results) {
  $("query-image").src = query.image;
  $("query-caption").textContent = caption;
  const rows = state.info.quantities.map((name) => `<tr><th>${name}</th><td>${fmt(query.quantities[name])}</td></tr>`);
  $("query-quantities").innerHTML = `<tr><th>quantity</th><th>query</th></tr>${rows.join("")}`;
  drawMap(query.map_xy, results || []);
}

function scheduleGenerate() {
  clearTimeout(state.generateTimer);
  state.generateTimer = setTimeout(generate, 120);
}

async function generate() {
  const generation = ++state.generation;
  try {
    const query = await api("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(sliderState()) });
    if (generation === state.generation) showQuery(query, "generated patch");
  } catch (error) { setStatus(`Could not generate: ${error.message}`, "error"); }
}

function resultCard(hit, query) {
  const li = document.createElement("li");
  const names = ["tuf", "psep", "r_value", "tilt"];
  const rows = names.map((n) => `<tr><th>${n}</th><td>${fmt(hit.quantities[n])}</td><td>${fmt(query.quantities[n])}</td></tr>`).join("");
  li.innerHTML = `<img src="${hit.image_url}" alt="match ${hit.rank}, HARP ${hit.harpnum}" width="160" height="160">
    <div class="meta">#${hit.rank} similarity <b class="similarity">${hit.similarity.toFixed(3)}</b><br>
    HARP ${hit.harpnum} NOAA ${hit.noaa_ar || "-"}<br>T_REC ${hit.t_rec || "n/a"}<br>
    lat ${fmt(hit.lat_deg)} lon ${fmt(hit.lon_deg)}</div>
    <table><tr><th></th><th>match</th><th>query</th></tr>${rows}</table>
    <button type="button" data-row="${hit.row}">search like this</button>`;
  li.querySelector("button").addEventListener("click", () => runSearch("/api/search/row", jsonBody({ row: hit.row, filters: filterSpec() }), `table row ${hit.row}`));
  return li;
}

function jsonBody(payload) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) };
}

async function runSearch(path, options, caption) {
  setStatus("Searching...", "busy");
  try {
    const body = await api(path, options);
    showQuery(body.query, caption, body.results);
    const list = $("results");
    list.replaceChildren(...body.results.map((hit) => resultCard(hit, body.query)));
    $("export-csv").href = body.export.csv;
    $("export-png").href = body.export.png;
    $("exports").hidden = false;
    setStatus(`${body.results.length} matches`, "");
  } catch (error) { setStatus(`Search failed: ${error.message}`, "error"); }
}

function searchGenerated() {
  runSearch("/api/search/generated", jsonBody({ ...sliderState(), filters: filterSpec() }), "generated patch");
}

function searchUpload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { setStatus("Choose a FITS or NPY file first.", "error"); return; }
  if (file.size > state.info.max_upload_bytes) { setStatus(`${file.name}: larger than ${state.info.max_upload_bytes} bytes`, "error"); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("filters", JSON.stringify(filterSpec()));
  runSearch("/api/search/upload", { method: "POST", body: form }, `uploaded ${file.name} (preprocessed)`);
}

function drawMap(queryXY, results) {
  if (!state.map) return;
  const svg = $("map"), W = 600, H = 400, pad = 20;
  const xs = state.map.xy.map((p) => p[0]).concat(queryXY ? [queryXY[0]] : []);
  const ys = state.map.xy.map((p) => p[1]).concat(queryXY ? [queryXY[1]] : []);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (W - 2 * pad) * (x - x0) / ((x1 - x0) || 1);
  const sy = (y) => H - pad - (H - 2 * pad) * (y - y0) / ((y1 - y0) || 1);
  const parts = state.map.xy.map((p) => `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="2"></circle>`);
  for (const hit of results) {
    parts.push(`<image href="${hit.image_url}" x="${(sx(hit.map_xy[0]) - 12).toFixed(1)}" y="${(sy(hit.map_xy[1]) - 12).toFixed(1)}" width="24" height="24"><title>#${hit.rank} HARP ${hit.harpnum}</title></image>`);
  }
  if (queryXY) parts.push(`<text class="query" x="${sx(queryXY[0]) - 8}" y="${sy(queryXY[1]) + 8}">\u2605<title>query</title></text>`);
  svg.innerHTML = parts.join("");
}

async function start() {
  try {
    state.info = await api("/api/info");
    document.querySelector(".colorbar").style.background = `linear-gradient(to right, ${state.info.colormap.join(", ")})`;
    $("k").max = state.info.max_k;
    buildSliders();
    state.map = await api("/api/map");
    $("search-button").addEventListener("click", searchGenerated);
    $("upload-form").addEventListener("submit", searchUpload);
    await generate();
    setStatus(`Ready: ${state.info.num_rows} patches indexed (${state.info.index_kind}).`, "");
  } catch (error) { setStatus(`Could not start: ${error.message}`, "error"); }
}

start();
