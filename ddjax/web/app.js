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
// exponential backoff and sends it once the server answers again. A heartbeat (/api/status
// every 2 s) notices a server gone within 5 s, with nothing pressed, and one back at once.
//
// Rating freely (not in a study), the loop can be edited and auditioned: a click on a cell
// toggles it (shift+click, or A on a focused cell, cycles a hit through ghost, normal and
// accent), each track has mute and solo, and tempo and swing have sliders. Each change
// is sent (debounced) to /audition, whose WAV replaces the one playing, in phase; until it
// comes the score says "rendering…" and shows no number of the version before. Like and
// Dislike then rate the version heard, at the session's tempo and swing.
"use strict";

const MODE = document.body.dataset.mode;
const SID = document.body.dataset.sid;
const $ = (id) => document.getElementById(id);
const ctx = new AudioContext();
const page = { item: null, itemBuffer: null, bar: 0, source: null, buffer: null, startedAt: 0, busy: false,
               clickedAt: null, playing: false, edit: null, proposedBuffer: null, auditions: 0 };
// `auditions`: seconds from each audition's request to its decoded buffer.
window.ddjax = { latencies: [], auditions: [], key: null, duration: 0, startSteps: [] };
const EDITABLE = MODE !== "study";  // a study's loops are rated as proposed

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
// "Like for loop 12", and whether it is for the loop as edited.
const ratingName = (rating) => `${word(rating.liked)} for loop ${rating.key}` +
  (rating.edit ? " (as you edited it)" : "");

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

// Why the banner is up: a request waiting to be retried (`retryMs`, the wait before the
// next try), or the heartbeat unanswered (`beat`). Either is reason enough to show it.
const net = { retryMs: null, beat: false };

// The banner's first part is an alert, announced when it changes; the countdown to the next
// try is not, so a screen reader is not told again at every try.
// `retryMs`: null once the server answered (it is there), else the wait before the next try.
function setOffline(retryMs) {
  net.retryMs = retryMs;
  if (retryMs === null) net.beat = false;  // it answered: it is there
  showNet();
}

function showNet() {
  const box = $("offline");
  if (net.retryMs === null && !net.beat) {
    if (!box.hidden) { box.hidden = true; $("offline-text").textContent = ""; }
    delete document.body.dataset.net;
    $("spinner-text").textContent = "preparing the next loop\u2026";
    return;
  }
  document.body.dataset.net = "offline";
  const text = "Can't reach the server: it is not answering. " + (pending ?
    `Your ${ratingName(pending)} is kept on this device and will be sent when the server is back.` :
    "Your ratings are kept on this device and sent when it is back.");
  if ($("offline-text").textContent !== text) $("offline-text").textContent = text;
  const retryMs = net.retryMs;
  $("offline-retry").textContent = retryMs === null ? `Checking every ${HEARTBEAT_MS / 1000} s\u2026` :
    `Trying again in ${retryMs < 1000 ? (retryMs / 1000).toFixed(1) : Math.round(retryMs / 1000)} s\u2026`;
  box.hidden = false;
  $("spinner-text").textContent = "waiting for the server\u2026";
}

// A wait that ends early when the server is seen to answer again (`wakeUp`): a kept rating
// goes as soon as the server is back, not at the end of a backoff of up to 8 s.
const sleepers = new Set();
function nap(ms) {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); sleepers.delete(done); resolve(); };
    const timer = setTimeout(done, ms);
    sleepers.add(done);
  });
}
function wakeUp() { for (const done of [...sleepers]) done(); }

// -- the heartbeat: a dead server is noticed within 5 s, with nothing pressed ----------------

// /api/status every 2 s while the page is seen (at once when it is seen again); an answer
// that takes over 2.5 s counts as none. A server seen back wakes whatever waits to retry.
const HEARTBEAT_MS = 2000;
const HEARTBEAT_TIMEOUT_MS = 2500;
let beating = false;
let beatTimer = null;

async function heartbeat() {
  clearTimeout(beatTimer);
  if (beating || document.hidden) return;
  beating = true;
  const controller = new AbortController();
  const abort = setTimeout(() => controller.abort(), HEARTBEAT_TIMEOUT_MS);
  let answered = false;
  try {
    answered = (await fetch("/api/status", { signal: controller.signal, cache: "no-store" })).ok;
  } catch (error) { /* refused, or too slow: not answering */ }
  clearTimeout(abort);
  beating = false;
  const wasDown = net.beat;
  net.beat = !answered;
  if (net.beat !== wasDown) showNet();
  if (wasDown && answered) wakeUp();
  beatTimer = setTimeout(heartbeat, HEARTBEAT_MS);
}
document.addEventListener("visibilitychange", () => { if (!document.hidden) heartbeat(); });

// -- the server is starting: what it prepares, and about how long is left --------------------

const STATUS_POLL_MS = 250;

