"""Limits on every input, checked before anything is compiled.

Sizes a user types (a loop file's grid, a tempo, a port, a number of chains) are bounded
here, so that a typo fails in a second with one line instead of minutes later with an
allocation error.

- A loop has 1 to ``MAX_TRACKS`` tracks and 1 to ``MAX_STEPS`` 16th-note steps (four bars).
- Tempi are ``MIN_BPM`` to ``MAX_BPM``: a bar (16 steps) is 1.2 s to 4 s, and a sample is
  cut to one bar.
- Swing is ``MIN_SWING`` (straight) to ``MAX_SWING`` percent on the MPC/Ableton scale
  (``ddjax.core.groove``).
- A loudness target (``--loudness``) is ``MIN_LUFS`` to ``MAX_LUFS`` (``ddjax.io.loudness``).
- Ports are 0 to 65535 (0 lets the system pick a free one).
- Seeds are 0 to ``MAX_SEED`` (2**32 - 1): a JAX key holds 32 bits of its seed, so a
  larger or negative seed would silently repeat another's loops.
- ``--iters``, ``--ratings``, ``--eval``, ``--seeds`` and the like are at most
  ``MAX_COUNT`` (a million), checked before anything compiles.
- ``--chains`` (generate) and ``--batch`` (rescore) are capped by a memory estimate per
  chain or per loop against half of each device's memory (``memory_budget_bytes``; half
  of the host's RAM on CPU). Scoring a loop at once takes ``score_loop_bytes`` (3.7 MB at
  the defaults); on CPU, chains are scored a few at a time (``ddjax.core.batching``), so a
  chain costs only its state there. Each loop that ``generate`` writes in a round is
  rendered at once: ``listen_loop_bytes`` (5.8 MB at the defaults).
- ``--n`` (generate) is capped by the disk: every loop's WAV must fit in the free space of
  the output folder.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from ddjax.errors import DdjaxError

MAX_TRACKS = 8
MAX_STEPS = 64
MIN_BPM, MAX_BPM = 60.0, 200.0
MIN_SWING, MAX_SWING = 50.0, 75.0  # percent, MPC scale: 50 straight, 66.67 triplet
MIN_LUFS, MAX_LUFS = -40.0, -6.0  # integrated loudness targets, LUFS
MAX_PORT = 65535
MAX_SEED = 2**32 - 1  # JAX's keys hold 32 bits of a seed: 2**32 would give seed 0's loops
MAX_COUNT = 1_000_000  # iterations, ratings, loops per critic, steps: no run needs more
MEMORY_SHARE = 0.5  # of a device's memory, for one command's arrays
FLOAT_BYTES = 4
RENDER_COPIES = 3  # live float32 copies of a listening render while it is made
SCORE_COPIES = 2  # live copies of a scored loop's bar, STFT and first convolution
CHAIN_STATE_BYTES = 4096  # a chain's grid, samples, score, key and proposal, generously


def memory_budget_bytes() -> int:
    """Bytes one command may use on each device: ``MEMORY_SHARE`` of the default device's
    memory, or of the host's RAM where the device does not report it (CPU)."""
    import jax
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory_stats raise various types
        stats = {}
    total = stats.get("bytes_limit")
    if not total:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(MEMORY_SHARE * total)


def score_loop_bytes(pipeline) -> int:
    """Memory to score one loop with the critic at once, in bytes: its bar, its STFT
    (complex, ``n_fft // 2 + 1`` bins per frame) and the first convolution's output,
    ``SCORE_COPIES`` times. ``pipeline``: an ``pipeline.Pipeline``."""
    render, features, critic = pipeline.render, pipeline.features, pipeline.critic
    frames = features.n_frames(render.bar_samples)
    stft = 2 * (features.n_fft // 2 + 1) * frames
    conv = features.n_mels * frames  # the head: the inverse DCT's log-mel map
    if hasattr(critic, "kernel"):  # the CNN: its first convolution's output
        conv_h = (features.n_mfcc - critic.kernel[0]) // critic.stride[0] + 1
        conv_w = (frames - critic.kernel[1]) // critic.stride[1] + 1
        conv = max(conv_h, 1) * max(conv_w, 1) * critic.channels
    return SCORE_COPIES * FLOAT_BYTES * (render.bar_samples + stft + conv)


def listen_loop_bytes(render) -> int:
    """Memory of one loop's listening render while it is made, in bytes.
    ``render``: a ``render.RenderConfig``."""
    samples = (render.repeats + 1) * render.bar_samples + int(render.tail_seconds * render.sr)
    return RENDER_COPIES * FLOAT_BYTES * samples


def _size(n_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} bytes"


def check_count(flag: str, value: int, per_item_bytes: int, *, devices: int = 1,
                budget_bytes: int | None = None) -> None:
    """Raises a DdjaxError that gives the cap when ``value`` items of ``per_item_bytes``
    each, spread over ``devices``, do not fit in the memory budget of each device."""
    budget = memory_budget_bytes() if budget_bytes is None else budget_bytes
    cap = max(1, devices * (budget // per_item_bytes))
    if value > cap:
        raise DdjaxError(f"{flag} {value} does not fit in memory: at most {cap} fit"
                         f" ({_size(per_item_bytes)} each, {_size(budget)} for ddjax on each"
                         f" of {devices} device(s))")


def check_disk(flag: str, value: int, per_item_bytes: int, folder: pathlib.Path) -> None:
    """Raises a DdjaxError that gives the cap when ``value`` files of ``per_item_bytes``
    each do not fit in the free space of ``folder`` (or its nearest existing parent)."""
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return  # the write itself will say what is wrong
    cap = free // per_item_bytes
    if value > cap:
        raise DdjaxError(f"{flag} {value} does not fit on disk: at most {cap} loops fit in"
                         f" the {_size(free)} free under {where} ({_size(per_item_bytes)}"
                         " each)")
