"""``ddjax serve``'s routes that only rating alone answers, on the free ``Desk``: hear a
loop as edited, skip it, ask for a variation, pick the style, download the liked loops
(the API is listed in ``ddjax.web.server``, whose ``create_app`` adds these routes). A
request's JSON is checked here (``loop_key``, ``edit_of``) before it reaches the desk,
whose answer goes back as its state, WAV or zip; a study participant's desk is refused
with 409 (``free_desk``), since a study's ratings follow its protocol. ``rate`` and
``undo``, which a study answers too, use the same checks from ``server``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ddjax.errors import DdjaxError
from ddjax.web.desk import KEY_PATTERN, Desk, Refused
from ddjax.web.desks_protocol import RatingDesk
from ddjax.web.edit import Edit, EditError
from ddjax.web.edit import parse as parse_edit
from ddjax.web.http_errors import HttpError


def free_desk(desk: RatingDesk) -> Desk:
    """``desk``, if it rates alone; a study's desk is refused (409)."""
    if not isinstance(desk, Desk):
        raise HttpError(409, "a study's ratings follow its protocol: no undo, skip, edits or"
                             " variations")
    return desk


def loop_key(data: dict) -> str:
    """The loop key a request's JSON names as ``"key"`` (422 if it names none)."""
    key = data.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise HttpError(422, "'key' must be a loop key such as \"12\"")
    return key


def edit_of(desk: Desk, key: str, body) -> Edit:
    """The edit ``body`` describes, for loop ``key``'s shape (404 for no such loop)."""
    if not isinstance(body, dict):
        raise HttpError(422, "'edit' must be an object with the loop's 'grid'")
    try:
        return parse_edit(body, desk.shape(key))
    except KeyError:
        raise HttpError(404, f"no loop {key} to edit") from None
    except EditError as err:
        raise HttpError(422, str(err)) from None


def free_routes(config, desk_of: Callable[[Request], Awaitable[RatingDesk]],
                guarded: Callable,
                json_body: Callable[[Request], Awaitable[dict]]) -> list[Route]:
    """The routes, over the server's ``config``, ``desk_of`` (a request's desk),
    ``guarded`` (its error handling) and ``json_body`` (a request's JSON object)."""

    async def state_of(desk: Desk) -> Response:
        return JSONResponse({"ok": True, **await run_in_threadpool(desk.state)})

    async def audition(request: Request) -> Response:
        desk = free_desk(await desk_of(request))
        data = await json_body(request)
        key = loop_key(data)
        edit = edit_of(desk, key, data)
        try:
            audio, score, version = await run_in_threadpool(desk.audition, key, edit)
        except KeyError:
            raise HttpError(404, f"no loop {key} to edit") from None
        return Response(audio, media_type="audio/wav", headers={
            "Cache-Control": "no-store", "X-Ddjax-Critic-Version": str(version),
            "X-Ddjax-Score": "none" if score is None else f"{score:.6f}"})

    async def skip(request: Request) -> Response:
        desk = free_desk(await desk_of(request))
        await run_in_threadpool(desk.skip, loop_key(await json_body(request)))
        return await state_of(desk)

    async def more(request: Request) -> Response:
        desk = free_desk(await desk_of(request))
        key = loop_key(await json_body(request))
        try:
            await run_in_threadpool(desk.more_like, key)
        except KeyError:
            raise HttpError(404, f"no rated loop {key}") from None
        return await state_of(desk)

    async def set_style(request: Request) -> Response:
        if config.study:
            raise HttpError(409, "a study keeps its protocol: its style is set when the"
                                 " server starts (--style)")
        desk = free_desk(await desk_of(request))
        data = await json_body(request)
        style = data.get("style", "")
        if style is not None and (not isinstance(style, str) or not style):
            raise HttpError(422, "'style' must be a style's name, or null for the mix of"
                                 " every style")
        try:
            await run_in_threadpool(desk.set_style, style)
        except Refused:
            raise
        except DdjaxError as err:  # no such style: the message lists them
            raise HttpError(400, str(err)) from None
        return await state_of(desk)

    async def liked_zip(request: Request) -> Response:
        desk = free_desk(await desk_of(request))
        data = await run_in_threadpool(desk.liked_zip)
        name = f"ddjax-liked-{config.directory.name}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

    return [
        Route("/api/s/{sid}/skip", guarded(skip), methods=["POST"]),
        Route("/api/s/{sid}/more", guarded(more), methods=["POST"]),
        Route("/api/s/{sid}/style", guarded(set_style), methods=["POST"]),
        Route("/api/s/{sid}/audition", guarded(audition), methods=["POST"]),
        Route("/api/s/{sid}/liked.zip", guarded(liked_zip)),
    ]