// No estimate (`estimate_s` null: no past start like this one, or they disagree): no number,
// and the bar counts the steps done.
function showStarting(status) {
  const left = status.estimate_s;
  const known = typeof left === "number";
  const share = known && status.elapsed_s + left > 0 ? status.elapsed_s / (status.elapsed_s + left) : 0;
  const percent = Math.round(100 * Math.max(share, status.done / status.steps));
  $("start-bar").style.width = `${percent}%`;
  $("start-progress").setAttribute("aria-valuenow", percent);
  const step = `Step ${status.done + 1} of ${status.steps}: ${status.step}`;
  if ($("start-step").textContent !== step) {
    $("start-step").textContent = step;
    window.ddjax.startSteps.push(status.step);
  }
  const so = `${Math.round(status.elapsed_s)} s so far`;
  $("start-left").textContent = !known ? `${so}; no estimate of the time left yet` :
    (left >= 1 ? `about ${Math.ceil(left)} s left` : "almost ready") + ` (${so})`;
  $("start-pending").hidden = !pending;
  $("start-pending").textContent = pending ? `Your ${ratingName(pending)} is kept on this ` +
    "device and will be sent when the server is ready." : "";
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
      await nap(delay);
      delay = Math.min(2 * delay, RETRY_MAX_MS);
    }
  }
}

class LoopGone extends Error {}

// Sends a rating until the server takes or refuses it. After a failed try (or from a
// reload) it first asks which loop the server is on: a restarted server may have dealt a
// different loop under the same key, and a rating belongs only to the loop that was heard.
// A rating of an edited loop carries its `edit`, kept with it, so a retry rates the same
// version. Returns the session's state, or null when the rating was dropped (and says why).
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
      const body = { key: rating.key, liked: rating.liked };
      if (rating.edit) body.edit = rating.edit;
      try { return await api("/rate", post(body)); }
      catch (error) { if (unreachable(error) || error.starting) failed = true; throw error; }
    });
    dropPending(rating);
    if (failed) showMessage(`Back online: your ${ratingName(rating)} is recorded.`);
    else if (verify) showMessage(`Your ${ratingName(rating)}, kept over the reload, is recorded.`);
    return state;
  } catch (error) {
    dropPending(rating);
    if (error instanceof LoopGone) {
      showMessage(`The server restarted without loop ${rating.key}, so your ${ratingName(rating)} ` +
                  "was dropped; here is the loop it has now.");
    } else if (error.status === 409) {
      showMessage(`Your ${ratingName(rating)} was dropped: ${error.message}.`);
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
  const version = item && page.edit && soundChanged(item, page.edit) ? `this version of ${loop}` : loop;
  $("like").setAttribute("aria-label", `Like ${version}`);
  $("dislike").setAttribute("aria-label", `Dislike ${version}`);
}

// A listening render is several bars plus the last bar's tail. The page plays bar 1, then
// repeats bar 2, which already holds the tails ringing over from the bar before it: a
// seamless loop.
// `bpm`: the tempo heard (an edit's), the item's own by default.
function barSeconds(item, bpm = item.bpm) { return (4 * 60 / bpm) * (item.grid[0].length / 16); }

// Plays `buffer` from `offset` seconds (0: its start; within bar 2 it goes on looping).
function startAudio(buffer, bar, offset = 0) {
  stopAudio();
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.loop = true;
  if (bar && buffer.duration >= 2 * bar) { source.loopStart = bar; source.loopEnd = 2 * bar; }
  page.bar = bar || buffer.duration;
  source.connect(ctx.destination);
  source.start(0, offset);
  page.source = source;
  page.buffer = buffer;
  page.startedAt = ctx.currentTime - offset;
  page.playing = true;
  updateAudioHint();
  updatePlayButton();
}

function togglePlay() {
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  if (ctx.state === "suspended") { ctx.resume().then(() => { updateAudioHint(); updatePlayButton(); }); return; }
  if (!page.itemBuffer) return;
  if (page.playing && page.buffer === page.itemBuffer) { stopAudio(); setState("paused"); }
  else { startAudio(page.itemBuffer, page.itemBar); setState("playing"); }
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
// Rating freely, each cell holds a toggle button (pressed: the step plays), and each row's
// header a mute and a solo button. The grid drawn is the loop as edited (`page.edit`).
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
    const line = document.createElement("div");
    line.className = "track";
    line.setAttribute("role", "row");
    line.dataset.track = track;
    const label = document.createElement("div");
    label.className = "label";
    label.setAttribute("role", "rowheader");
    const what = document.createElement("span");
    what.className = "what";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = sample;
    name.title = sample;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = kindName;
    what.append(name, kind);
    label.append(what);
    if (EDITABLE) {
      const who = item.rows[track].kind || sample;
      const buttons = document.createElement("span");
      buttons.className = "track-buttons";
      for (const [flag, text, verb] of [["mute", "M", "Mute"], ["solo", "S", "Solo"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = flag;
        button.dataset.edit = "";
        button.textContent = text;
        button.title = `${verb} ${who}`;
        button.setAttribute("aria-label", `${verb} track ${track + 1} (${who})`);
        button.addEventListener("click", (event) => {
          toggleTrack(flag, track);
          if (event.detail > 0) button.blur();  // a click leaves space to play and pause
        });
        buttons.append(button);
      }
      label.append(buttons);
    }
    line.append(label);
    row.forEach((_, step) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.setAttribute("role", "cell");
      cell.dataset.step = step;
      cell.dataset.track = track;
      if (EDITABLE) {
        const hit = document.createElement("button");
        hit.type = "button";
        hit.className = "hit";
        hit.dataset.edit = "";
        // One Tab stop for the whole grid: the arrow keys move between cells there.
        hit.tabIndex = track === 0 && step === 0 ? 0 : -1;
        hit.setAttribute("aria-keyshortcuts", "A");  // the hit's next level
        hit.addEventListener("click", (event) => {
          if (event.shiftKey) cycleVelocity(track, step);
          else toggleCell(track, step);
          if (event.detail > 0) hit.blur();
        });
        cell.append(hit);
      }
      line.append(cell);
    });
    grid.append(line);
  });
  paintGrid();
  const humanize = item.humanize;
  $("groove").textContent = [swingOf(item) !== STRAIGHT_SWING ? `swing ${item.swing}%` : "",
    humanize ? `humanized: up to ${humanize.ms} ms and ${humanize.velocity} velocity` : ""]
    .filter(Boolean).join(" \u00b7 ");
  showScore(scoreText(item));
  if (item.total !== null) {
    // One bar over both phases, so it never runs backwards when phase II starts.
    const done = item.number - 1 + (item.phase === "phase2" ? SIZES.phase1 : 0);
    $("progress").hidden = false;
    $("progress-bar").style.width = `${(100 * done) / (SIZES.phase1 + SIZES.phase2)}%`;
    $("progress-text").textContent = item.phase === "practice" ? "Practice loop (not counted)" :
      `${item.phase === "phase2" ? "Phase II" : "Phase I"}: loop ${item.number} of ${item.total}`;
    if (item.phase === "practice") $("progress-bar").style.width = "0%";
    $("practice-note").hidden = item.phase !== "practice";
  }
}

