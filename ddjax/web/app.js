// The rating page of `ddjax serve`. Plain JS, no build step, nothing loaded from elsewhere.
// The server holds all state; this page shows the current loop, plays it in a loop with
// Web Audio, sends one rating per loop, and draws counts, the like-rate chart and the
// liked list. `window.ddjax` exposes what the browser tests check (state, latencies).
"use strict";

const MODE = document.body.dataset.mode;
const SID = document.body.dataset.sid;
const $ = (id) => document.getElementById(id);
const ctx = new AudioContext();
const page = { item: null, itemBuffer: null, bar: 0, source: null, buffer: null, startedAt: 0, busy: false,
               clickedAt: null, playing: false };
window.ddjax = { latencies: [], key: null, duration: 0 };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || response.statusText);
  return data;
}
const api = (path, options) => call(`/api/s/${encodeURIComponent(SID)}${path}`, options);
const post = (body) => ({ method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify(body) });

function setView(view) { document.body.dataset.view = view; }
function setState(state) { document.body.dataset.state = state; }

let messageTimer = null;
function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

// -- audio ---------------------------------------------------------------------------------

function stopAudio() {
  if (page.source) { page.source.onended = null; page.source.stop(); page.source = null; }
  page.playing = false;
}

// A listening render is several bars plus the last bar's tail. The page plays bar 1, then
// repeats bar 2, which already holds the tails ringing over from the bar before it: a
// seamless loop.
function barSeconds(item) { return (4 * 60 / item.bpm) * (item.grid[0].length / 16); }

function startAudio(buffer, bar) {
  stopAudio();
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.loop = true;
  if (bar && buffer.duration >= 2 * bar) { source.loopStart = bar; source.loopEnd = 2 * bar; }
  page.bar = bar || buffer.duration;
  source.connect(ctx.destination);
  source.start();
  page.source = source;
  page.buffer = buffer;
  page.startedAt = ctx.currentTime;
  page.playing = true;
  updateAudioHint();
}

function togglePlay() {
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  if (ctx.state === "suspended") { ctx.resume().then(updateAudioHint); return; }
  if (!page.itemBuffer) return;
  if (page.playing && page.buffer === page.itemBuffer) { stopAudio(); setState("paused"); }
  else { startAudio(page.itemBuffer, barSeconds(page.item)); setState("playing"); }
}

function updateAudioHint() { $("audio-hint").hidden = ctx.state !== "suspended"; }
document.addEventListener("pointerdown", () => { if (ctx.state === "suspended") ctx.resume().then(updateAudioHint); });

function drawPlayhead() {
  const cells = document.querySelectorAll(".cell");
  let step = -1;
  if (page.playing && page.buffer && page.buffer === page.itemBuffer && ctx.state === "running") {
    const steps = page.item ? page.item.grid[0].length : 16;
    const t = (ctx.currentTime - page.startedAt) % page.bar;
    step = Math.floor((t / page.bar) * steps);
  }
  cells.forEach((cell) => cell.classList.toggle("now", Number(cell.dataset.step) === step));
  requestAnimationFrame(drawPlayhead);
}
requestAnimationFrame(drawPlayhead);

// -- the loop --------------------------------------------------------------------------------

function drawGrid(item) {
  const grid = $("grid");
  grid.replaceChildren();
  item.grid.forEach((row, track) => {
    const label = document.createElement("div");
    label.className = "label";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.rows[track].name;
    name.title = item.rows[track].name;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = item.rows[track].kind || "unknown kind";
    label.append(name, kind);
    grid.append(label);
    row.forEach((on, step) => {
      const cell = document.createElement("div");
      const velocity = item.velocity ? item.velocity[track][step] : 127;
      cell.className = "cell" + (on ? " on" : "") + (step % 4 === 0 ? " beat" : "")
        + (on && velocity >= 120 ? " accent" : "") + (on && velocity <= 80 ? " ghost" : "");
      if (on) {  // louder hits are brighter: the accent, the normal hit and the ghost note
        cell.style.opacity = (0.35 + 0.65 * velocity / 127).toFixed(2);
        cell.title = `velocity ${velocity}`;
      }
      cell.dataset.step = step;
      cell.dataset.track = track;
      grid.append(cell);
    });
  });
  $("groove").textContent = item.swing ? `swing ${item.swing}%` : "";
  $("score").textContent = item.score === null ? "" :
    `critic: ${(100 * item.score).toFixed(0)}% chance you like it` +
    ` (trained on ${item.critic_version} rating${item.critic_version === 1 ? "" : "s"})`;
  if (item.total !== null) {
    const done = item.number - 1;
    $("progress").hidden = false;
    $("progress-bar").style.width = `${(100 * done) / item.total}%`;
    $("progress-text").textContent =
      `${item.phase === "phase2" ? "Phase II" : "Phase I"}: loop ${item.number} of ${item.total}`;
  }
}

