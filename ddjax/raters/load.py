"""Raters from files: ``load_rater`` turns ``FILE.py:FUNCTION``, ``MODULE:FUNCTION`` or a
built-in user's name into a rater, a callable that takes a loop as the person meets it
(``ddjax.session.session_loop.SessionLoop``) and returns True (like), False, or None (skip).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
from typing import Any, Callable

from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.kit import Kit
from ddjax.raters import users as users_lib

__all__ = ["load_rater"]


def load_rater(spec: str, kit: Kit, seed: int = 0, pipeline: Pipeline = Pipeline()
               ) -> Callable[[Any], bool | None]:
    """A rater from ``FILE.py:FUNCTION``, ``MODULE:FUNCTION`` or a built-in user's name (a
    built-in user is calibrated on loops of ``pipeline``'s size and tempo)."""
    if spec in users_lib.BUILT_IN:
        return users_lib.make_user(spec, kit, seed=seed, render=pipeline.render,
                                   n_tracks=pipeline.loops.n_tracks)
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise DdjaxError(f"--rater {spec!r}: give FILE.py:FUNCTION, MODULE:FUNCTION or one of"
                         f" {', '.join(users_lib.BUILT_IN)}")
    try:
        if where.endswith(".py") or pathlib.Path(where).is_file():
            spec_obj = importlib.util.spec_from_file_location(pathlib.Path(where).stem, where)
            if spec_obj is None or spec_obj.loader is None:
                raise ImportError(f"cannot load {where}")
            module = importlib.util.module_from_spec(spec_obj)
            spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except (ImportError, OSError, SyntaxError) as err:
        raise DdjaxError(f"--rater {spec!r}: cannot import {where}: {err}") from None
    rater = getattr(module, name, None)
    if not callable(rater):
        raise DdjaxError(f"--rater {spec!r}: {where} has no callable {name!r}")
    return rater