// Draws the loop as edited: each cell on or off and how loud, each track sounding or not.
function paintGrid() {
  const item = page.item, edit = page.edit;
  if (!item || !edit) return;
  const sounds = audible(edit);
  for (const line of document.querySelectorAll("#grid .track")) {
    const track = Number(line.dataset.track);
    const sample = item.rows[track].name;
    const who = item.rows[track].kind || sample;
    const silent = edit.mute[track] ? " (muted)" : sounds[track] ? "" : " (silent: another track is soloed)";
    const name = `${item.rows[track].kind || "unknown kind"}: ${sample}${silent}`;
    line.setAttribute("aria-label", name);
    line.querySelector(".label").setAttribute("aria-label", name);
    line.classList.toggle("silent", !sounds[track]);
    for (const flag of ["mute", "solo"]) {
      const button = line.querySelector(`button.${flag}`);
      if (button) button.setAttribute("aria-pressed", String(edit[flag][track]));
    }
    for (const cell of line.querySelectorAll(".cell")) paintCell(cell, who, edit);
  }
}

function paintCell(cell, who, edit) {
  const track = Number(cell.dataset.track), step = Number(cell.dataset.step);
  const on = !!edit.grid[track][step];
  const velocity = edit.velocity ? edit.velocity[track][step] : FULL_VELOCITY;
  const accent = on && velocity >= ACCENT_FROM, ghost = on && velocity <= GHOST_UP_TO;
  const loudness = (accent ? ", accent" : "") + (ghost ? ", ghost note" : "");
  cell.className = "cell" + (on ? " on" : "") + (step % 4 === 0 ? " beat" : "")
    + (accent ? " accent" : "") + (ghost ? " ghost" : "");
  cell.setAttribute("aria-label", `${who}, step ${step + 1}, ${on ? "on" : "off"}${loudness}`);
  if (on) {  // louder hits are brighter: the accent, the normal hit and the ghost note
    cell.style.opacity = (0.35 + 0.65 * velocity / FULL_VELOCITY).toFixed(2);
    cell.title = `velocity ${velocity} (${accent ? "accent" : ghost ? "ghost note" : "normal"})` +
      (EDITABLE ? ": shift+click or A for the next level" : "");
  } else {
    cell.style.removeProperty("opacity");
    cell.removeAttribute("title");
  }
  const hit = cell.querySelector(".hit");
  if (hit) {  // "snare, step 5, accent, toggle button, pressed"
    hit.setAttribute("aria-label", `${who}, step ${step + 1}${loudness}`);
    hit.setAttribute("aria-pressed", String(on));
  }
}

// -- editing: toggle cells, mute and solo tracks, tempo and swing; audition the result -------

const FULL_VELOCITY = 127;  // every hit of a loop without velocities (the uniform prior)
const NORMAL_VELOCITY = 100;  // a cell switched on that the proposal left off
// The levels shift+click (or A) cycles a hit through: ghost, normal, accent. The page draws
// a hit at or below GHOST_UP_TO as a ghost note, at or above ACCENT_FROM as an accent.
const VELOCITY_LEVELS = [70, NORMAL_VELOCITY, FULL_VELOCITY];
const GHOST_UP_TO = 80, ACCENT_FROM = 120;
const AUDITION_DEBOUNCE_MS = 120;
// Swing on the MPC/Ableton scale: the off-beat 16th lands at this percent of its 8th note.
const STRAIGHT_SWING = 50, TRIPLET_SWING = 200 / 3, MAX_SWING = 75;
const swingOf = (item) => item.swing ?? STRAIGHT_SWING;

// The loop as proposed, as an edit: grid and velocity as drawn, no track muted or soloed,
// the session's tempo and swing. Velocities stay null for a loop without them (every hit,
// a new one too, plays at 127).
function freshEdit(item) {
  return { grid: item.grid.map((row) => row.slice()),
           velocity: item.velocity ? item.velocity.map((row) => row.slice()) : null,
           mute: item.grid.map(() => false), solo: item.grid.map(() => false),
           bpm: item.bpm, swing: swingOf(item) };
}

// The tracks that sound: not muted, and soloed when any track is (as `Edit.audible`).
function audible(edit) {
  const soloing = edit.solo.some(Boolean);
  return edit.mute.map((muted, track) => !muted && (!soloing || edit.solo[track]));
}

