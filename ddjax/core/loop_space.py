"""What a loop may be, in names and numbers, with no JAX: the loop priors, the variation
distance and the MIDI velocities. ``ddjax.core.loops`` re-exports them; they live here so
that the command line's grammar and the host render (``ddjax.core.host_render``) load
without importing JAX.
"""

from __future__ import annotations

LOOP_PRIORS = ("learned", "musical", "uniform")
DEFAULT_DISTANCE = 8  # a variation changes 2 to 8 cells of its source by default
VELOCITY_LEVELS = (70, 100, 127)  # MIDI velocities: ghost, normal, accent
FULL_VELOCITY = 127  # a hit's gain is velocity / 127; the uniform prior's every hit
