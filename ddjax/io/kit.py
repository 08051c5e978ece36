"""Kit stage: a folder of one-shot audio files -> one padded array (on the device).

This is the only stage that reads audio files. Everything after it works on the
``Kit`` it returns, so a kit is loaded once and reused by every render.

Rules, in order, for each file with an audio extension under the folder:
- mixed to mono by averaging channels (stereo, 24-bit, float and any soundfile format);
- resampled to ``sr`` with libsoxr's high-quality band-limited resampler;
- truncated to at most one bar, with a 10 ms linear fade-out where it was cut, so that
  a hit never overlaps its own repeat one bar later;
- skipped with one ``KitWarning`` naming the file when it is corrupt, empty, not audio,
  silent (peak below -100 dBFS) or holds NaN/inf;
- scaled down to peak at exactly full scale (1.0), with one ``KitWarning`` naming the file
  and its peak, when its mono mix peaks above full scale (a float file can): a loop's
  level then never depends on one hot sample.

Kick detection (for the four-on-the-floor constraint) looks at the audio, not the name:
a sample is a kick when at least ``KICK_MIN_LOW_ENERGY`` of the energy of its first
250 ms lies below ``KICK_LOW_HZ`` and its short-time RMS envelope (10 ms frames) has
fallen 20 dB below its peak within ``KICK_MAX_DECAY_SECONDS``. On the paper's collection
this finds 75 of the 82 files named as kicks, plus 10 others (six of them low toms).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import pathlib
import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from ddjax.errors import DdjaxError
from ddjax.io.kinds import sample_kinds, sample_notes

if TYPE_CHECKING:
    import jax

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".caf",
     ".w64", ".rf64", ".au", ".snd"})
FADE_SECONDS = 0.010
SILENCE_PEAK = 1e-5
FULL_SCALE = 1.0
KICK_LOW_HZ = 150.0
KICK_MIN_LOW_ENERGY = 0.7
KICK_MAX_DECAY_SECONDS = 1.2
KICK_ANALYSIS_SECONDS = 0.25


class KitWarning(UserWarning):
    """A file in a kit folder was skipped or scaled down; the message names it and says why."""


def bundled_kit() -> pathlib.Path:
    """The folder of the kit that ships with ddjax (the default ``--kit``).

    An installed wheel or sdist holds it as package data, ``ddjax/samples``; an editable
    install (a checkout) reads the repository's ``samples/``, its one source.
    """
    packaged = importlib.resources.files("ddjax") / "samples"
    if isinstance(packaged, pathlib.Path) and packaged.is_dir():
        return packaged
    checkout = pathlib.Path(__file__).resolve().parents[2] / "samples"
    return checkout if checkout.is_dir() else pathlib.Path(str(packaged))


def _unpadded(audio: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return [row[:n].astype(np.float64) for row, n in zip(audio, lengths)]


def kit_monos(kit: Kit) -> list[np.ndarray]:
    """Every sample's audio as loaded, unpadded: float64[length] each."""
    return _unpadded(np.asarray(kit.audio), kit.lengths)