// Whether what sounds differs from the loop as proposed (as `Edit.changes`): then Like and
// Dislike rate this version.
function soundChanged(item, edit) {
  const sounds = audible(edit);
  return edit.grid.some((row, track) => row.some((on, step) => {
    const heard = sounds[track] && !!on;
    if (heard !== !!item.grid[track][step]) return true;
    return heard && !!edit.velocity && edit.velocity[track][step] !== proposedVelocity(item, track, step);
  }));
}

// Whether anything differs from the loop as proposed, tempo and swing included.
function isEdited(item, edit) {
  return edit.bpm !== item.bpm || edit.swing !== swingOf(item) ||
    edit.mute.some(Boolean) || edit.solo.some(Boolean) ||
    edit.grid.some((row, track) => row.some((on, step) => on !== item.grid[track][step])) ||
    soundChanged(item, edit);
}

// The edit as /audition and /rate take it (tempo and swing apart).
function editBody(edit) {
  const body = { grid: edit.grid, mute: edit.mute, solo: edit.solo };
  if (edit.velocity) body.velocity = edit.velocity;
  return JSON.parse(JSON.stringify(body));
}

const canEdit = () => EDITABLE && !!page.item && !!page.edit && !page.busy &&
  document.body.dataset.state !== "loading";

function toggleCell(track, step) {
  if (!canEdit()) return;
  const item = page.item, edit = page.edit;
  const on = edit.grid[track][step] ? 0 : 1;
  edit.grid[track][step] = on;
  // A cell the proposal left off plays at the normal velocity (at 127 in a loop without
  // velocities, as every hit there); one it played keeps its own.
  if (edit.velocity && !item.grid[track][step]) {
    edit.velocity[track][step] = on ? (item.velocity ? NORMAL_VELOCITY : FULL_VELOCITY)
      : proposedVelocity(item, track, step);
  }
  edited();
}

// The velocity the loop as proposed gives a cell: its own, or 127 in a loop without them.
const proposedVelocity = (item, track, step) =>
  item.velocity ? item.velocity[track][step] : FULL_VELOCITY;

// Shift+click or A: the hit's next level, ghost -> normal -> accent -> ghost (a velocity
// between levels goes to the next one up); an off cell comes on as a ghost note. A loop
// without velocities gets them here, 127 for every cell, as it plays.
function cycleVelocity(track, step) {
  if (!canEdit()) return;
  const item = page.item, edit = page.edit;
  if (!edit.velocity) edit.velocity = item.grid.map((row, t) => row.map((_, s) => proposedVelocity(item, t, s)));
  const on = !!edit.grid[track][step];
  const now = edit.velocity[track][step];
  edit.velocity[track][step] = on ? (VELOCITY_LEVELS.find((level) => level > now) ?? VELOCITY_LEVELS[0])
    : VELOCITY_LEVELS[0];
  edit.grid[track][step] = 1;
  edited();
}

function toggleTrack(flag, track) {
  if (!canEdit()) return;
  page.edit[flag][track] = !page.edit[flag][track];
  edited();
}

// After any change: draw it, say what a rating rates now, and audition it shortly (a burst
// of changes, such as a slider dragged, is one request).
// Until its audio comes, an edit that changes the sound shows no score: the one shown was
// the version before's.
function edited() {
  paintGrid();
  showKnobs();
  showEdited();
  clearTimeout(page.auditionTimer);
  const item = page.item, edit = page.edit;
  if (isEdited(item, edit)) showScore(soundChanged(item, edit) ? "" : scoreText(item), true);
  else showScore(scoreText(item));
  page.auditionTimer = setTimeout(audition, AUDITION_DEBOUNCE_MS);
}

// The critic's word under the loop, and "rendering…" beside it while an edit's audio is on
// its way (`data-rendering` says so to the tests).
function showScore(text, rendering = false) {
  const box = $("score");
  box.dataset.rendering = String(rendering);
  box.textContent = !rendering ? text : text ? `${text} \u00b7 rendering\u2026` :
    "this version: rendering\u2026";
}

const tenths = (x) => `${Math.round(10 * x) / 10}`;
// The swing slider's words: where the off-beat lands, named where it has a name.
const swingText = (x) => `${tenths(x)}%` + (x === STRAIGHT_SWING ? " (straight)" :
  Math.abs(x - TRIPLET_SWING) < 0.5 ? " (triplet)" : "");

function showKnobs() {
  const edit = page.edit;
  if (!edit) return;
  for (const [id, value, text] of [["bpm", edit.bpm, `${tenths(edit.bpm)} BPM`],
                                   ["swing", edit.swing, swingText(edit.swing)]]) {
    if (Number($(id).value) !== value) $(id).value = value;
    $(id).setAttribute("aria-valuetext", text);
    $(`${id}-value`).textContent = text;
  }
}

