// The rating page of `ddjax serve`. Plain JS, no build step, nothing loaded from elsewhere.
// The server holds all state; this page shows the current loop, plays it in a loop with
// Web Audio, sends one rating per loop, and draws counts, the like-rate chart and the
// liked list. `window.ddjax` exposes what the browser tests check (state, latencies).
//
// While the server opens the session (it answers at once, and compiles meanwhile) the page
// shows the step under way and about how long is left, from /api/status.
//
// When the server can't be reached the page says so, keeps a pressed rating (in memory and
// in localStorage, keyed by session id and loop key, so a reload keeps it too), retries with
// exponential backoff and sends it once the server answers again.
"use strict";

const MODE = document.body.dataset.mode;
const SID = document.body.dataset.sid;
const $ = (id) => document.getElementById(id);
const ctx = new AudioContext();
const page = { item: null, itemBuffer: null, bar: 0, source: null, buffer: null, startedAt: 0, busy: false,
               clickedAt: null, playing: false };
window.ddjax = { latencies: [], key: null, duration: 0, startSteps: [] };

class ApiError extends Error {
  constructor(status, message, starting = false) { super(message); this.status = status; this.starting = starting; }
}
// The server (or a proxy in front of it) can't be reached: fetch itself failed, or a
// gateway says the server behind it is down. A server still starting answers 503 too, but
// says so (`starting`): it is there, and the page shows its progress instead.
const unreachable = (error) => !(error instanceof ApiError) ||
  ([502, 503, 504].includes(error.status) && !error.starting);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8000;
const word = (liked) => (liked ? "Like" : "Dislike");

async function call(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || response.statusText, !!(data && data.starting));
  return data;
}
const api = (path, options) => call(`/api/s/${encodeURIComponent(SID)}${path}`, options);
const post = (body) => ({ method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify(body) });

function setView(view) { document.body.dataset.view = view; }
function setState(state) { document.body.dataset.state = state; updatePlayButton(); }

let messageTimer = null;
function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

// -- the server is away: say so, keep the rating, try again ----------------------------------

// The rating pressed but not yet recorded, if any.
let pending = null;
const PENDING_PREFIX = `ddjax:pending:${SID}:`;

// What makes a loop that loop: a restarted server may deal another loop under the same key.
function fingerprint(item) {
  return JSON.stringify([item.grid, item.velocity, item.rows.map((row) => row.name)]);
}

function storePending(rating) {
  pending = rating;
  try { localStorage.setItem(PENDING_PREFIX + rating.key, JSON.stringify(rating)); } catch (error) { /* private mode */ }
}

function dropPending(rating) {
  if (pending && pending.key === rating.key) pending = null;
  try { localStorage.removeItem(PENDING_PREFIX + rating.key); } catch (error) { /* private mode */ }
}

function storedPending() {
  const found = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const name = localStorage.key(i);
      if (!name.startsWith(PENDING_PREFIX)) continue;
      try { found.push(JSON.parse(localStorage.getItem(name))); } catch (error) { localStorage.removeItem(name); }
    }
  } catch (error) { /* no storage */ }
  return found.filter((r) => r && typeof r.key === "string" && typeof r.liked === "boolean")
    .sort((a, b) => (a.at || 0) - (b.at || 0));
}

// The banner's first part is an alert, announced when it changes; the countdown to the next
// try is not, so a screen reader is not told again at every try.
function setOffline(retryMs) {
  const box = $("offline");
  if (retryMs === null) {
    if (!box.hidden) { box.hidden = true; $("offline-text").textContent = ""; }
    delete document.body.dataset.net;
    $("spinner-text").textContent = "preparing the next loop\u2026";
    return;
  }
  document.body.dataset.net = "offline";
  const text = "Can't reach the server." + (pending ? ` Your ${word(pending.liked)} for loop ` +
    `${pending.key} is kept on this device and will be sent when the server is back.` : "");
  if ($("offline-text").textContent !== text) $("offline-text").textContent = text;
  $("offline-retry").textContent = "Trying again in " +
    `${retryMs < 1000 ? (retryMs / 1000).toFixed(1) : Math.round(retryMs / 1000)} s\u2026`;
  box.hidden = false;
  $("spinner-text").textContent = "waiting for the server\u2026";
}

// -- the server is starting: what it prepares, and about how long is left --------------------

const STATUS_POLL_MS = 250;