class Kit(NamedTuple):
    """A loaded kit.

    Attributes:
      audio: float32[n_samples, max_samples], zero-padded mono audio: a device array, or a
        NumPy one from ``load_kit(..., on_device=False)``.
      lengths: int[n_samples] true length of each sample, in samples.
      names: paths relative to ``root``, with forward slashes, sorted.
      is_kick: bool[n_samples], low and short from the audio (see the module docstring):
        the samples ``--four-on-floor`` may put on track 0.
      root: the folder the kit was loaded from.
      sr: sample rate, in Hz.
      kinds: each sample's kind (``ddjax.io.kinds``), None where it is unknown: what the
        loop prior's roles read.
      notes: each sample's General MIDI note, None where the kind is unknown.
    """

    audio: jax.Array | np.ndarray
    lengths: np.ndarray
    names: tuple[str, ...]
    is_kick: np.ndarray
    root: pathlib.Path
    sr: int
    kinds: tuple[str | None, ...] = ()
    notes: tuple[int | None, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of the sample ``name`` (relative path), or a DdjaxError."""
        try:
            return self.names.index(name)
        except ValueError:
            raise DdjaxError(
                f"sample {name!r} is not in the kit {self.root}; pass the kit it was made"
                " with via --kit") from None


@dataclasses.dataclass(frozen=True)
class _Skip(Exception):
    reason: str


def _read_mono(path: pathlib.Path, sr: int) -> np.ndarray:
    try:
        data, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise _Skip(f"not readable audio ({str(err).strip() or type(err).__name__})")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise _Skip("empty (no audio frames)")
    if not np.all(np.isfinite(data)):
        raise _Skip("contains NaN or infinite values")
    with np.errstate(over="ignore"):
        mono = data.mean(axis=1)
    if not np.all(np.isfinite(mono)):  # channels near float64's largest sum to infinity
        raise _Skip("not finite once its channels are mixed to mono (it peaks absurdly)")
    peak = float(np.max(np.abs(mono)))
    if peak > FULL_SCALE:
        warnings.warn(KitWarning(
            f"scaled {path} down by {20 * np.log10(peak):.1f} dB: it peaks at {peak:.3g},"
            f" above full scale ({FULL_SCALE:g})"), stacklevel=3)
        mono = mono / peak
    if file_sr != sr:
        mono = soxr.resample(mono, file_sr, sr, quality="HQ")
    if np.max(np.abs(mono)) < SILENCE_PEAK:
        raise _Skip("silent (peak below -100 dBFS)")
    return mono


def cut(audio: np.ndarray, max_samples: int, sr: int) -> np.ndarray:
    """``audio`` [..., samples] cut to at most ``max_samples``, with a ``FADE_SECONDS``
    linear fade-out where it was cut (the rule every kit sample follows)."""
    if audio.shape[-1] <= max_samples:
        return audio
    out = audio[..., :max_samples].copy()
    n_fade = min(max_samples, round(FADE_SECONDS * sr))
    out[..., max_samples - n_fade:] *= np.linspace(1.0, 0.0, n_fade).astype(out.dtype)
    return out


def detect_kick(mono: np.ndarray, sr: int) -> bool:
    """The audio rule for "this one-shot is a kick" (see the module docstring)."""
    head = mono[: int(KICK_ANALYSIS_SECONDS * sr)]
    n_fft = max(2048, head.shape[0])
    power = np.square(np.abs(np.fft.rfft(head, n=n_fft)))
    low_share = np.sum(power[np.fft.rfftfreq(n_fft, 1.0 / sr) < KICK_LOW_HZ]) / np.sum(power)
    hop = int(0.010 * sr)
    n_frames = max(1, mono.shape[0] // hop)
    frames = (mono[: n_frames * hop].reshape(n_frames, hop) if mono.shape[0] >= hop
              else mono[None])
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    loud = np.nonzero(rms >= rms.max() * 0.1)[0]  # -20 dB
    decay_seconds = (loud[-1] + 1) * hop / sr
    return bool(low_share >= KICK_MIN_LOW_ENERGY and decay_seconds < KICK_MAX_DECAY_SECONDS)


def load_kit(folder: str | os.PathLike, max_samples: int, *, sr: int = 44100,
             min_samples: int = 1, on_device: bool = True) -> Kit:
    """Loads every usable audio file under ``folder``.

    Args:
      folder: a folder tree of one-shots.
      max_samples: longest sample kept, in samples (one bar: ``RenderConfig.bar_samples``).
      sr: target sample rate, in Hz.
      min_samples: fewest usable files accepted (the number of tracks).
      on_device: ``Kit.audio`` as a JAX device array; False keeps it a NumPy array and
        never imports JAX (host-only work: ``ddjax export``).

    Returns:
      The ``Kit``, sorted by relative path, so loading is deterministic.

    Raises:
      DdjaxError: the folder is missing or has fewer than ``min_samples`` usable files.
    """
    root = pathlib.Path(folder).expanduser()
    if not root.is_dir():
        raise DdjaxError(f"kit folder {root} does not exist or is not a folder")
    paths = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts))
    clips, names = [], []
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            clips.append(cut(_read_mono(path, sr), max_samples, sr))
        except _Skip as skip:
            warnings.warn(KitWarning(f"skipped {path}: {skip.reason}"), stacklevel=2)
            continue
        names.append(name)
    if len(clips) < min_samples:
        raise DdjaxError(
            f"kit folder {root} has {len(clips)} usable audio file(s); at least {min_samples}"
            " are needed (one per track)")
    lengths = np.array([c.shape[0] for c in clips], dtype=np.int64)
    padded = np.zeros((len(clips), int(lengths.max())), dtype=np.float32)
    for row, clip in zip(padded, clips):
        row[: clip.shape[0]] = clip
    is_kick = np.array([detect_kick(c, sr) for c in clips], dtype=bool)
    monos = _unpadded(padded, lengths)
    kinds = sample_kinds(names, monos, sr)
    if on_device:
        import jax.numpy as jnp  # here: a host-only caller never loads JAX

        padded = jnp.asarray(padded)
    return Kit(audio=padded, lengths=lengths, names=tuple(names),
               is_kick=is_kick, root=root.resolve(), sr=sr, kinds=kinds,
               notes=sample_notes(kinds, monos, sr))
