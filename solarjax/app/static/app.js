// solarjax reverse image search: talks to the JSON API of solarjax.app.server (no build step).
"use strict";

const state = { info: null, aiaInfo: null, dataset: "sharp", maps: {}, generateTimer: null, generation: 0 };
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "n/a" : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(3));
const escape = (text) => String(text ?? "n/a").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const AIA_COLUMNS = ["id", "t_obs", "wavelengths", "mu", "hpc_x", "hpc_y", "bbox", "source"];

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
  return { seed: parseInt($("seed").value || "0", 10), sliders, hold, method: $("steer-method").value };
}

function filterSpec() {
  const spec = { k: parseInt($("k").value || "8", 10) };
  if ($("t-start").value) spec.t_start = $("t-start").value;
  if ($("t-end").value) spec.t_end = $("t-end").value;
  if (state.dataset === "aia") {
    if ($("mu-min").value !== "") spec.mu_min = parseFloat($("mu-min").value);
    if ($("mu-max").value !== "") spec.mu_max = parseFloat($("mu-max").value);
    return spec;
  }
  spec.one_per_harp = $("one-per-harp").checked;
  spec.exclude_same_harp = $("exclude-same-harp").checked;
  spec.rank = $("rank").value;
  if ($("hemisphere").value) spec.hemisphere = $("hemisphere").value;
  return spec;
}

function steeringNote(method) {
  const evaluation = state.info.steering.evaluation;
  const rows = evaluation && evaluation.families[method];
  if (!rows) return `${method}: no evaluation in this work directory.`;
  const cells = Object.entries(rows).map(([name, row]) => `${name} ${fmt(row.monotonicity.value)} [${fmt(row.monotonicity.low)}, ${fmt(row.monotonicity.high)}]`);
  const best = evaluation.best_method === method ? " (best by the evaluation)" : "";
  return `${method}${best}: monotonicity with alpha, 95% interval: ${cells.join("; ")}.`;
}