function showStarting(status) {
  const left = status.estimate_s;
  const share = status.elapsed_s + left > 0 ? status.elapsed_s / (status.elapsed_s + left) : 0;
  const percent = Math.round(100 * Math.max(share, status.done / status.steps));
  $("start-bar").style.width = `${percent}%`;
  $("start-progress").setAttribute("aria-valuenow", percent);
  const step = `Step ${status.done + 1} of ${status.steps}: ${status.step}`;
  if ($("start-step").textContent !== step) {
    $("start-step").textContent = step;
    window.ddjax.startSteps.push(status.step);
  }
  $("start-left").textContent = (left >= 1 ? `about ${Math.ceil(left)} s left` : "almost ready") +
    ` (${Math.round(status.elapsed_s)} s so far)`;
  $("start-pending").hidden = !pending;
  $("start-pending").textContent = pending ? `Your ${word(pending.liked)} for loop ${pending.key} ` +
    "is kept on this device and will be sent when the server is ready." : "";
}

// Shows the server's start until it is ready (or can't be reached: `reach` takes over), then
// the view from before. A start that failed stays on the page, and nothing goes on.
async function whileStarting() {
  let before = null;
  for (;;) {
    let status;
    try { status = await call("/api/status"); } catch (error) { status = null; }
    if (!status || status.ready) {
      if (before !== null) setView(before);
      return;
    }
    if (status.error) {
      $("failed-text").textContent = `The server could not open the session: ${status.error}`;
      setView("failed");
      return new Promise(() => {});
    }
    if (before === null) { before = document.body.dataset.view; setView("starting"); }
    setOffline(null);
    showStarting(status);
    await sleep(STATUS_POLL_MS);
  }
}

// Runs `attempt` until the server answers (whatever it answers), backing off from 0.5 s to
// at most 8 s between tries while it can't be reached, and showing its progress while it
// starts.
async function reach(attempt) {
  let delay = RETRY_FIRST_MS;
  for (;;) {
    try {
      const value = await attempt();
      setOffline(null);
      return value;
    } catch (error) {
      if (error instanceof ApiError && error.starting) {
        await whileStarting();
        await sleep(STATUS_POLL_MS);
        delay = RETRY_FIRST_MS;
        continue;
      }
      if (!unreachable(error)) { setOffline(null); throw error; }
      setOffline(delay);
      await sleep(delay);
      delay = Math.min(2 * delay, RETRY_MAX_MS);
    }
  }
}

class LoopGone extends Error {}

// Sends a rating until the server takes or refuses it. After a failed try (or from a
// reload) it first asks which loop the server is on: a restarted server may have dealt a
// different loop under the same key, and a rating belongs only to the loop that was heard.
// Returns the session's state, or null when the rating was dropped (and says why).
async function deliver(rating, { verify = false } = {}) {
  let check = verify;
  let failed = false;
  try {
    const state = await reach(async () => {
      if (check) {
        let current = null;
        try { current = await api("/current"); } catch (error) { if (unreachable(error) || error.starting) throw error; }
        if (current && current.key === rating.key && fingerprint(current) !== rating.loop) throw new LoopGone();
      }
      check = true;
      try { return await api("/rate", post({ key: rating.key, liked: rating.liked })); }
      catch (error) { if (unreachable(error) || error.starting) failed = true; throw error; }
    });
    dropPending(rating);
    if (failed) showMessage(`Back online: your ${word(rating.liked)} for loop ${rating.key} is recorded.`);
    else if (verify) showMessage(`Your ${word(rating.liked)} for loop ${rating.key}, kept over the reload, is recorded.`);
    return state;
  } catch (error) {
    dropPending(rating);
    if (error instanceof LoopGone) {
      showMessage(`The server restarted without loop ${rating.key}, so your ${word(rating.liked)} ` +
                  "for it was dropped; here is the loop it has now.");
    } else if (error.status === 409) {
      showMessage(`Your ${word(rating.liked)} for loop ${rating.key} was dropped: ${error.message}.`);
    } else {
      showMessage(error.message);
    }
    return null;
  }
}

// -- audio ---------------------------------------------------------------------------------

function stopAudio() {
  if (page.source) { page.source.onended = null; page.source.stop(); page.source = null; }
  page.playing = false;
  updatePlayButton();
}

// The play button says what it does, and to which loop.
function updatePlayButton() {
  const item = page.item;
  const pause = !!item && page.playing && page.buffer === page.itemBuffer && ctx.state !== "suspended";
  const loop = item ? `loop ${item.key}` : "the loop";
  $("play").setAttribute("aria-label", `${pause ? "Pause" : "Play"} ${loop}`);
  $("play-text").textContent = pause ? "Pause" : "Play";
  $("play").querySelector(".icon").textContent = pause ? "\u2016" : "\u25B6\uFE0E";
  $("like").setAttribute("aria-label", `Like ${loop}`);
  $("dislike").setAttribute("aria-label", `Dislike ${loop}`);
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
  updatePlayButton();
}

