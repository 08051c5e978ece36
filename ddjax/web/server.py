"""``ddjax serve``: rate loops in the browser, alone or as a study participant.

A Starlette app over the desks of ``ddjax.web.study``, served by uvicorn. The page is plain
HTML/JS/CSS from ``ddjax/web`` (no build step, nothing fetched from elsewhere), so it works
offline. ``create_app`` wires the routes every desk answers (a request's JSON is read by
``_json_body``, passed to its desk, and the desk's answer goes back as JSON or audio) and
adds those of ``ddjax.web.free_routes`` (rating alone only), ``ddjax.web.study_routes``
(a study's steps) and ``ddjax.web.researcher_routes`` (the researcher's page).

Every request that waits for JAX (the next loop, a rating, phase II) runs in a worker
thread, so the page never blocks the server. A study's participants each have a Session,
and all share one engine whose device work is batched (``ddjax.session.hub``); past
``--max-participants``, newcomers wait in line (``ddjax.web.admission``).

The page answers at once: the session opens in the background (``desks.Opening``), and
until it is open ``/api/status`` names the step under way and estimates the time left,
while every route under ``/api/s/`` answers 503 ``{"error": "starting: STEP",
"starting": true}``.

The API (``SID`` is ``main`` when rating alone, the participant's id in a study)::

    GET  /api/config                     mode and sizes
    GET  /api/status                     {"ready": true}, or the start's step, "done" of
                                         "steps", "elapsed_s", "estimate_s" (and "error");
                                         in a study, "participants": known, ready,
                                         rating, waiting, capacity
    POST /api/join                       {"id": optional}: join a study -> {"id"} (ids
                                         are lower-cased), or 202 {"queued", "ticket",
                                         "place", "estimate_s"} while the study is full
                                         (also as POST /api/participants, its old name)
    GET  /api/queue/TICKET               202 with the place in line, until 200 {"id"}
    GET  /api/s/SID/state                counts, like history, liked loops, result;
                                         rating alone, "styles" and the "style" drawn
    GET  /api/s/SID/current              the loop to rate now (waits while it is drawn)
    POST /api/s/SID/rate                 {"key": "12", "liked": true}; with "edit": {...}
                                         (as for audition), rates the loop as heard
    POST /api/s/SID/audition             {"key": "12", "grid": [[0, 1, ...], ...],
                                         "velocity", "mute", "solo", "bpm", "swing"}:
                                         the loop as edited, as WAV (``ddjax.web.edit``);
                                         headers X-Ddjax-Score (the critic's P(like) of
                                         the version heard, or "none") and
                                         X-Ddjax-Critic-Version (its ratings learned)
    POST /api/s/SID/undo                 {"key": "12"}: takes back the last rating, which
                                         must be loop 12's (a second undo is 409); its
                                         loop is current. In a study, within the phase
                                         under way only (``Study.undo``)
    POST /api/s/SID/skip                 {"key": "12"}: passes the current loop over
    POST /api/s/SID/more                 {"key": "7"}: a variation on rated loop 7, now
    POST /api/s/SID/style                {"style": "house"} or {"style": null} (the mix):
                                         the style of the loops drawn from now on (the
                                         state's "styles" lists them; 409 in a study)
    GET  /api/s/SID/liked.zip            every liked loop: MIDI, 1-bar WAV, JSON, README
    GET  /api/s/SID/loops/KEY.wav        the current loop's or a rated loop's audio
    GET  /api/s/SID/loops/KEY.(mid|json) a rated loop's MIDI or JSON (not in a study)
    GET  /api/s/SID/archive.zip          a participant's whole folder, audio as FLAC or
                                         none (--archive-audio)
    ... and the study's steps (``ddjax.web.study_routes``)
    GET  /researcher?token=T             the researcher's page; it and the next answer
    GET  /api/researcher                 only this machine (loopback) with the token
                                         ``serve`` prints (?token= or X-Ddjax-Token),
                                         else 403; every participant's progress from
                                         their folder (``researcher.overview``)

Refusals are JSON ``{"error": "..."}``: 404 for an unknown id or file, 409 for a stale or
duplicate rating, 400/413/422 for a malformed, oversized or ill-typed body (400 for an
unknown style).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import socket
import sys
import tempfile
import threading
from importlib import resources

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ddjax.errors import DdjaxError
from ddjax.web.admission import Ticket
from ddjax.web.consent import load_consent
from ddjax.web.desk import KEY_PATTERN, Desk
from ddjax.web.desks_protocol import RatingDesk
from ddjax.web.free_routes import edit_of, free_desk, free_routes, loop_key
from ddjax.web.http_errors import HttpError, Starting
from ddjax.web.memory import Trimmer, limit_malloc_arenas
from ddjax.web.registry import MAIN, Desks, Opening, ServeConfig, desks_kit, open_desks
from ddjax.web.researcher_routes import is_loopback, researcher_routes
from ddjax.web.study import Study
from ddjax.web.study_routes import study_routes

__all__ = ["Desks", "Opening", "ServeConfig", "create_app", "is_loopback", "listen",
           "open_desks", "serve"]
MAX_BODY_BYTES = 16384  # an edit of the largest loop (8 x 64 cells) fits
FAILURE_GRACE_S = 2.0  # a failed start stays on the page this long before the server exits
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
MEDIA = {"wav": "audio/wav", "bar": "audio/wav", "mid": "audio/midi",
         "json": "application/json"}


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
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise HttpError(400, "the request body is not JSON (or nested too deeply)") from None
    if not isinstance(data, dict):
        raise HttpError(422, "the request body must be a JSON object")
    return data


def create_app(desks: Desks | Opening, *, researcher_token: str | None = None) -> Starlette:
    """The web app over ``desks``, open or opening. In a study, ``/researcher`` answers
    loopback clients with ``researcher_token`` (a fresh one if None; the app's
    ``state.researcher_token``)."""
    opening = desks if isinstance(desks, Opening) else Opening.opened(desks)
    config = opening.config
    page = resources.files("ddjax.web").joinpath("index.html").read_text()
    consent = load_consent(config.consent) if config.study else None

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except Starting as err:
                return JSONResponse({"error": str(err), "starting": True}, status_code=503,
                                    headers={"Cache-Control": "no-store"})
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
            await desk_of(request)
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

    async def status(request: Request) -> Response:
        status = opening.status()
        if config.study and status.get("ready"):
            status["participants"] = await run_in_threadpool(opening.desks().status)
        return JSONResponse(status, headers={"Cache-Control": "no-store"})

    async def desk_of(request: Request) -> RatingDesk:
        """The request's desk (``Starting`` while the desks open)."""
        return await run_in_threadpool(opening.desks().get, request.path_params["sid"])

    async def join(request: Request) -> Response:
        if not config.study:
            raise HttpError(404, "not a study: start the server with --study")
        data = await _json_body(request)
        requested = data.get("id")
        if requested is not None and not isinstance(requested, str):
            raise HttpError(422, "'id' must be a string")
        desks = opening.desks()
        return _admission(desks, await run_in_threadpool(desks.join, requested or None))

    async def queue(request: Request) -> Response:
        if not config.study:
            raise HttpError(404, "not a study: start the server with --study")
        desks = opening.desks()
        return _admission(desks, await run_in_threadpool(desks.queue_place,
                                                         request.path_params["ticket"]))

    async def state(request: Request) -> Response:
        desk = await desk_of(request)
        return JSONResponse(await run_in_threadpool(desk.state))

    async def current(request: Request) -> Response:
        desk = await desk_of(request)
        item = await run_in_threadpool(desk.current)
        return JSONResponse(item.describe(opening.desks().kinds, opening.kit.names),
                            headers={"Cache-Control": "no-store"})

    async def rate(request: Request) -> Response:
        data = await _json_body(request)
        desk = await desk_of(request)
        if data.get("edit") is not None:
            desk = free_desk(desk)
        key, liked = data.get("key"), data.get("liked")
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise HttpError(422, "'key' must be a loop key such as \"12\" or \"e3\"")
        if not isinstance(liked, bool):
            raise HttpError(422, "'liked' must be true or false")
        if data.get("edit") is None:
            await run_in_threadpool(desk.rate, key, liked)
        else:
            await run_in_threadpool(desk.rate, key, liked, edit_of(desk, key, data["edit"]))
        return JSONResponse({"ok": True, **await run_in_threadpool(desk.state)})

    async def undo(request: Request) -> Response:
        desk = await desk_of(request)  # a study's undo is its own (``Study.undo``)
        if not isinstance(desk, (Desk, Study)):
            raise HttpError(404, "nothing to undo here")
        await run_in_threadpool(desk.undo, loop_key(await _json_body(request)))
        return JSONResponse({"ok": True, **await run_in_threadpool(desk.state)})

    async def loop_file(request: Request) -> Response:
        desk = await desk_of(request)
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
        desk = await desk_of(request)
        if not isinstance(desk, Study):
            raise HttpError(404, "archives are for study participants")
        fd, name = tempfile.mkstemp(prefix=f"ddjax-study-{sid}-", suffix=".zip")
        os.close(fd)
        try:
            await run_in_threadpool(desk.archive, pathlib.Path(name), config.archive_audio)
        except BaseException:
            os.unlink(name)
            raise
        return FileResponse(name, media_type="application/zip", filename=f"study-{sid}.zip",
                            background=BackgroundTask(os.unlink, name))

    token = (researcher_token or secrets.token_urlsafe(24)) if config.study else None

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", guarded(index)),
        Route("/study/{sid}", guarded(index)),
        Route("/static/{name}", guarded(static)),
        Route("/favicon.ico", favicon),
        Route("/api/config", guarded(app_config)),
        Route("/api/status", status),
        Route("/api/join", guarded(join), methods=["POST"]),
        Route("/api/participants", guarded(join), methods=["POST"]),  # its old name
        Route("/api/queue/{ticket}", guarded(queue)),
        Route("/api/s/{sid}/state", guarded(state)),
        Route("/api/s/{sid}/current", guarded(current)),
        Route("/api/s/{sid}/rate", guarded(rate), methods=["POST"]),
        Route("/api/s/{sid}/undo", guarded(undo), methods=["POST"]),
        *free_routes(config, desk_of, guarded, _json_body),
        Route("/api/s/{sid}/loops/{name}", guarded(loop_file)),
        Route("/api/s/{sid}/archive.zip", guarded(archive)),
        *study_routes(config, consent, lambda: opening.desks(), desk_of, guarded, _json_body),
        *researcher_routes(config, token, guarded),
    ]

    async def not_found(request: Request, exc) -> Response:
        return _error(exc.status_code, exc.detail or "not found")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.researcher_token = token
    return app