function buildSliders() {
  const box = $("sliders");
  const chooser = document.createElement("div");
  chooser.className = "slider";
  const options = state.info.steering.methods.map((m) => `<option value="${m}">${m}</option>`).join("");
  chooser.innerHTML = `<label for="steer-method">Steering family <select id="steer-method">${options}</select></label>
    <p id="steer-note" class="note"></p>`;
  box.appendChild(chooser);
  $("steer-method").value = state.info.steering.default;
  $("steer-note").textContent = steeringNote(state.info.steering.default);
  $("steer-method").addEventListener("change", () => { $("steer-note").textContent = steeringNote($("steer-method").value); scheduleGenerate(); });
  for (const name of state.info.steerable) {
    const limit = state.info.alpha_limit;
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<label for="alpha-${name}">${SLIDER_NAMES[name] || name} <output id="change-${name}" class="change"></output>
      <span class="note">(alpha <output id="out-${name}">0.00</output>)</span></label>
      <input id="alpha-${name}" type="range" min="${-limit}" max="${limit}" step="0.1" value="0">
      <label><input id="hold-${name}" type="checkbox"> hold ${name}</label>`;
    box.appendChild(row);
    $(`alpha-${name}`).addEventListener("input", () => { $(`out-${name}`).textContent = parseFloat($(`alpha-${name}`).value).toFixed(2); scheduleGenerate(); });
    $(`hold-${name}`).addEventListener("change", () => { $(`alpha-${name}`).disabled = $(`hold-${name}`).checked; scheduleGenerate(); });
  }
  $("seed").addEventListener("change", scheduleGenerate);
}

// Quantities with names and units where the query's plate scale is known (uploaded FITS with CDELT1/2),
// otherwise the reason they stay in patch units.
function showPhysical(physical) {
  const table = $("query-physical");
  if (!physical || !physical.known) {
    table.hidden = true;
    table.innerHTML = "";
    $("query-units").textContent = `Quantities in patch units${physical ? ` (${physical.plate_scale})` : ""}.`;
    return;
  }
  const [row, col] = physical.pixel_size_mm;
  $("query-units").textContent = `Pixel ${row.toPrecision(3)} x ${col.toPrecision(3)} Mm on the Sun (${physical.plate_scale}).`;
  const rows = physical.quantities.map((q) => `<tr><th>${escape(q.label)}</th><td>${fmt(q.value)}</td><td class="unit">${escape(q.unit)}</td></tr>`);
  table.innerHTML = `<tr><th>quantity</th><th>value</th><th>unit</th></tr>${rows.join("")}`;
  table.hidden = false;
}

function showQuery(query, caption, results) {
  $("query-image").src = query.image;
  $("query-caption").textContent = caption;
  if (state.dataset === "aia") {
    const shown = (value) => (typeof value === "number" && !Number.isInteger(value) ? fmt(value) : value);
    const rows = Object.entries(query.metadata).map(([key, value]) => `<tr><th>${escape(key)}</th><td>${escape(shown(value))}</td></tr>`);
    $("query-metadata").innerHTML = rows.join("");
  } else {
    const rows = state.info.quantities.map((name) => `<tr><th>${name}</th><td>${fmt(query.quantities[name])}</td></tr>`);
    $("query-quantities").innerHTML = `<tr><th>quantity</th><th>query (patch units)</th></tr>${rows.join("")}`;
    showPhysical(query.physical);
  }
  drawMap(query.map_xy, results || []);
}

function scheduleGenerate() {
  clearTimeout(state.generateTimer);
  state.generateTimer = setTimeout(generate, 120);
}

async function generate() {
  const generation = ++state.generation;
  try {
    const request = sliderState();
    const query = await api("/api/generate", jsonBody(request));
    const base = await unsteeredQuantities(request.seed);
    if (generation === state.generation && state.dataset === "sharp") {
      showQuery(query, "generated patch");
      showChanges(query.quantities, base);
    }
  } catch (error) { setStatus(`Could not generate: ${error.message}`, "error"); }
}

// Each slider is named by its quantity and shows the change it made: the steered patch's quantity against
// the same seed's unsteered patch (relative, or in degrees for the tilt).
const SLIDER_NAMES = { tuf: "total unsigned flux", psep: "polarity separation", r_value: "Schrijver R", tilt: "tilt" };

async function unsteeredQuantities(seed) {
  if (state.unsteered && state.unsteered.seed === seed) return state.unsteered.quantities;
  const patch = await api("/api/generate", jsonBody({ seed, sliders: {}, hold: [] }));
  state.unsteered = { seed, quantities: patch.quantities };
  return patch.quantities;
}

function quantityChange(name, after, before) {
  if (typeof after !== "number" || typeof before !== "number") return "";
  if (name === "tilt") {
    const degrees = (after - before) * 180 / Math.PI;
    return `${degrees >= 0 ? "+" : ""}${degrees.toFixed(0)} deg`;
  }
  if (before === 0) return "";
  const percent = 100 * (after / before - 1);
  return `${percent >= 0 ? "+" : ""}${percent.toFixed(0)}%`;
}

function showChanges(after, before) {
  for (const name of state.info.steerable) $(`change-${name}`).textContent = quantityChange(name, after[name], before[name]);
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

function aiaResultCard(hit) {
  const li = document.createElement("li");
  li.innerHTML = `<img src="${hit.image_url}" alt="match ${hit.rank}, AIA patch ${escape(hit.id)}" width="160" height="160">
    <div class="meta">#${hit.rank} similarity <b class="similarity">${hit.similarity.toFixed(3)}</b><br>
    ${escape(hit.id)}<br>T_OBS ${escape(hit.t_obs)}<br>
    <span class="mu">mu ${fmt(hit.mu)}</span> hpc (${fmt(hit.hpc_x)}, ${fmt(hit.hpc_y)}) arcsec<br>
    ${escape(hit.wavelengths)} A, bbox ${escape(hit.bbox)}</div>
    <button type="button" data-row="${hit.row}">search like this</button>`;
  li.querySelector("button").addEventListener("click", () => searchAiaRow(hit.row));
  return li;
}

function jsonBody(payload) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) };
}

async function runSearch(path, options, caption) {
  setStatus("Searching...", "busy");
  const dataset = state.dataset;
  try {
    const body = await api(path, options);
    if (dataset !== state.dataset) return;
    showQuery(body.query, caption, body.results);
    const card = dataset === "aia" ? aiaResultCard : (hit) => resultCard(hit, body.query);
    $("results").replaceChildren(...body.results.map(card));
    $("export-csv").href = body.export.csv;
    $("export-png").hidden = !body.export.png;
    if (body.export.png) $("export-png").href = body.export.png;
    $("exports").hidden = false;
    setStatus(`${body.results.length} matches` + (body.rank ? `, ranked by ${body.rank}` : ""), "");
  } catch (error) { setStatus(`Search failed: ${error.message}`, "error"); }
}

function searchGenerated() {
  runSearch("/api/search/generated", jsonBody({ ...sliderState(), filters: filterSpec() }), "generated patch");
}

function uploadForm(input, field) {
  const files = [...input.files];
  if (!files.length) { setStatus("Choose a file first.", "error"); return null; }
  const limit = state.dataset === "aia" ? state.aiaInfo.max_upload_bytes : state.info.max_upload_bytes;
  const large = files.find((file) => file.size > limit);
  if (large) { setStatus(`${large.name}: larger than ${limit} bytes`, "error"); return null; }
  const form = new FormData();
  for (const file of files) form.append(field, file);
  form.append("filters", JSON.stringify(filterSpec()));
  return { form, names: files.map((file) => file.name).join(", ") };
}

function searchUpload(event) {
  event.preventDefault();
  const upload = uploadForm($("upload-file"), "file");
  if (upload) runSearch("/api/search/upload", { method: "POST", body: upload.form }, `uploaded ${upload.names} (preprocessed)`);
}

function searchAiaUpload(event) {
  event.preventDefault();
  const upload = uploadForm($("aia-upload-files"), "files");
  if (upload) runSearch("/api/aia/search/upload", { method: "POST", body: upload.form }, `uploaded ${upload.names} (central patch, normalised)`);
}

function searchAiaRow(row) {
  runSearch("/api/aia/search/row", jsonBody({ row, filters: filterSpec() }), `AIA table row ${row}`);
}

function searchAiaRowInput(event) {
  event.preventDefault();
  const text = $("aia-row").value.trim();
  if (/^\d+$/.test(text)) { searchAiaRow(parseInt(text, 10)); return; }
  if (!text) { setStatus("Give a row number or a patch id.", "error"); return; }
  runSearch("/api/aia/search/row", jsonBody({ id: text, filters: filterSpec() }), `AIA patch ${text}`);
}

function drawMap(queryXY, results) {
  const map = state.maps[state.dataset];
  if (!map) return;
  const svg = $("map"), W = 600, H = 400, pad = 20;
  const xs = map.xy.map((p) => p[0]).concat(queryXY ? [queryXY[0]] : []);
  const ys = map.xy.map((p) => p[1]).concat(queryXY ? [queryXY[1]] : []);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + (W - 2 * pad) * (x - x0) / ((x1 - x0) || 1);
  const sy = (y) => H - pad - (H - 2 * pad) * (y - y0) / ((y1 - y0) || 1);
  const parts = map.xy.map((p) => `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="2"></circle>`);
  for (const hit of results) {
    parts.push(`<image href="${hit.image_url}" x="${(sx(hit.map_xy[0]) - 12).toFixed(1)}" y="${(sy(hit.map_xy[1]) - 12).toFixed(1)}" width="24" height="24"><title>#${hit.rank} ${escape(hit.id || `HARP ${hit.harpnum}`)}</title></image>`);
  }
  if (queryXY) parts.push(`<text class="query" x="${sx(queryXY[0]) - 8}" y="${sy(queryXY[1]) + 8}">\u2605<title>query</title></text>`);
  svg.innerHTML = parts.join("");
}

