"""``ddjax serve --study``'s researcher routes: ``/researcher``, the page, and
``/api/researcher``, every participant's progress as ``researcher.overview`` reads it from
their folders (the API is listed in ``ddjax.web.server``, whose ``create_app`` adds these
routes). A request gets past ``researcher_only`` only from this machine (``is_loopback``)
and with the token ``serve`` printed; anything else is refused with 403 before a folder is
read, and rating alone (no token) answers 404.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from collections.abc import Callable
from importlib import resources

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ddjax.web.http_errors import HttpError
from ddjax.web.registry import PARTICIPANTS_DIR
from ddjax.web.researcher import overview


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def researcher_routes(config, token: str | None, guarded: Callable) -> list[Route]:
    """The routes, over the server's ``config``, the researcher's ``token`` (None when
    rating alone) and ``guarded`` (the server's error handling)."""

    def researcher_only(request: Request) -> None:
        """Refuses all but this machine with the token ``serve`` printed."""
        if token is None:
            raise HttpError(404, "not a study: the researcher page is for --study")
        if request.client is None or not is_loopback(request.client.host):
            raise HttpError(403, "the researcher page answers only on this machine")
        given = request.headers.get("x-ddjax-token") or request.query_params.get("token", "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HttpError(403, "the researcher page needs the token that ddjax serve"
                                 " printed in its terminal")

    async def researcher_page(request: Request) -> Response:
        researcher_only(request)
        text = resources.files("ddjax.web").joinpath("researcher.html").read_text()
        return Response(text, media_type="text/html", headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def researcher_api(request: Request) -> Response:
        researcher_only(request)
        data = await run_in_threadpool(overview, config.directory / PARTICIPANTS_DIR,
                                       datetime.datetime.now(datetime.UTC))
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    return [
        Route("/researcher", guarded(researcher_page)),
        Route("/api/researcher", guarded(researcher_api)),
    ]