def _admission(desks: Desks, admitted: str | Ticket) -> JSONResponse:
    """A participant let in (200, their id and page), or their place in line (202)."""
    if isinstance(admitted, str):
        return JSONResponse({"id": admitted, "url": f"/study/{admitted}"})
    return JSONResponse({"queued": True, "ticket": admitted.number, "place": admitted.place,
                         "estimate_s": desks.wait_estimate(admitted.place)}, status_code=202,
                        headers={"Cache-Control": "no-store"})


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
    """Runs the server until interrupted; closing finishes every session's training.

    The port and the kit are checked before the server listens; the session opens while
    it answers. A session that fails to open is shown on the page, then raised here."""
    import uvicorn
    if not is_loopback(host):
        if not allow_remote:
            raise DdjaxError(f"--host {host} lets other machines rate and download; pass"
                             " --allow-remote to do that on purpose")
        print(f"ddjax serve: warning: listening on {host}: anyone who can reach this machine"
              " can rate and download, with no login", file=sys.stderr)
    load_consent(config.consent)  # a bad consent file stops the server before it listens
    trimmer = None
    if config.study:  # a thread per participant: keep their heaps small
        limit_malloc_arenas()
        trimmer = Trimmer().start()
    sock = listen(host, port)
    try:
        kit = desks_kit(config)
    except BaseException:
        sock.close()
        raise

    def ready(desks: Desks) -> None:
        if not config.study:
            ratings = desks.get(MAIN).session.n_ratings
            print(f"ddjax serve: session {config.directory}: {ratings} ratings so far"
                  + (", resumed" if ratings else ""), flush=True)

    def failed(error: BaseException) -> None:
        threading.Timer(FAILURE_GRACE_S, setattr, (server, "should_exit", True)).start()

    opening = Opening(config, kit, on_ready=ready, on_failure=failed)
    app = create_app(opening, researcher_token=secrets.token_urlsafe(24))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=5))
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"ddjax serve: {'study' if config.study else 'rating'} page at"
          f" http://{shown}:{bound_port}/ (Ctrl-C stops)", flush=True)
    if config.study:
        print(f"ddjax serve: researcher page at http://{shown}:{bound_port}/researcher?token="
              f"{app.state.researcher_token}", flush=True)
    opening.start()
    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            server.run(sockets=[sock])
    finally:
        opening.close()
        if trimmer is not None:
            trimmer.stop()
    if opening.error is not None:
        raise opening.error