function togglePlay() {
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  if (ctx.state === "suspended") { ctx.resume().then(() => { updateAudioHint(); updatePlayButton(); }); return; }
  if (!page.itemBuffer) return;
  if (page.playing && page.buffer === page.itemBuffer) { stopAudio(); setState("paused"); }
  else { startAudio(page.itemBuffer, barSeconds(page.item)); setState("playing"); }
}

function updateAudioHint() { $("audio-hint").hidden = ctx.state !== "suspended"; }
document.addEventListener("pointerdown", () => {
  if (ctx.state === "suspended") ctx.resume().then(() => { updateAudioHint(); updatePlayButton(); });
});

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

// The grid is an ARIA table: a row per track, named by its sample's kind and name, and a
// cell per step that says whether it plays and how loud ("snare, step 5, on, accent").
function drawGrid(item) {
  const grid = $("grid");
  grid.replaceChildren();
  const steps = item.grid[0].length;
  grid.style.setProperty("--steps", steps);
  grid.setAttribute("aria-label",
                    `loop ${item.key}: ${item.grid.length} tracks by ${steps} steps`);
  item.grid.forEach((row, track) => {
    const sample = item.rows[track].name;
    const kindName = item.rows[track].kind || "unknown kind";
    const who = item.rows[track].kind || sample;
    const line = document.createElement("div");
    line.className = "track";
    line.setAttribute("role", "row");
    line.setAttribute("aria-label", `${kindName}: ${sample}`);
    const label = document.createElement("div");
    label.className = "label";
    label.setAttribute("role", "rowheader");
    label.setAttribute("aria-label", `${kindName}: ${sample}`);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = sample;
    name.title = sample;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = kindName;
    label.append(name, kind);
    line.append(label);
    row.forEach((on, step) => {
      const cell = document.createElement("div");
      const velocity = item.velocity ? item.velocity[track][step] : 127;
      const accent = on && velocity >= 120, ghost = on && velocity <= 80;
      cell.className = "cell" + (on ? " on" : "") + (step % 4 === 0 ? " beat" : "")
        + (accent ? " accent" : "") + (ghost ? " ghost" : "");
      cell.setAttribute("role", "cell");
      cell.setAttribute("aria-label", `${who}, step ${step + 1}, ${on ? "on" : "off"}` +
                        (accent ? ", accent" : "") + (ghost ? ", ghost note" : ""));
      if (on) {  // louder hits are brighter: the accent, the normal hit and the ghost note
        cell.style.opacity = (0.35 + 0.65 * velocity / 127).toFixed(2);
        cell.title = `velocity ${velocity}`;
      }
      cell.dataset.step = step;
      cell.dataset.track = track;
      line.append(cell);
    });
    grid.append(line);
  });
  $("groove").textContent = item.swing ? `swing ${item.swing}%` : "";
  $("score").textContent = scoreText(item);
  if (item.total !== null) {
    // One bar over both phases, so it never runs backwards when phase II starts.
    const done = item.number - 1 + (item.phase === "phase2" ? SIZES.phase1 : 0);
    $("progress").hidden = false;
    $("progress-bar").style.width = `${(100 * done) / (SIZES.phase1 + SIZES.phase2)}%`;
    $("progress-text").textContent =
      `${item.phase === "phase2" ? "Phase II" : "Phase I"}: loop ${item.number} of ${item.total}`;
  }
}

// What the critic thinks of the loop; nothing it says means much before it has learned.
function scoreText(item) {
  if (item.score === null || item.score === undefined || !Number.isFinite(item.score)) return "";
  const n = item.critic_version;
  if (!n) return "critic: not trained yet (it learns from your ratings)";
  return `critic: ${(100 * item.score).toFixed(0)}% chance you like it` +
    ` (trained on ${n} rating${n === 1 ? "" : "s"})`;
}

function setButtons(enabled) {
  for (const id of ["like", "dislike", "play", "skip"]) $(id).disabled = !enabled;
  $("undo").disabled = !enabled || !page.ratings;
}