// The line under Like and Dislike: what they rate while the loop is edited.
function showEdited() {
  const item = page.item, edit = page.edit;
  const changed = !!item && !!edit && isEdited(item, edit);
  const version = changed && soundChanged(item, edit);
  let text = "";
  if (changed) {
    const session = `the session's ${tenths(item.bpm)} BPM` +
      (swingOf(item) !== STRAIGHT_SWING ? ` and ${tenths(item.swing)}% swing` : "");
    const listening = edit.bpm !== item.bpm || edit.swing !== swingOf(item);
    text = version ? `Edited: Like / Dislike rate this version (at ${session}).` :
      listening ? `Tempo and swing are for listening: Like / Dislike rate the loop as proposed (at ${session}).` :
      "Like / Dislike rate the loop as proposed: your changes don't change what it plays.";
  }
  if ($("edited-text").textContent !== text) $("edited-text").textContent = text;
  $("revert").hidden = !changed;
  if (item) $("revert").setAttribute("aria-label", `Revert to loop ${item.key} as proposed`);
  document.body.dataset.edited = version ? "version" : changed ? "listening" : "no";
  for (const span of document.querySelectorAll(".this-version")) span.hidden = !version;
  updatePlayButton();
}

// Sends the edit and plays what comes back. A reply overtaken by a later change, or by the
// next loop, is dropped; a refusal is shown, and the audio playing stays.
async function audition() {
  const item = page.item, edit = page.edit;
  if (!item || !edit) return;
  const ticket = ++page.auditions;
  if (!isEdited(item, edit)) {
    swapAudio(page.proposedBuffer, barSeconds(item));
    showScore(scoreText(item));
    return;
  }
  const body = { key: item.key, ...editBody(edit), bpm: edit.bpm, swing: edit.swing };
  const started = performance.now();
  let buffer, heard;
  try {
    const response = await fetch(`/api/s/${encodeURIComponent(SID)}/audition`, post(body));
    if (!response.ok) {
      const type = response.headers.get("content-type") || "";
      const data = type.includes("json") ? await response.json() : null;
      throw new ApiError(response.status, (data && data.error) || response.statusText);
    }
    // The critic's score of the version a rating would rate (at the session's tempo).
    heard = { score: Number.parseFloat(response.headers.get("X-Ddjax-Score")),
              critic_version: Number(response.headers.get("X-Ddjax-Critic-Version")) };
    buffer = await ctx.decodeAudioData(await response.arrayBuffer());
  } catch (error) {
    if (ticket === page.auditions && page.item === item) {
      const why = error instanceof TypeError ? "the server can't be reached" : error.message;
      showMessage(`Can't play loop ${item.key} as edited: ${why}`);
      showScore(soundChanged(item, edit) ? "" : scoreText(item));
    }
    return;
  }
  window.ddjax.auditions.push((performance.now() - started) / 1000);
  if (ticket !== page.auditions || page.item !== item) return;
  swapAudio(buffer, barSeconds(item, body.bpm));
  showScore(soundChanged(item, edit) ? scoreText(heard, "this version") : scoreText(item));
}

// Makes `buffer` the loop's audio; playing, it goes on from the same point of the bar.
function swapAudio(buffer, bar) {
  if (!buffer || buffer === page.itemBuffer) return;
  const playing = page.playing && !!page.source && page.buffer === page.itemBuffer;
  let offset = 0;
  if (playing) {
    const elapsed = Math.max(0, ctx.currentTime - page.startedAt);
    offset = (elapsed >= page.bar ? bar : 0) + ((elapsed % page.bar) / page.bar) * bar;
  }
  page.itemBuffer = buffer;
  page.itemBar = bar;
  window.ddjax.duration = buffer.duration;
  window.ddjax.bar = bar;
  if (playing) startAudio(buffer, bar, offset);
  else updatePlayButton();
}

function revert() {
  if (!canEdit()) return;
  page.edit = freshEdit(page.item);
  clearTimeout(page.auditionTimer);
  page.auditions++;  // an audition on its way is not played
  paintGrid();
  showKnobs();
  showEdited();
  swapAudio(page.proposedBuffer, barSeconds(page.item));
  showScore(scoreText(page.item));
}

// What the critic thinks of the loop; nothing it says means much before it has learned.
// `what`: "it" (the loop as proposed) or "this version" (as edited and heard).
function scoreText(item, what = "it") {
  if (item.score === null || item.score === undefined || !Number.isFinite(item.score)) return "";
  const n = item.critic_version;
  if (!n) return "critic: not trained yet (it learns from your ratings)";
  return `critic: ${(100 * item.score).toFixed(0)}% chance you like ${what}` +
    ` (trained on ${n} rating${n === 1 ? "" : "s"})`;
}

