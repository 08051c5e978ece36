"""``ddjax serve --study``'s routes for the steps around the protocol: the consent page,
the headphone check, the practice loop and the duration estimate. ``server.create_app``
adds them; they answer as its other routes do (JSON, ``{"error": ...}`` with a 4xx)::

    GET  /api/consent                    {"html", "file", "digest"} (404: no consent page)
    GET  /api/estimate                   measured times: "participants",
                                         "seconds_per_rating", "draw_seconds" (None
                                         before any), "phase1", "phase2" (ratings)
    POST /api/s/SID/consent              {"agree": true}: logs the participant's "I agree"
    GET  /api/s/SID/headphones/volume.wav  the tone to set the volume by
    GET  /api/s/SID/headphones/N.wav     trial N (1 to 6) of the attempt under way
    POST /api/s/SID/headphones           {"trial": N, "answer": 1 | 2 | 3}: the tone
                                         heard as quietest -> the state
    GET  /api/s/SID/practice.wav         the practice loop's audio
    POST /api/s/SID/practice             {"liked": true}: the practice rating (never
                                         counted) -> the state
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ddjax.web import headphones
from ddjax.web.consent import Consent
from ddjax.web.http_errors import HttpError
from ddjax.web.study import Study
from ddjax.web.study_steps import PRACTICE_KEY, durations

WAV = {"media_type": "audio/wav", "headers": {"Cache-Control": "no-store"}}


def study_routes(config, consent: Consent | None, desks: Callable,
                 desk_of: Callable[[Request], Awaitable], guarded: Callable,
                 json_body: Callable[[Request], Awaitable[dict]]) -> list[Route]:
    """The routes, over the server's ``config``, its ``consent`` page, ``desks()`` (the
    open desks), ``desk_of`` (a request's desk), ``guarded`` (its error handling) and
    ``json_body`` (a request's JSON object)."""

    async def study_of(request: Request) -> Study:
        desk = await desk_of(request)
        if not isinstance(desk, Study):
            raise HttpError(404, "not a study participant")
        return desk

    async def state_of(study: Study) -> Response:
        return JSONResponse({"ok": True, **await run_in_threadpool(study.state)})

    async def consent_page(request: Request) -> Response:
        if consent is None:
            raise HttpError(404, "this study has no consent page")
        return JSONResponse({"html": consent.html, "file": consent.name,
                             "digest": consent.digest})

    async def estimate(request: Request) -> Response:
        if not config.study:
            raise HttpError(404, "not a study")
        measured = await run_in_threadpool(durations, desks().root)
        e = config.experiment
        return JSONResponse({**measured, "phase1": e.n_ratings, "phase2": 2 * e.n_eval},
                            headers={"Cache-Control": "no-store"})

    async def agree(request: Request) -> Response:
        study = await study_of(request)
        if (await json_body(request)).get("agree") is not True:
            raise HttpError(422, "'agree' must be true: the participant pressed \"I agree\"")
        await run_in_threadpool(study.agree)
        return await state_of(study)

    async def headphone_audio(request: Request) -> Response:
        study = await study_of(request)
        name = request.path_params["name"]
        if name == "volume.wav":
            return Response(headphones.wav_bytes(headphones.volume_tone()), **WAV)
        number = name.removesuffix(".wav")
        if not name.endswith(".wav") or not number.isdigit() or len(number) > 2:
            raise HttpError(404, f"no file {name!r}")
        try:
            trial = study.steps.trial(int(number) - 1)
        except KeyError:
            raise HttpError(404, f"no headphone trial {number} now") from None
        return Response(await run_in_threadpool(headphones.wav_bytes, trial.audio), **WAV)

    async def answer(request: Request) -> Response:
        study = await study_of(request)
        data = await json_body(request)
        trial, choice = data.get("trial"), data.get("answer")
        if not isinstance(trial, int) or isinstance(trial, bool) or not (
                1 <= trial <= headphones.N_TRIALS):
            raise HttpError(422, f"'trial' must be 1 to {headphones.N_TRIALS}")
        if choice not in (1, 2, 3) or isinstance(choice, bool):
            raise HttpError(422, "'answer' must be 1, 2 or 3: the tone heard as quietest")
        await run_in_threadpool(study.answer_headphones, trial - 1, choice)
        return await state_of(study)

    async def practice_audio(request: Request) -> Response:
        study = await study_of(request)
        if await run_in_threadpool(lambda: study.phase) != "practice":
            raise HttpError(404, "no practice loop now")
        return Response(await run_in_threadpool(study.practice_audio), **WAV)

    async def practice(request: Request) -> Response:
        study = await study_of(request)
        liked = (await json_body(request)).get("liked")
        if not isinstance(liked, bool):
            raise HttpError(422, "'liked' must be true or false")
        await run_in_threadpool(study.rate, PRACTICE_KEY, liked)
        return await state_of(study)

    return [
        Route("/api/consent", guarded(consent_page)),
        Route("/api/estimate", guarded(estimate)),
        Route("/api/s/{sid}/consent", guarded(agree), methods=["POST"]),
        Route("/api/s/{sid}/headphones/{name}", guarded(headphone_audio)),
        Route("/api/s/{sid}/headphones", guarded(answer), methods=["POST"]),
        Route("/api/s/{sid}/practice.wav", guarded(practice_audio)),
        Route("/api/s/{sid}/practice", guarded(practice), methods=["POST"]),
    ]
