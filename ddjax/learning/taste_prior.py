"""The taste prior file: what the critic believes about a taste before any rating.

This module holds the prior file only (``Prior``, ``load_prior``, ``prior_record``) and
how ``scripts/make_prior.py`` learns one (``empirical_bayes_scale``); which learner a
``--pretrained`` value picks is ``ddjax.learning.registry``'s.

The default learner (``bayes_head.bayes_head``) starts from a Gaussian prior over its head's
weights, one mean and one standard deviation per descriptor (and the bias). The prior
is learned over many simulated tastes on several kits by ``scripts/make_prior.py``
(empirical Bayes: the spread of the weights that fit each taste), and ships in the
package as ``ddjax/pretrained/taste-prior.json``. ``--pretrained none`` gives the
paper's from-scratch CNN instead; ``--pretrained FILE`` reads another prior file.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import os
import pathlib

import numpy as np

from ddjax.core.head import HeadConfig
from ddjax.errors import DdjaxError

PRIOR_FORMAT = "ddjax-taste-prior"
PRIOR_VERSION = 1


def default_prior_path() -> pathlib.Path:
    """The prior shipped in the package."""
    return pathlib.Path(str(importlib.resources.files("ddjax") / "pretrained"
                            / "taste-prior.json"))


@dataclasses.dataclass(frozen=True)
class Prior:
    """A prior over the head's weights.

    Attributes:
      head: the head it is for.
      mean, scale: the Gaussian prior's mean and standard deviation per weight, bias
        last (tuples of d + 1 floats, so the prior is hashable and jit-static).
      source: where it was read from.
    """

    head: HeadConfig
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    source: str = ""


def empirical_bayes_scale(weights: np.ndarray, groups: np.ndarray,
                          pool: float = 0.5) -> np.ndarray:
    """Per-weight prior standard deviations from weights fitted to many tastes.

    The type-II maximum-likelihood variance of a zero-mean Gaussian over each weight is
    its mean square over the tastes; with few tastes that is noisy, so each weight's is
    pooled toward the mean square of its group (a hierarchical prior's shrinkage).

    Args:
      weights: float[tastes, d], one fitted weight vector per taste.
      groups: int[d], each weight's group.
      pool: 0 keeps each weight's own mean square, 1 its group's.

    Returns:
      float[d], the square root of ``(1 - pool) * own + pool * group``.
    """
    own = np.mean(np.square(np.asarray(weights, np.float64)), axis=0)
    group = np.array([own[groups == g].mean() for g in groups])
    return np.sqrt((1.0 - pool) * own + pool * group)


def prior_record(head: HeadConfig, mean: np.ndarray, scale: np.ndarray, **about) -> dict:
    """The JSON object of a prior file."""
    return {"format": PRIOR_FORMAT, "version": PRIOR_VERSION,
            "head": dataclasses.asdict(head),
            "mean": [round(float(v), 6) for v in mean],
            "scale": [round(float(v), 6) for v in scale], **about}


@functools.lru_cache(maxsize=8)
def load_prior(path: str | os.PathLike | None = None) -> Prior:
    """Reads a prior file (default: the packaged one).

    Raises:
      DdjaxError: the file is missing, corrupt, of another version, or inconsistent.
    """
    path = default_prior_path() if path is None else pathlib.Path(path)
    try:
        record = json.loads(path.read_text())
    except OSError as err:
        raise DdjaxError(f"cannot read the pretrained prior {path}: {err.strerror}") from None
    except ValueError:
        raise DdjaxError(f"{path} is not a ddjax prior file (not JSON); reinstall ddjax or"
                         " pass --pretrained none") from None
    if not isinstance(record, dict) or record.get("format") != PRIOR_FORMAT:
        raise DdjaxError(f"{path} is not a ddjax prior file")
    if record.get("version") != PRIOR_VERSION:
        raise DdjaxError(f"{path} is a version {record.get('version')} prior file; this ddjax"
                         f" reads version {PRIOR_VERSION}")
    try:
        head = HeadConfig(**record["head"])
        mean = np.asarray(record["mean"], np.float64)
        scale = np.asarray(record["scale"], np.float64)
    except (TypeError, ValueError, KeyError):
        raise DdjaxError(f"{path} is a damaged prior file (head, mean or scale)") from None
    d = head.size + 1
    if mean.shape != (d,) or scale.shape != (d,) or not (
            np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise DdjaxError(f"{path} is a damaged prior file: it needs {d} finite means and"
                         f" {d} positive scales")
    return Prior(head, tuple(mean.tolist()), tuple(scale.tolist()), str(path))
