"""Encode stage: rendered audio -> the bytes of an audio file a DAW opens.

Formats (``--format``):

- ``pcm24`` (the default): 24-bit PCM WAV;
- ``pcm16``: 16-bit PCM WAV;
- ``float32``: 32-bit float WAV, the exact samples;
- ``flac``: 24-bit FLAC, through soundfile (libsndfile).

Renders never peak above -1 dBFS (``ddjax.core.render``), so PCM never clips. PCM samples are
rounded to the nearest step, with no dither, so the same audio always gives the same
bytes. The WAV headers are written here, not by libsndfile, whose PEAK chunk holds a
timestamp. A WAV may carry the loop's tempo in an ``acid`` chunk, the loop-file tempo
that Ableton Live, FL Studio, Cubase, Reaper and Acid read.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf

from ddjax.errors import DdjaxError

FORMATS = ("pcm24", "pcm16", "float32", "flac")
DEFAULT_FORMAT = "pcm24"
WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
ACID_LOOP_STRETCH = 0x04  # a loop (not a one-shot) that the DAW stretches to its tempo


def suffix(fmt: str) -> str:
    """The file suffix of a format: ``.flac`` or ``.wav``."""
    return ".flac" if fmt == "flac" else ".wav"


def _pcm(samples: np.ndarray, bits: int) -> bytes:
    scale = 2 ** (bits - 1)
    ints = np.clip(np.round(samples.astype(np.float64) * scale), -scale, scale - 1)
    ints = ints.astype("<i4")
    if bits == 16:
        return ints.astype("<i2").tobytes()
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian low 3 bytes


def acid_chunk(bpm: float, beats: int) -> bytes:
    """An ``acid`` chunk: a stretchable loop of ``beats`` quarter notes in 4/4 at ``bpm``."""
    body = struct.pack("<IHHfIHHf", ACID_LOOP_STRETCH, 60, 0x8000, 0.0, beats, 4, 4,
                       float(bpm))
    return b"acid" + struct.pack("<I", len(body)) + body


def wav_bytes(audio: np.ndarray, sr: int, fmt: str = DEFAULT_FORMAT, *,
              tempo: tuple[float, int] | None = None) -> bytes:
    """Mono audio as a WAV file's bytes.

    Args:
      audio: float[samples], within [-1, 1] for the PCM formats.
      sr: sample rate, in Hz.
      fmt: "pcm24", "pcm16" or "float32".
      tempo: (bpm, beats) for an ``acid`` chunk, or None.

    Chunks: ``fmt `` (PCM or IEEE float, 1 channel), ``fact`` (frames; float only),
    ``acid`` (with ``tempo``) and ``data`` (little-endian).
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"wav_bytes takes mono audio, float[samples]; got {samples.shape}")
    if fmt == "float32":
        data, tag, bits = samples.astype("<f4").tobytes(), WAVE_FORMAT_IEEE_FLOAT, 32
    elif fmt in ("pcm24", "pcm16"):
        bits = 24 if fmt == "pcm24" else 16
        data, tag = _pcm(samples, bits), WAVE_FORMAT_PCM
    else:
        raise ValueError(f"not a WAV format: {fmt!r}")
    width = bits // 8
    fmt_chunk = struct.pack("<HHIIHH", tag, 1, sr, sr * width, width, bits)
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        fmt_chunk += struct.pack("<H", 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        body += b"fact" + struct.pack("<II", 4, samples.size)
    if tempo is not None:
        body += acid_chunk(*tempo)
    body += b"data" + struct.pack("<I", len(data)) + data
    if len(data) % 2:
        body += b"\0"  # RIFF chunks are word-aligned
    if len(body) >= 2**32:
        raise DdjaxError(f"{samples.size} samples do not fit in one WAV file (4 GiB)")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def audio_bytes(audio: np.ndarray, sr: int, fmt: str = DEFAULT_FORMAT, *,
                tempo: tuple[float, int] | None = None) -> bytes:
    """``audio`` in ``fmt`` (see the module docstring); ``tempo`` goes into a WAV's
    ``acid`` chunk (FLAC has no standard place for it)."""
    if fmt != "flac":
        return wav_bytes(audio, sr, fmt, tempo=tempo)
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, np.float32), sr, format="FLAC", subtype="PCM_24")
    return buffer.getvalue()
