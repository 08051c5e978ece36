"""Critic files: one critic (``save_critic``, ``load_critic``) or an ensemble of them
(``load_ensemble``), versioned, written atomically and checked field by field on reading.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ddjax.core.critic import KINDS, CriticConfig, HeadConfig, init_critic, kind_of
from ddjax.core.ensemble import stack_critics
from ddjax.core.pipeline import Pipeline
from ddjax.errors import DdjaxError
from ddjax.io.files import atomic_write_bytes

FILE_FORMAT = "ddjax-critic"
FILE_VERSION = 1
CRITIC_SUFFIX = ".critic"


class Ensemble(NamedTuple):
    """K critics of one architecture.

    Attributes:
      variables: the critics' variables stacked along a new leading axis: every leaf is
        ``[K, ...]`` (the shape of one critic's leaf behind it).
      config: the architecture they share.
      names: K names (file stems, made unique), in stacking order.
      paths: K files they came from (empty strings for critics made in memory).
    """

    variables: dict
    config: CriticConfig
    names: tuple[str, ...]
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


AUDIO_DEFAULTS = {"sr": 44100, "bar_samples": 88200}  # what files without these fields mean


def save_critic(path: str | os.PathLike, variables: dict, config: CriticConfig | HeadConfig, *,
                sr: int = AUDIO_DEFAULTS["sr"],
                bar_samples: int = AUDIO_DEFAULTS["bar_samples"]) -> None:
    """Writes the critic (all its variables) to one versioned file, atomically.

    ``sr`` (Hz) and ``bar_samples`` record the audio the critic was trained to hear, so
    that a pipeline with another sample rate or tempo refuses it. The bytes depend only on
    the arguments.
    """
    payload = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "kind": kind_of(config),
        "config": json.dumps(dataclasses.asdict(config)),
        "audio": {"sr": int(sr), "bar_samples": int(bar_samples)},
        "variables": serialization.to_state_dict(jax.device_get(variables)),
    }
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))


def check_critic_config(path: str | os.PathLike, config: CriticConfig | HeadConfig,
                        pipeline: Pipeline,
                        audio: dict | None = None) -> None:
    """Checks, field by field, that the critic in ``path`` hears what ``pipeline`` feeds it.

    Args:
      path: the critic file, for the message.
      config: its architecture, as the file records it.
      pipeline: an ``pipeline.Pipeline`` (its ``render`` and ``features`` are read).
      audio: the file's ``{"sr", "bar_samples"}``; missing fields mean ``AUDIO_DEFAULTS``.

    Raises:
      DdjaxError: one line naming the file, the first field that differs and both values.
    """
    audio = {**AUDIO_DEFAULTS, **(audio or {})}
    render, features = pipeline.render, pipeline.features
    checks = (
        ("sr", audio["sr"], render.sr, "Hz"),
        ("bar_samples", audio["bar_samples"], render.bar_samples,
         f"samples a bar, at {render.bpm:g} BPM"),
        ("n_mfcc", config.n_mfcc, features.n_mfcc, "MFCC coefficients"),
        ("n_frames", config.n_frames, features.n_frames(render.bar_samples),
         "MFCC frames a bar"),
    )
    for field, in_file, here, unit in checks:
        if in_file != here:
            raise DdjaxError(f"critic {path} does not fit this pipeline: {field} is {in_file}"
                             f" in the file but {here} here ({unit}); use a critic trained"
                             " with these settings")


def _architecture_mismatch(config: CriticConfig, template: dict, restored: dict) -> str | None:
    """The first architecture field the file's parameters contradict, as words."""
    flat_want = {jax.tree_util.keystr(k): v for k, v in
                 jax.tree_util.tree_flatten_with_path(template)[0]}
    flat_got = {jax.tree_util.keystr(k): v for k, v in
                jax.tree_util.tree_flatten_with_path(restored)[0]}
    def order(key):  # kernels in data-flow order first: every other shape follows them
        return ("kernel" not in key, "Dense" in key, key)

    for key in sorted(flat_want, key=order):
        want = flat_want[key]
        got = tuple(np.shape(flat_got[key]))
        want = tuple(want.shape)
        if got == want:
            continue
        if "StridedConv" in key and "kernel" in key:
            layer = int(key.split("StridedConv_")[1].split("'")[0])
            if got[:2] != want[:2] and layer < config.n_strided:
                return (f"kernel is {list(config.kernel)} in its configuration but"
                        f" {list(got[:2])} in its parameters")
            field = "channels" if layer < config.n_strided else "bottleneck_channels"
            return (f"{field} is {want[3]} in its configuration but"
                    f" {got[3] if len(got) == 4 else got} in its parameters")
        if "Dense_0" in key and "kernel" in key:
            if len(got) == 2 and got[1] != want[1]:
                return f"hidden is {want[1]} in its configuration but {got[1]} in its parameters"
            return (f"its dense layer takes {got[0] if got else got} inputs but n_mfcc="
                    f"{config.n_mfcc}, n_frames={config.n_frames}, kernel={list(config.kernel)}"
                    f" and stride={list(config.stride)} give {want[0]}")
        return f"{key} has shape {got} in its parameters, not {want}"
    return None


def load_critic(path: str | os.PathLike,
                pipeline: Pipeline | None = None) -> tuple[dict, CriticConfig | HeadConfig]:
    """Reads a file written by ``save_critic``.

    Args:
      path: the critic file.
      pipeline: the ``pipeline.Pipeline`` that will use it, checked by
        ``check_critic_config`` before anything is built; None skips that check.

    Raises:
      DdjaxError: the file is missing, not a ddjax critic, of another version, its
        parameters do not fit the architecture it names, or it does not fit ``pipeline``.
    """
    try:
        with open(path, "rb") as f:
            payload = serialization.msgpack_restore(f.read())
    except IsADirectoryError:
        raise DdjaxError(f"critic file {path} is a folder; pass a .critic file") from None
    except OSError as err:
        raise DdjaxError(f"cannot read critic file {path}: {err.strerror}") from None
    except Exception:  # msgpack raises many types on garbage
        raise DdjaxError(f"{path} is not a ddjax critic file (unreadable)") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise DdjaxError(f"{path} is not a ddjax critic file")
    if payload.get("version") != FILE_VERSION:
        raise DdjaxError(f"{path} is a version {payload.get('version')} critic file; this"
                         f" ddjax reads version {FILE_VERSION}")
    kind = payload.get("kind", "cnn")  # files before the head have no kind
    if kind not in KINDS:
        raise DdjaxError(f"{path} holds a critic of unknown kind {kind!r}")
    try:
        config = KINDS[kind].config(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in json.loads(payload["config"]).items()})
        audio = payload.get("audio") or {}
        if not isinstance(audio, dict):
            raise TypeError("audio")
    except (TypeError, ValueError, KeyError, AttributeError):  # a list, say, not an object
        raise DdjaxError(f"{path} has an unknown critic configuration") from None
    if pipeline is not None:
        check_critic_config(path, config, pipeline, audio)
    try:
        template = jax.eval_shape(lambda: init_critic(jax.random.key(0), config))
    except Exception:  # flax/jax raise many types on an impossible architecture
        raise DdjaxError(f"{path} has an impossible critic configuration ({config})") from None
    variables = payload.get("variables")
    if not isinstance(variables, dict):
        raise DdjaxError(f"{path} holds no critic parameters (its 'variables' are"
                         f" {'missing' if variables is None else type(variables).__name__})")
    try:
        restored = serialization.from_state_dict(template, variables)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DdjaxError(f"{path} does not match the critic architecture: n_strided is"
                         f" {config.n_strided} in its configuration but its parameters have"
                         f" other layers ({str(err).splitlines()[0]})") from None
    mismatch = _architecture_mismatch(config, template, restored)
    if mismatch:
        raise DdjaxError(f"{path} does not match the critic architecture: {mismatch}")
    if not all(np.isfinite(np.asarray(leaf)).all()
               for leaf in jax.tree_util.tree_leaves(restored)
               if np.issubdtype(np.asarray(leaf).dtype, np.floating)):
        raise DdjaxError(f"{path} has parameters that are not finite (NaN or inf): a"
                         " training run that diverged; use an earlier critic")
    return jax.tree_util.tree_map(jnp.asarray, restored), config


