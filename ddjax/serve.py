"""``ddjax serve``: rate loops in the browser, alone or as a study participant.

A Starlette app over the desks of ``ddjax.study``, served by uvicorn. The page is plain
HTML/JS/CSS from ``ddjax/web`` (no build step, nothing fetched from elsewhere), so it works
offline.

Every request that waits for JAX (the next loop, a rating, phase II) runs in a worker
thread, so one participant's training never blocks another's page. Each participant has
their own Session and its worker.

The API (``SID`` is ``main`` when rating alone, the participant's id in a study)::

    GET  /api/config                     mode and sizes
    POST /api/participants               {"id": optional}: join a study -> {"id"}
    GET  /api/s/SID/state                counts, like history, liked loops, result
    GET  /api/s/SID/current              the loop to rate now (waits while it is drawn)
    POST /api/s/SID/rate                 {"key": "12", "liked": true}
    GET  /api/s/SID/loops/KEY.wav        the current loop's or a rated loop's audio
    GET  /api/s/SID/loops/KEY.(mid|json) a rated loop's MIDI or JSON (not in a study)
    GET  /api/s/SID/archive.zip          a participant's whole folder

Refusals are JSON ``{"error": "..."}``: 404 for an unknown id or file, 409 for a stale or
duplicate rating, 400/413/422 for a malformed, oversized or ill-typed body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import pathlib
import re
import secrets
import socket
import sys
import tempfile
import threading
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ddjax.engine import Pipeline
from ddjax.errors import DdjaxError
from ddjax.experiment import ExperimentConfig
from ddjax.kinds import kit_kinds, kit_notes
from ddjax.kit import Kit, load_kit
from ddjax.session import Session, SessionConfig
from ddjax.study import KEY_PATTERN, Desk, Study
from ddjax.training import TrainConfig

MAX_BODY_BYTES = 4096
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAIN = "main"
PARTICIPANTS_DIR = "participants"
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
MEDIA = {"wav": "audio/wav", "bar": "audio/wav", "mid": "audio/midi",
         "json": "application/json"}


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What the server runs.

    Attributes:
      kit_dir: the kit folder (None: the session's recorded kit; a study needs one).
      directory: the session folder (alone) or the study folder (``study``).
      study: run the paper's protocol for any number of participants.
      experiment: the study's sizes; its seed is the first participant's.
      session: sampling settings.
      train: training settings.
      pipeline: the tempo and loop size (``Pipeline.sized``) of new sessions; a resumed one
        must match it.
    """

    kit_dir: pathlib.Path | None
    directory: pathlib.Path
    study: bool = False
    experiment: ExperimentConfig = ExperimentConfig()
    session: SessionConfig = SessionConfig()
    train: TrainConfig = TrainConfig()
    pipeline: Pipeline = Pipeline()