function setButtons(enabled) {
  for (const id of ["like", "dislike", "play", "skip", "bpm", "swing", "revert"]) $(id).disabled = !enabled;
  $("undo").disabled = !enabled || !page.ratings;
  $("study-undo").disabled = !enabled || !(page.study && page.study.last_rated);
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
      const response = await fetch(item.phase === "practice" ?  // a study's practice loop
        `/api/s/${encodeURIComponent(SID)}/practice.wav` :
        `/api/s/${encodeURIComponent(SID)}/loops/${item.key}.wav`);
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
  page.itemBuffer = page.proposedBuffer = buffer;
  page.itemBar = barSeconds(item);
  page.edit = freshEdit(item);
  clearTimeout(page.auditionTimer);
  page.auditions++;
  $("skip").setAttribute("aria-label", `Skip loop ${item.key} without rating it`);
  drawGrid(item);
  showKnobs();
  showEdited();
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
  // a reload. An edited loop is rated as heard, and its edit is kept with the rating.
  if (page.item.phase === "practice") return ratePractice(liked);  // never a rating
  const rating = { sid: SID, key: page.item.key, liked, loop: fingerprint(page.item), at: Date.now() };
  if (page.edit && soundChanged(page.item, page.edit)) rating.edit = editBody(page.edit);
  clearTimeout(page.auditionTimer);
  page.auditions++;
  storePending(rating);
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
// Undo names the rating it takes back: a second click, or another tab, is refused (409).
const undo = () => page.lastRated && change("/undo", { key: page.lastRated },
                                            "The last rating is taken back: rate that loop again.");
const skip = () => page.item && change("/skip", { key: page.item.key }, `Skipped loop ${page.item.key}.`);
const moreLike = (key) => change("/more", { key }, `A variation on loop ${key}.`);

// -- counts, chart, liked list -----------------------------------------------------------------

function showCounts(state) {
  if (MODE === "study") return;
  const n = state.likes.length;
  const likes = state.likes.filter(Boolean).length;
  page.ratings = n;
  page.lastRated = state.last_rated;
  $("undo").disabled = !n || !page.item || page.busy;
  const all = $("download-all");
  all.hidden = likes === 0;
  all.href = `/api/s/${encodeURIComponent(SID)}/liked.zip`;
  all.setAttribute("aria-label", `Download all ${likes} liked loop${likes === 1 ? "" : "s"} as one zip`);
  $("counts").textContent = n === 0 ? "no ratings yet" :
    `${n} rating${n === 1 ? "" : "s"}, ${likes} liked (${Math.round((100 * likes) / n)}%)`;
  drawChart(state.likes);
  drawLiked(state.liked);
  showStyles(state);
}

// -- the style of the loops drawn next ---------------------------------------------------------

// The selector lists "mix" and every style the session's prior has (none: it stays hidden),
// and shows the style drawn from now on. A choice is sent at once; a refusal puts it back.
const MIX = "";  // the select's value for the mix of every style (null to the server)
let styleBusy = false;
function showStyles(state) {
  const select = $("style");
  const styles = state.styles || [];
  $("style-pick").hidden = styles.length === 0;
  if (!styles.length || styleBusy) return;
  const wanted = [MIX, ...styles];
  if ([...select.options].map((o) => o.value).join("\n") !== wanted.join("\n")) {
    select.replaceChildren(...wanted.map((style) => new Option(
      style === MIX ? "mix (every style)" : style, style)));
  }
  select.value = state.style ?? MIX;
  select.dataset.current = select.value;
}

async function pickStyle() {
  const select = $("style");
  const chosen = select.value;
  styleBusy = true;
  select.disabled = true;
  try {
    const state = await api("/style", post({ style: chosen === MIX ? null : chosen }));
    select.dataset.current = chosen;
    showMessage(`Style: ${chosen === MIX ? "a mix of every style" : chosen}, for the loops ` +
      "drawn from now on (one or two prepared already come first).");
    styleBusy = false;
    showCounts(state);
  } catch (error) {
    select.value = select.dataset.current ?? MIX;
    showMessage(`The style stays as it was: ${error.message}`);
  } finally {
    styleBusy = false;
    select.disabled = false;
  }
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

// A participant meets: [consent] -> id -> headphone check -> practice -> phase I -> the pause
// while phase II is drawn -> phase II -> results; the server's state says which step they
// are at, so a reload resumes there. The consent comes before the id: "I agree" is kept in
// this tab (sessionStorage) and logged in the participant's folder as soon as they have one.
let CONSENT = null;  // the study's consent page {html, file, digest}, if it has one
const AGREED_KEY = "ddjax:agreed";
const QUEUE_POLL_MS = 2000;
const hp = { trial: 0, source: null };  // the headphone check: the trial (1-based) on screen

function agreedHere() {
  try { return !!CONSENT && sessionStorage.getItem(AGREED_KEY) === CONSENT.digest; } catch (error) { return false; }
}

function showPid() {
  if (!SID) return;
  $("pid").hidden = false;
  $("pid-value").textContent = SID;
}

async function refreshStudy() {
  if (!SID) {
    setView(CONSENT && !agreedHere() ? "consent" : "instructions");
    return;
  }
  showPid();
  let state;
  try { state = await reach(() => api("/state")); } catch (error) {
    showMessage(error.message);
    setTimeout(refreshStudy, 2000);
    return;
  }
  page.study = state;
  document.body.dataset.phase = state.phase;
  if (state.phase === "consent") {
    if (agreedHere()) return agree();  // agreed before the id was given
    setView("consent");
    return;
  }
  if (state.phase === "headphones") return showHeadphones(state.headphones);
  if (["practice", "phase1", "phase2"].includes(state.phase)) return loadCurrent();
  stopAudio();
  if (state.phase === "drawing") {
    showDrawing(state.drawing);
    setView("drawing");
    setTimeout(refreshStudy, 1000);
    return;
  }
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

async function agree() {
  try { sessionStorage.setItem(AGREED_KEY, CONSENT.digest); } catch (error) { /* private mode */ }
  if (!SID) { setView("instructions"); return; }
  $("agree").disabled = true;
  try { await reach(() => api("/consent", post({ agree: true }))); } catch (error) { showMessage(error.message); }
  $("agree").disabled = false;
  refreshStudy();
}

// The pause: the groups drawn so far, and the time left where the server can tell.
function showDrawing(drawing) {
  if (!drawing) return;
  const { done, total, elapsed_s: elapsed, estimate_s: left } = drawing;
  const share = left !== null ? elapsed / Math.max(elapsed + left, 1e-9) : (total ? done / total : 0);
  const percent = Math.round(100 * Math.min(1, share));
  $("draw-bar").style.width = `${percent}%`;
  $("draw-progress").setAttribute("aria-valuenow", percent);
  $("draw-left").textContent = (total ? `${done} of ${total} groups of loops drawn; ` : "") +
    (left === null ? `${Math.round(elapsed)} s so far (no estimate yet: the first draws are being timed)` :
     left >= 1 ? `about ${Math.ceil(left)} s left` : "almost ready");
}

// -- the headphone check: a tone to set the volume, then the trials, each heard once ----------

function playOnce(url) {
  return fetch(url).then((response) => {
    if (!response.ok) throw new ApiError(response.status, response.statusText);
    return response.arrayBuffer();
  }).then((data) => ctx.decodeAudioData(data)).then((buffer) => new Promise((resolve) => {
    if (hp.source) { hp.source.onended = null; hp.source.stop(); }
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    source.onended = () => { if (hp.source === source) hp.source = null; resolve(); };
    hp.source = source;
    source.start();
  }));
}

function showHeadphones(check) {
  stopAudio();
  setView("headphones");
  const volume = check.attempt === 0 && check.trial === 0 && !hp.volumeSet;
  $("hp-volume").hidden = !volume;
  $("hp-trials").hidden = volume;
  const last = check.results[check.results.length - 1];
  $("hp-failed").hidden = !(last && !last.passed);
  hp.trial = check.trial + 1;
  $("hp-trial").textContent = `Tones ${hp.trial} of ${check.trials}` +
    (check.attempt > 0 ? " (second try)" : "");
  $("hp-play").disabled = false;
  for (const n of [1, 2, 3]) $(`hp-${n}`).disabled = true;
  document.body.dataset.hpTrial = hp.trial;
  document.body.dataset.hpAttempt = check.attempt;
}

async function playVolume() {
  $("volume-play").disabled = true;
  try { await playOnce(`/api/s/${encodeURIComponent(SID)}/headphones/volume.wav`); }
  catch (error) { showMessage(error.message); }
  $("volume-play").disabled = false;
  $("volume-done").disabled = false;
}

async function playTrial() {
  $("hp-play").disabled = true;
  document.body.dataset.hpHeard = "";
  try { await playOnce(`/api/s/${encodeURIComponent(SID)}/headphones/${hp.trial}.wav`); }
  catch (error) { showMessage(error.message); $("hp-play").disabled = false; return; }
  for (const n of [1, 2, 3]) $(`hp-${n}`).disabled = false;
  document.body.dataset.hpHeard = String(hp.trial);
}

async function answerTrial(answer) {
  for (const n of [1, 2, 3]) $(`hp-${n}`).disabled = true;
  let state;
  try { state = await reach(() => api("/headphones", post({ trial: hp.trial, answer }))); } catch (error) {
    showMessage(error.message);
    return refreshStudy();
  }
  page.study = state;
  if (state.phase === "headphones") showHeadphones(state.headphones);
  else refreshStudy();
}

// -- the practice loop (not counted) and undo ----------------------------------------------------

async function ratePractice(liked) {
  setButtons(false);
  stopAudio();
  setState("loading");
  try { await reach(() => api("/practice", post({ liked }))); showMessage("That was the practice loop: from now on every rating counts."); }
  catch (error) { showMessage(error.message); }
  page.item = null;
  page.busy = false;
  refreshStudy();
}

// Takes back the last rating of the phase under way (never across phases: the server says so).
async function studyUndo() {
  const key = page.study && page.study.last_rated;
  if (page.busy || !key) return;
  page.busy = true;
  setButtons(false);
  stopAudio();
  setState("loading");
  try {
    await reach(() => api("/undo", post({ key })));
    showMessage("The last rating is taken back: rate that loop again.");
  } catch (error) { showMessage(error.message); }
  page.item = null;
  page.busy = false;
  refreshStudy();
}

// -- joining: the id, and the line while the study is full ----------------------------------------

async function joinStudy(body) {
  try { return await call("/api/join", post(body)); } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
    return call("/api/participants", post(body));  // a server from before /api/join
  }
}

function showQueue(queued) {
  setView("queue");
  $("queue-place").textContent = queued.place;
  $("queue-estimate").textContent = queued.estimate_s === null || queued.estimate_s === undefined ?
    "" : `About ${Math.max(1, Math.round(queued.estimate_s / 60))} minute${Math.round(queued.estimate_s / 60) > 1 ? "s" : ""} to wait.`;
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
    let joined = await joinStudy(requested ? { id: requested } : {});
    while (joined.queued) {
      showQueue(joined);
      await sleep(QUEUE_POLL_MS);
      joined = await reach(() => call(`/api/queue/${encodeURIComponent(joined.ticket)}`));
    }
    location.assign(joined.url);
  } catch (error) {
    showMessage(error.message);
    setView("instructions");
    $("begin").disabled = false;
  }
}

// How long the study takes, from the times of the participants on disk; no number before any.
async function showDuration(config) {
  let measured = null;
  try { measured = await call("/api/estimate"); } catch (error) { /* no estimate */ }
  const perRating = measured && measured.seconds_per_rating;
  if (perRating === null || perRating === undefined) {
    $("duration").textContent = "Set aside the time to do it without interruptions";
    $("duration-basis").textContent = "There is no time estimate yet: it is measured from the" +
      " participants' own times, and nobody has rated yet.";
    return;
  }
  const draw = measured.draw_seconds || 0;
  const minutes = Math.max(1, Math.round(((config.phase1 + config.phase2 + 1) * perRating + draw) / 60));
  const number = document.createElement("b");
  number.id = "minutes";
  number.textContent = minutes;
  $("duration").replaceChildren("Set aside about ", number,
                                ` minute${minutes === 1 ? "" : "s"} without interruptions`);
  const n = measured.participants;
  $("duration-basis").textContent = `Estimated from the ${n} participant${n === 1 ? "" : "s"} so far:` +
    ` a median of ${perRating.toFixed(1)} s per loop` +
    (measured.draw_seconds !== null ? ` and ${Math.round(draw)} s to prepare the second phase` : "") +
    ", plus the headphone check.";
}

// -- wiring ----------------------------------------------------------------------------------

$("like").addEventListener("click", () => rate(true));
$("dislike").addEventListener("click", () => rate(false));
$("play").addEventListener("click", togglePlay);
$("undo").addEventListener("click", undo);
$("skip").addEventListener("click", skip);
$("begin").addEventListener("click", begin);
$("agree").addEventListener("click", agree);
$("study-undo").addEventListener("click", studyUndo);
$("draw-undo").addEventListener("click", studyUndo);  // phase I's last rating, during the pause
$("volume-play").addEventListener("click", playVolume);
$("volume-done").addEventListener("click", () => { hp.volumeSet = true; refreshStudy(); });
$("hp-play").addEventListener("click", playTrial);
for (const n of [1, 2, 3]) $(`hp-${n}`).addEventListener("click", () => answerTrial(n));
$("revert").addEventListener("click", revert);
$("style").addEventListener("change", pickStyle);
Object.assign($("swing"), { min: STRAIGHT_SWING, max: MAX_SWING });
for (const id of ["bpm", "swing"]) {
  $(id).addEventListener("input", () => {
    if (!canEdit()) return;
    page.edit[id] = Number($(id).value);
    edited();
  });
}

const LIKE_KEYS = new Set(["l", "L", "ArrowRight"]);
const DISLIKE_KEYS = new Set(["d", "D", "ArrowLeft"]);
// Keys a slider keeps for itself; space on one still plays and pauses.
// In the grid, the arrow keys (and Home/End) move the focus from cell to cell, instead of
// rating: one Tab stop for the grid, the last cell focused.
const GRID_MOVES = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0],
                     ArrowDown: [1, 0], Home: [0, -Infinity], End: [0, Infinity] };