async function loadCurrent() {
  setView("rate");
  setState("loading");
  setButtons(false);
  let item;
  try {
    item = await reach(() => api("/current"));
  } catch (error) {
    if (error.status === 409 && MODE === "study") return refreshStudy();
    showMessage(error.message);
    setTimeout(loadCurrent, 2000);
    return;
  }
  let buffer;
  try {
    const audio = await reach(async () => {
      const response = await fetch(`/api/s/${encodeURIComponent(SID)}/loops/${item.key}.wav`);
      if (!response.ok) throw new ApiError(response.status, response.statusText);
      return response.arrayBuffer();
    });
    buffer = await ctx.decodeAudioData(audio);
  } catch (error) {
    showMessage(`loop ${item.key}: ${error.message}`);
    setTimeout(loadCurrent, 2000);
    return;
  }
  page.item = item;
  page.itemBuffer = buffer;
  $("skip").setAttribute("aria-label", `Skip loop ${item.key} without rating it`);
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
  // Kept before it is sent: if the server can't be reached, nothing is lost, not even on
  // a reload.
  storePending({ sid: SID, key: page.item.key, liked, loop: fingerprint(page.item), at: Date.now() });
  setButtons(false);
  stopAudio();
  setState("loading");
  const state = await deliver(pending);
  if (state) showCounts(state);
  page.item = null;
  page.busy = false;
  if (MODE === "study") await refreshStudy();
  else { await loadCurrent(); refreshState(); }
}

// Undo, skip and "more like this": each changes the current loop, then the page loads it.
async function change(path, body, what) {
  if (page.busy || MODE === "study") return;
  page.busy = true;
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  setButtons(false);
  stopAudio();
  setState("loading");
  try {
    showCounts(await reach(() => api(path, post(body))));
    showMessage(what);
  } catch (error) {
    showMessage(error.message);
  }
  page.item = null;
  page.busy = false;
  await loadCurrent();
}
const undo = () => change("/undo", {}, "The last rating is taken back: rate that loop again.");
const skip = () => page.item && change("/skip", { key: page.item.key }, `Skipped loop ${page.item.key}.`);
const moreLike = (key) => change("/more", { key }, `A variation on loop ${key}.`);

// -- counts, chart, liked list -----------------------------------------------------------------

function showCounts(state) {
  if (MODE === "study") return;
  const n = state.likes.length;
  const likes = state.likes.filter(Boolean).length;
  page.ratings = n;
  $("undo").disabled = !n || !page.item || page.busy;
  const all = $("download-all");
  all.hidden = likes === 0;
  all.href = `/api/s/${encodeURIComponent(SID)}/liked.zip`;
  all.setAttribute("aria-label", `Download all ${likes} liked loop${likes === 1 ? "" : "s"} as one zip`);
  $("counts").textContent = n === 0 ? "no ratings yet" :
    `${n} rating${n === 1 ? "" : "s"}, ${likes} liked (${Math.round((100 * likes) / n)}%)`;
  drawChart(state.likes);
  drawLiked(state.liked);
}

// The running like rate (over the last 10 ratings) against the rating number, with axes:
// x the ratings (1 to n), y the like rate (0 to 100%). Drawn in the SVG's viewBox units.
const CHART = { width: 240, height: 120, left: 46, right: 232, top: 10, bottom: 90 };