class Desks:
    """Every open desk by id; opens a study's participants on first use, one at a time.

    Args:
      config: what the server runs.
      kit: the kit of every desk.
      session: the session to rate alone (its desk is ``main``); None in a study.
    """

    def __init__(self, config: ServeConfig, kit: Kit, session: Session | None = None):
        self.config, self.kit = config, kit
        self.kinds, self.notes = kit_kinds(kit), kit_notes(kit)
        self._desks: dict[str, Desk | Study] = (
            {} if session is None else {MAIN: Desk(session, self.notes)})
        self._opening: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> pathlib.Path:
        return self.config.directory / PARTICIPANTS_DIR

    def get(self, sid: str) -> Desk | Study:
        """The desk ``sid``; a known participant is opened (resumed) if need be."""
        if not ID_PATTERN.fullmatch(sid):
            raise HttpError(404, f"no session {sid!r}")
        with self._lock:
            if sid in self._desks:
                return self._desks[sid]
            if not self.config.study or not (self.root / sid / "study.json").is_file():
                raise HttpError(404, f"no session {sid!r}")
        return self._open_once(sid)

    def join(self, requested: str | None) -> str:
        """A participant's id: ``requested`` (resumed if it exists) or a fresh one."""
        if requested is not None and not ID_PATTERN.fullmatch(requested):
            raise HttpError(422, "an id is 1 to 64 letters, digits, '-' or '_'")
        sid = requested or f"p-{secrets.token_hex(4)}"
        if sid == MAIN:
            raise HttpError(422, f"{MAIN!r} is reserved; pick another id")
        self._open_once(sid)
        return sid

    def _open_once(self, sid: str) -> Desk | Study:
        """The participant ``sid``, opened (or created) by the first caller only."""
        with self._lock:
            opening = self._opening.setdefault(sid, threading.Lock())
        with opening:  # a slow open of one participant never holds the others
            with self._lock:
                if sid in self._desks:
                    return self._desks[sid]
            return self._open(sid)

    def _open(self, sid: str) -> Study:
        c = self.config
        seed = c.experiment.seed + int.from_bytes(hashlib.sha256(sid.encode()).digest()[:3])
        try:
            study = Study.open(self.root / sid, self.kit, self.notes,
                               dataclasses.replace(c.experiment, seed=seed), sid,
                               session_config=c.session, train=c.train, pipeline=c.pipeline)
        except DdjaxError as err:
            raise HttpError(409, f"participant {sid}: {err}") from None
        with self._lock:
            self._desks[sid] = study
        return study

    def close(self) -> None:
        with self._lock:
            desks = list(self._desks.values())
        for desk in desks:
            desk.close()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict:
    """The request's JSON object, read up to ``MAX_BODY_BYTES``."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise HttpError(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise HttpError(422, "the request body must be a JSON object")
    return data


def create_app(desks: Desks) -> Starlette:
    """The web app over ``desks``."""
    config = desks.config
    page = resources.files("ddjax.web").joinpath("index.html").read_text()

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except HttpError as err:
                return _error(err.status, str(err))
            except DdjaxError as err:  # Refused, or a session's own refusal
                return _error(409, str(err))
        return endpoint

    async def index(request: Request) -> Response:
        sid = request.path_params.get("sid")
        if sid is not None:
            if not config.study:
                raise HttpError(404, "not a study")
            await run_in_threadpool(desks.get, sid)
        mode = "study" if config.study else "rate"
        body = page.replace("{{MODE}}", mode).replace("{{SID}}", sid or (
            "" if config.study else MAIN))
        return Response(body, media_type="text/html",
                        headers={"Cache-Control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HttpError(404, f"no file {name!r}")
        text = resources.files("ddjax.web").joinpath(name).read_text()
        return Response(text, media_type=STATIC[name])

    async def app_config(request: Request) -> Response:
        e = config.experiment
        return JSONResponse({"mode": "study" if config.study else "rate",
                             "phase1": e.n_ratings, "phase2": 2 * e.n_eval})

    async def join(request: Request) -> Response:
        if not config.study:
            raise HttpError(404, "not a study: start the server with --study")
        data = await _json_body(request)
        requested = data.get("id")
        if requested is not None and not isinstance(requested, str):
            raise HttpError(422, "'id' must be a string")
        sid = await run_in_threadpool(desks.join, requested or None)
        return JSONResponse({"id": sid, "url": f"/study/{sid}"})

    async def state(request: Request) -> Response:
        desk = await run_in_threadpool(desks.get, request.path_params["sid"])
        return JSONResponse(await run_in_threadpool(desk.state))

    async def current(request: Request) -> Response:
        desk = await run_in_threadpool(desks.get, request.path_params["sid"])
        item = await run_in_threadpool(desk.current)
        return JSONResponse(item.describe(desks.kinds, desks.kit.names),
                            headers={"Cache-Control": "no-store"})

    async def rate(request: Request) -> Response:
        desk = await run_in_threadpool(desks.get, request.path_params["sid"])
        data = await _json_body(request)
        key, liked = data.get("key"), data.get("liked")
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise HttpError(422, "'key' must be a loop key such as \"12\" or \"e3\"")
        if not isinstance(liked, bool):
            raise HttpError(422, "'liked' must be true or false")
        await run_in_threadpool(desk.rate, key, liked)
        return JSONResponse({"ok": True, **await run_in_threadpool(desk.state)})

    async def loop_file(request: Request) -> Response:
        desk = await run_in_threadpool(desks.get, request.path_params["sid"])
        name = request.path_params["name"]
        key, _, kind = name.partition(".")
        if not KEY_PATTERN.fullmatch(key) or kind not in MEDIA:
            raise HttpError(404, f"no file {name!r}")
        try:
            if kind == "wav" and request.query_params.get("download") is None:
                data, filename = await run_in_threadpool(desk.audio, key), None
            else:
                data, filename = await run_in_threadpool(desk.download, key, kind)
        except (KeyError, FileNotFoundError):
            raise HttpError(404, f"no file {name!r}") from None
        headers = {"Cache-Control": "no-store"}
        if filename is not None:
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return Response(data, media_type=MEDIA[kind], headers=headers)

    async def archive(request: Request) -> Response:
        sid = request.path_params["sid"]
        desk = await run_in_threadpool(desks.get, sid)
        if not isinstance(desk, Study):
            raise HttpError(404, "archives are for study participants")
        fd, name = tempfile.mkstemp(prefix=f"ddjax-study-{sid}-", suffix=".zip")
        os.close(fd)
        try:
            await run_in_threadpool(desk.archive, pathlib.Path(name))
        except BaseException:
            os.unlink(name)
            raise
        return FileResponse(name, media_type="application/zip", filename=f"study-{sid}.zip",
                            background=BackgroundTask(os.unlink, name))

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", guarded(index)),
        Route("/study/{sid}", guarded(index)),
        Route("/static/{name}", guarded(static)),
        Route("/favicon.ico", favicon),
        Route("/api/config", guarded(app_config)),
        Route("/api/participants", guarded(join), methods=["POST"]),
        Route("/api/s/{sid}/state", guarded(state)),
        Route("/api/s/{sid}/current", guarded(current)),
        Route("/api/s/{sid}/rate", guarded(rate), methods=["POST"]),
        Route("/api/s/{sid}/loops/{name}", guarded(loop_file)),
        Route("/api/s/{sid}/archive.zip", guarded(archive)),
    ]

    async def not_found(request: Request, exc) -> Response:
        return _error(exc.status_code, exc.detail or "not found")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def open_desks(config: ServeConfig) -> Desks:
    """The desks to serve: one session alone, or a study's participants (opened lazily)."""
    if config.study:
        if config.kit_dir is None:
            raise DdjaxError("a study needs --kit")
        render, loops = config.pipeline.render, config.pipeline.loops
        kit = load_kit(config.kit_dir, render.bar_samples, sr=render.sr,
                       min_samples=loops.n_tracks)
        config.directory.mkdir(parents=True, exist_ok=True)
        return Desks(config, kit)
    session = Session.open(config.directory, config.kit_dir, train=config.train,
                           config=config.session, pipeline=config.pipeline)
    return Desks(config, session.kit, session)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, or a DdjaxError that says why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        raise DdjaxError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def serve(config: ServeConfig, host: str, port: int, *, allow_remote: bool = False) -> None:
    """Runs the server until interrupted; closing finishes every session's training."""
    import uvicorn
    if not is_loopback(host):
        if not allow_remote:
            raise DdjaxError(f"--host {host} lets other machines rate and download; pass"
                             " --allow-remote to do that on purpose")
        print(f"ddjax serve: warning: listening on {host}: anyone who can reach this machine"
              " can rate and download, with no login", file=sys.stderr)
    sock = listen(host, port)
    try:
        desks = open_desks(config)
    except BaseException:
        sock.close()
        raise
    if not config.study:
        ratings = desks.get(MAIN).session.n_ratings
        print(f"ddjax serve: session {config.directory}: {ratings} ratings so far"
              + (", resumed" if ratings else ""), flush=True)
    app = create_app(desks)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5))
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"ddjax serve: {'study' if config.study else 'rating'} page at"
          f" http://{shown}:{bound_port}/ (Ctrl-C stops)", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            server.run(sockets=[sock])
    finally:
        desks.close()