function moveInGrid(button, key) {
  const cell = button.closest(".cell");
  const tracks = page.item.grid.length, steps = page.item.grid[0].length;
  const [dt, ds] = GRID_MOVES[key];
  const track = Math.min(tracks - 1, Math.max(0, Number(cell.dataset.track) + dt));
  const step = Math.min(steps - 1, Math.max(0, Number(cell.dataset.step) + ds));
  const next = document.querySelector(
    `#grid .cell[data-track='${track}'][data-step='${step}'] .hit`);
  if (!next) return;
  for (const hit of document.querySelectorAll("#grid .hit")) hit.tabIndex = -1;
  next.tabIndex = 0;
  next.focus();
}
const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target instanceof HTMLInputElement && (target.type !== "range" || SLIDER_KEYS.has(event.key))) return;
  if (target instanceof HTMLSelectElement) return;  // the style selector keeps every key
  if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.body.dataset.view !== "rate") return;
  if (target instanceof Element && target.classList.contains("hit") &&
      Object.hasOwn(GRID_MOVES, event.key) && page.item) {
    event.preventDefault();
    moveInGrid(target, event.key);
    return;
  }
  if (target instanceof Element && target.classList.contains("hit") && ["a", "A"].includes(event.key)) {
    event.preventDefault();
    const cell = target.closest(".cell");
    cycleVelocity(Number(cell.dataset.track), Number(cell.dataset.step));
    return;
  }
  // Space or Enter on a focused cell, mute, solo or Revert presses it (the button's own click).
  if ((event.key === " " || event.key === "Enter") && target instanceof Element &&
      target.closest("[data-edit]")) return;
  if (event.key === " ") { event.preventDefault(); togglePlay(); }
  else if (LIKE_KEYS.has(event.key)) { event.preventDefault(); rate(true); }
  else if (DISLIKE_KEYS.has(event.key)) { event.preventDefault(); rate(false); }
  else if (MODE === "study" && ["u", "U"].includes(event.key)) {
    event.preventDefault();
    if (!$("study-undo").disabled) studyUndo();
  } else if (MODE !== "study" && ["u", "U", "Backspace"].includes(event.key)) {
    event.preventDefault();
    if (!$("undo").disabled) undo();
  } else if (MODE !== "study" && ["s", "S"].includes(event.key)) {
    event.preventDefault();
    if (!$("skip").disabled) skip();
  }
});

let SIZES = { phase1: 0, phase2: 0 };

async function start() {
  const config = await reach(() => call("/api/config"));
  SIZES = { phase1: config.phase1, phase2: config.phase2 };
  $("n-phase1").textContent = config.phase1;
  $("n-phase2").textContent = config.phase2;
  if (MODE === "study") {
    try { CONSENT = await call("/api/consent"); } catch (error) { CONSENT = null; }
    if (CONSENT) $("consent-text").innerHTML = CONSENT.html;  // the researcher's page
    await showDuration(config);
  }
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
heartbeat();