function aiaLegend(info) {
  if (info.wavelengths.length !== 3) return `${info.wavelengths[0]} A in the sdoaia${info.wavelengths[0]} colour map`;
  const colours = ["#c00", "#080", "#00c"];
  return "RGB composite: " + info.wavelengths.map((w, i) => `<span style="background:${colours[i]}">${w} A</span>`).join("");
}

async function switchDataset() {
  state.dataset = $("dataset").value;
  document.body.dataset.dataset = state.dataset;
  $("results").replaceChildren();
  $("exports").hidden = true;
  $("query-image").removeAttribute("src");
  $("k").max = state.info.max_k;
  try {
    if (state.dataset === "aia") {
      if (!state.aiaInfo) {
        state.aiaInfo = await api("/api/aia/info");
        state.maps.aia = await api("/api/aia/map");
        $("aia-legend").innerHTML = aiaLegend(state.aiaInfo);
      }
      const info = state.aiaInfo;
      $("query-caption").textContent = "upload AIA files or pick a table row";
      $("query-metadata").innerHTML = "";
      drawMap(null, []);
      setStatus(`AIA: ${info.num_rows} patches indexed (${info.index_kind}), channels ${info.wavelengths.join(", ")} A, ` +
                `T_OBS ${info.t_obs[0]} to ${info.t_obs[1]}, mu ${fmt(info.mu[0])} to ${fmt(info.mu[1])}.`, "");
    } else {
      await generate();
      setStatus(`Ready: ${state.info.num_rows} patches indexed (${state.info.index_kind}).`, "");
    }
  } catch (error) { setStatus(`Could not switch dataset: ${error.message}`, "error"); }
}

function showRanking(ranking) {
  $("rank").value = ranking.default;
  const weight = ranking.default === "hybrid" ? ` (physics weight ${ranking.hybrid_weight})` : "";
  $("rank-note").textContent = `Default: ${ranking.default}${weight}, chosen on the validation split by ${ranking.chosen_by}.`;
}

async function start() {
  try {
    state.info = await api("/api/info");
    document.querySelector(".colorbar").style.background = `linear-gradient(to right, ${state.info.colormap.join(", ")})`;
    $("k").max = state.info.max_k;
    buildSliders();
    showRanking(state.info.ranking);
    state.maps.sharp = await api("/api/map");
    $("search-button").addEventListener("click", searchGenerated);
    $("upload-form").addEventListener("submit", searchUpload);
    $("aia-upload-form").addEventListener("submit", searchAiaUpload);
    $("aia-row-form").addEventListener("submit", searchAiaRowInput);
    $("dataset").addEventListener("change", switchDataset);
    $("dataset-picker").hidden = !state.info.datasets.includes("aia");
    await generate();
    setStatus(`Ready: ${state.info.num_rows} patches indexed (${state.info.index_kind}).`, "");
  } catch (error) { setStatus(`Could not start: ${error.message}`, "error"); }
}

start();