function drawChart(likes) {
  const svg = $("chart");
  const window_ = 10;
  const points = likes.map((_, i) => {
    const from = Math.max(0, i + 1 - window_);
    const slice = likes.slice(from, i + 1);
    return slice.filter(Boolean).length / slice.length;
  });
  const { left, right, top, bottom } = CHART;
  const n = points.length;
  const x = (i) => (n > 1 ? left + (i / (n - 1)) * (right - left) : left);
  const y = (rate) => bottom - rate * (bottom - top);
  const parts = [];
  for (const rate of [0, 0.5, 1]) {
    parts.push(`<line class="grid-line" x1="${left}" x2="${right}" y1="${y(rate)}" y2="${y(rate)}"/>`,
               `<text class="tick y-tick" data-value="${rate}" x="${left - 4}" y="${y(rate)}" ` +
               `text-anchor="end" dominant-baseline="middle">${100 * rate}%</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/>`,
             `<line class="axis" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}"/>`,
             `<text class="axis-label y-label" transform="translate(10 ${(top + bottom) / 2}) rotate(-90)" ` +
             `text-anchor="middle" dominant-baseline="middle">like rate</text>`,
             `<text class="axis-label x-label" x="${(left + right) / 2}" y="${CHART.height - 3}" ` +
             `text-anchor="middle">ratings</text>`);
  if (n > 0) {
    parts.push(`<text class="tick x-tick" x="${left}" y="${bottom + 13}" text-anchor="middle">1</text>`);
    if (n > 1) parts.push(`<text class="tick x-tick" x="${right}" y="${bottom + 13}" text-anchor="end">${n}</text>`);
  }
  const xy = points.map((p, i) => `${x(i).toFixed(1)},${y(p).toFixed(1)}`);
  if (n > 1) parts.push(`<polyline class="rate" points="${xy.join(" ")}"/>`);
  else if (n === 1) parts.push(`<circle class="dot" cx="${x(0)}" cy="${y(points[0])}" r="3"/>`);
  svg.innerHTML = parts.join("");
  $("chart-text").textContent = n ?
    `running like rate over the last ${Math.min(window_, n)} of ${n} rating${n === 1 ? "" : "s"}: ` +
    `${Math.round(100 * points[n - 1])}%` : "no ratings yet";
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
    play.setAttribute("aria-label", `Play liked loop ${loop.key}`);
    play.addEventListener("click", async () => {
      const buffer = await ctx.decodeAudioData(await (await fetch(`${base}.wav`)).arrayBuffer());
      startAudio(buffer, (4 * 60) / loop.bpm);  // the play button goes back to the loop being rated
      setState("replaying");
    });
    const more = document.createElement("button");
    more.textContent = "more like this";
    more.className = "more";
    more.setAttribute("aria-label", `More like liked loop ${loop.key}: rate a variation on it next`);
    more.addEventListener("click", () => moreLike(loop.key));
    li.append(title, names, play, more);
    for (const [kind, label, name, what] of [["wav?download=1", "WAV", "wav", "WAV audio"],
                                             ["bar", "1-bar loop", "bar", "a one-bar WAV loop"],
                                             ["mid", "MIDI", "midi", "MIDI"],
                                             ["json", "JSON", "json", "JSON"]]) {
      const link = document.createElement("a");
      link.href = `${base}.${kind}`;
      link.textContent = label;
      link.setAttribute("aria-label", `Download liked loop ${loop.key} as ${what}`);
      link.className = `download-${name}`;
      link.setAttribute("download", "");
      li.append(link);
    }
    list.append(li);
  }
}

async function refreshState() {
  try { showCounts(await reach(() => api("/state"))); } catch (error) { showMessage(error.message); }
}

// -- study ------------------------------------------------------------------------------------

async function refreshStudy() {
  if (!SID) { setView("instructions"); return; }
  let state;
  try { state = await reach(() => api("/state")); } catch (error) {
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
$("undo").addEventListener("click", undo);
$("skip").addEventListener("click", skip);
$("begin").addEventListener("click", begin);

const LIKE_KEYS = new Set(["l", "L", "ArrowRight"]);
const DISLIKE_KEYS = new Set(["d", "D", "ArrowLeft"]);
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.body.dataset.view !== "rate") return;
  if (event.key === " ") { event.preventDefault(); togglePlay(); }
  else if (LIKE_KEYS.has(event.key)) { event.preventDefault(); rate(true); }
  else if (DISLIKE_KEYS.has(event.key)) { event.preventDefault(); rate(false); }
  else if (MODE !== "study" && ["u", "U", "Backspace"].includes(event.key)) {
    event.preventDefault();
    if (!$("undo").disabled) undo();
  } else if (MODE !== "study" && ["s", "S"].includes(event.key)) {
    event.preventDefault();
    if (!$("skip").disabled) skip();
  }
});

// About 8.5 s a loop (2 s bars, a moment to decide), as the paper's 140 loops took 20 min.
const SECONDS_PER_RATING = 8.5;
let SIZES = { phase1: 0, phase2: 0 };

async function start() {
  const config = await reach(() => call("/api/config"));
  SIZES = { phase1: config.phase1, phase2: config.phase2 };
  $("n-phase1").textContent = config.phase1;
  $("n-phase2").textContent = config.phase2;
  $("minutes").textContent = Math.max(
    2, Math.round(((config.phase1 + config.phase2) * SECONDS_PER_RATING) / 60));
  await whileStarting();
  // A rating pressed before a reload, while the server was away: send it first, but only
  // to the loop it was for.
  if (SID) {
    for (const rating of storedPending()) {
      if (rating.sid !== SID) continue;
      setView("rate");
      setState("loading");
      pending = rating;
      await deliver(rating, { verify: true });
    }
  }
  if (MODE === "study") return refreshStudy();
  refreshState();
  return loadCurrent();
}
start();