function setButtons(enabled) {
  for (const id of ["like", "dislike", "play"]) $(id).disabled = !enabled;
}

async function loadCurrent() {
  setView("rate");
  setState("loading");
  setButtons(false);
  let item;
  try {
    item = await api("/current");
  } catch (error) {
    if (error.status === 409 && MODE === "study") return refreshStudy();
    showMessage(error.message);
    setTimeout(loadCurrent, 2000);
    return;
  }
  const response = await fetch(`/api/s/${encodeURIComponent(SID)}/loops/${item.key}.wav`);
  const buffer = await ctx.decodeAudioData(await response.arrayBuffer());
  page.item = item;
  page.itemBuffer = buffer;
  drawGrid(item);
  startAudio(buffer, barSeconds(item));
  window.ddjax.key = item.key;
  window.ddjax.duration = buffer.duration;
  window.ddjax.bar = barSeconds(item);
  if (page.clickedAt !== null) {
    window.ddjax.latencies.push((performance.now() - page.clickedAt) / 1000);
    page.clickedAt = null;
  }
  document.body.dataset.key = item.key;
  setState("playing");
  setButtons(true);
}

async function rate(liked) {
  if (page.busy || !page.item || document.body.dataset.state === "loading") return;
  page.busy = true;
  page.clickedAt = performance.now();
  // A clicked button keeps the focus, and space on it would click it again.
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  const key = page.item.key;
  setButtons(false);
  stopAudio();
  setState("loading");
  try {
    const state = await api("/rate", post({ key, liked }));
    showCounts(state);
  } catch (error) {
    showMessage(error.message);
  }
  page.item = null;
  page.busy = false;
  if (MODE === "study") await refreshStudy();
  else { await loadCurrent(); refreshState(); }
}

// -- counts, chart, liked list -----------------------------------------------------------------

function showCounts(state) {
  if (MODE === "study") return;
  const n = state.likes.length;
  const likes = state.likes.filter(Boolean).length;
  $("counts").textContent = n === 0 ? "no ratings yet" :
    `${n} rating${n === 1 ? "" : "s"}, ${likes} liked (${Math.round((100 * likes) / n)}%)`;
  drawChart(state.likes);
  drawLiked(state.liked);
}

function drawChart(likes) {
  const svg = $("chart");
  const window_ = 10;
  const points = likes.map((_, i) => {
    const from = Math.max(0, i + 1 - window_);
    const slice = likes.slice(from, i + 1);
    return slice.filter(Boolean).length / slice.length;
  });
  const w = 260, h = 90, n = Math.max(points.length - 1, 1);
  const xy = points.map((p, i) => `${((i / n) * w).toFixed(1)},${(h - 4 - p * (h - 8)).toFixed(1)}`);
  svg.innerHTML =
    `<line x1="0" x2="${w}" y1="${h / 2}" y2="${h / 2}" stroke="#ffffff22" stroke-dasharray="3 3"/>` +
    (points.length > 1 ? `<polyline fill="none" stroke="#3fb27f" stroke-width="2" points="${xy.join(" ")}"/>` : "");
  $("chart-text").textContent = likes.length ?
    `running like rate over the last ${Math.min(window_, likes.length)} ratings: ` +
    `${Math.round(100 * points[points.length - 1])}%` : "no ratings yet";
}

