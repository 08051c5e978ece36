"""The drum vocabulary: the kinds of one-shot a loop's tracks play, which kinds carry the
backbeat, and their General MIDI notes. Names only; what each kit sample *is* comes from
``ddjax.io.kinds`` when a kit is loaded (``Kit.kinds``).
"""

from __future__ import annotations

import numpy as np

GM_NOTES = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42,
            "open_hat": 46, "crash": 49, "ride": 51, "cowbell": 56, "shaker": 70,
            "fx": 71}  # fx: GM's short whistle, a sound no drum kit plays by default
TOM_NOTES = (41, 43, 45, 47, 48, 50)  # low floor tom .. high tom
TOM_PITCH_EDGES_HZ = (110.0, 140.0, 175.0, 220.0, 280.0)
KINDS = ("kick", "snare", "clap", "rim", "closed_hat", "open_hat", "crash", "ride",
         "cowbell", "shaker", "tom", "fx")
BACKBEAT_KINDS = ("snare", "clap", "rim")


def kind_ids(kinds) -> np.ndarray:
    """int32[kit]: each kind's position in ``KINDS``, -1 where it is unknown (None)."""
    return np.array([KINDS.index(k) if k in KINDS else -1 for k in kinds], np.int32)