def critic_files(paths: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
    """Expands the ``--critics`` arguments: files as given, folders to their ``*.critic``
    files (sorted, not recursive), in argument order.

    Raises:
      DdjaxError: a folder holds no critic file, or a path does not exist.
    """
    files: list[pathlib.Path] = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.suffix == CRITIC_SUFFIX and p.is_file()
                           and not p.name.startswith("."))
            if not found:
                raise DdjaxError(f"critic folder {path} holds no *{CRITIC_SUFFIX} file; pass"
                                 " critic files or a folder of them")
            files.extend(found)
        else:
            files.append(path)  # load_critic names it if it is missing or unreadable
    return files


def _unique_names(paths: Sequence[pathlib.Path]) -> tuple[str, ...]:
    stems = [p.stem for p in paths]
    return tuple(s if stems.count(s) == 1 else f"{s}#{k}" for k, s in enumerate(stems))


def load_ensemble(paths: Sequence[str | os.PathLike],
                  pipeline: Pipeline | None = None) -> Ensemble:
    """Loads and stacks critic files (or folders of them).

    ``pipeline``: the ``pipeline.Pipeline`` that will use them; each file is checked against
    it (``critic.check_critic_config``). None skips that check.

    Raises:
      DdjaxError: naming the file, when one is missing, corrupt, of another version,
        does not fit its architecture, or has another architecture than the first.
    """
    files = critic_files(paths)
    loaded, config = [], None
    for path in files:
        variables, this_config = load_critic(path, pipeline)
        if config is None:
            config = this_config
        elif type(this_config) is not type(config):
            raise DdjaxError(f"critic {path} is a {kind_of(this_config)} critic and"
                             f" {files[0]} a {kind_of(config)} one: an ensemble stacks"
                             " critics of one kind; pass each kind's critics on their own")
        elif this_config != config:
            diff = ", ".join(f"{k}={getattr(this_config, k)} (not {getattr(config, k)})"
                             for k in config.__dataclass_fields__
                             if getattr(this_config, k) != getattr(config, k))
            raise DdjaxError(f"critic {path} has another architecture than {files[0]}: {diff};"
                             " an ensemble needs critics of one architecture")
        loaded.append(variables)
    if config is None:
        raise DdjaxError("no critic given; pass --critic FILE_OR_DIR")
    return Ensemble(stack_critics(loaded), config, _unique_names(files),
                    tuple(str(p) for p in files))