function drawLiked(liked) {
  const list = $("liked");
  list.replaceChildren();
  $("liked-empty").hidden = liked.length > 0;
  for (const loop of liked) {
    const base = `/api/s/${encodeURIComponent(SID)}/loops/${loop.key}`;
    const li = document.createElement("li");
    li.dataset.key = loop.key;
    const title = document.createElement("div");
    title.textContent = `loop ${loop.key}`;
    const names = document.createElement("div");
    names.className = "names";
    names.textContent = loop.samples.map((s) => s.split("/").pop()).join(", ");
    const play = document.createElement("button");
    play.textContent = "\u25B6 play";
    play.className = "replay";
    play.addEventListener("click", async () => {
      const buffer = await ctx.decodeAudioData(await (await fetch(`${base}.wav`)).arrayBuffer());
      startAudio(buffer, (4 * 60) / loop.bpm);  // the play button goes back to the loop being rated
      setState("replaying");
    });
    li.append(title, names, play);
    for (const [kind, label, name] of [["wav?download=1", "WAV", "wav"],
                                       ["bar", "1-bar loop", "bar"],
                                       ["mid", "MIDI", "midi"], ["json", "JSON", "json"]]) {
      const link = document.createElement("a");
      link.href = `${base}.${kind}`;
      link.textContent = label;
      link.className = `download-${name}`;
      link.setAttribute("download", "");
      li.append(link);
    }
    list.append(li);
  }
}

async function refreshState() {
  try { showCounts(await api("/state")); } catch (error) { showMessage(error.message); }
}

// -- study ------------------------------------------------------------------------------------

async function refreshStudy() {
  if (!SID) { setView("instructions"); return; }
  let state;
  try { state = await api("/state"); } catch (error) {
    showMessage(error.message);
    setTimeout(refreshStudy, 2000);
    return;
  }
  if (state.phase === "phase1" || state.phase === "phase2") return loadCurrent();
  stopAudio();
  if (state.phase === "drawing") { setView("drawing"); setTimeout(refreshStudy, 1000); return; }
  if (state.phase === "done") {
    const pct = (x) => `${Math.round(100 * x)}%`;
    $("theta-init").textContent = pct(state.result.theta_init);
    $("theta-final").textContent = pct(state.result.theta_final);
    const delta = Math.round(100 * state.result.delta);
    $("delta").textContent = `${delta >= 0 ? "+" : "\u2212"}${Math.abs(delta)} points`;
    $("archive").href = `/api/s/${encodeURIComponent(SID)}/archive.zip`;
    setView("results");
    setState("done");
    return;
  }
  $("failed-text").textContent = state.error || "the study stopped";
  setView("failed");
}

async function begin() {
  const field = $("participant");
  const requested = field.value.trim();
  if (requested && !field.checkValidity()) {
    showMessage("an id is letters, digits, '-' or '_'");
    return;
  }
  $("begin").disabled = true;
  try {
    const joined = await call("/api/participants", post(requested ? { id: requested } : {}));
    location.assign(joined.url);
  } catch (error) {
    showMessage(error.message);
    $("begin").disabled = false;
  }
}

// -- wiring ----------------------------------------------------------------------------------

$("like").addEventListener("click", () => rate(true));
$("dislike").addEventListener("click", () => rate(false));
$("play").addEventListener("click", togglePlay);
$("begin").addEventListener("click", begin);

const LIKE_KEYS = new Set(["l", "L", "ArrowRight"]);
const DISLIKE_KEYS = new Set(["d", "D", "ArrowLeft"]);
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.body.dataset.view !== "rate") return;
  if (event.key === " ") { event.preventDefault(); togglePlay(); }
  else if (LIKE_KEYS.has(event.key)) { event.preventDefault(); rate(true); }
  else if (DISLIKE_KEYS.has(event.key)) { event.preventDefault(); rate(false); }
});

async function start() {
  const config = await call("/api/config");
  $("n-phase1").textContent = config.phase1;
  $("n-phase2").textContent = config.phase2;
  if (MODE === "study") return refreshStudy();
  refreshState();
  return loadCurrent();
}
start();
