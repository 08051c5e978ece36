"""The learned loop prior's file and how it is made: real drum patterns read from the
corpus (``scripts/patterns/*.txt``), counted into ``core.patterns.PatternPrior``'s
probabilities (``fit``), written as ``ddjax/pretrained/loop-prior.json`` by
``scripts/fit_loop_prior.py`` and read by every session (``load_loop_prior``).

The corpus format (``scripts/patterns/README.md``): blocks separated by blank lines, each
``pattern: STYLE/NAME``, ``style: STYLE``, ``source: ...`` and 2 to 6 track lines, a kind
of ``drums.KINDS`` then 16 symbols: ``.`` rest, ``g`` ghost, ``x`` hit, ``X`` accent.

The fit is counting with shrinkage. For style s, role r and step j, with c hits of n
tracks of that role in the style's patterns, ``on[s, r, j] = (c + m g[r, j]) / (n + m)``,
where ``g[r, j] = (C + 1) / (N + 2)`` is the same count over every style (Laplace), and m
(``strength``) pseudo-tracks pull a style with few patterns towards all styles. The accents
are counted the same way, per hit. The soft roles come from how many of the style's
patterns have each role (``presence``), repeat each kind (``repeat``) and give a role two
tracks or more (``role_repeat``). The mixture
weighs each style by its share of the patterns (plus one), so the default loop is drawn
from the styles as often as the corpus has them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import pathlib
from collections.abc import Iterable, Sequence

import jax.numpy as jnp
import numpy as np

from ddjax.core import loops as loops_lib
from ddjax.core import patterns as patterns_lib
from ddjax.core.drums import KINDS
from ddjax.core.patterns import CORE_ROLES, LEVELS, ROLE_OF_KIND, ROLES, PatternPrior
from ddjax.errors import DdjaxError

PRIOR_FORMAT = "ddjax-loop-prior"
PRIOR_VERSION = 2
N_STEPS = 16
SYMBOLS = {".": -1, "g": 0, "x": 1, "X": 2}
HELD_OUT_EVERY = 5  # one pattern in five (by a hash of its id) is held out of the fit
PRESENCE_RANGE = (0.02, 0.98)
REPEAT_FLOOR = 0.02


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One bar of a real drum pattern.

    Attributes:
      id: ``STYLE/NAME``, unique in the corpus.
      style: its style.
      source: where it comes from.
      kinds: each track's kind (``drums.KINDS``), in importance order.
      level: int8[tracks, 16], -1 rest, else the accent (0 ghost, 1 hit, 2 accent).
    """

    id: str
    style: str
    source: str
    kinds: tuple[str, ...]
    level: np.ndarray

    @property
    def grid(self) -> np.ndarray:
        """bool[tracks, 16]."""
        return self.level >= 0

    def held_out(self) -> bool:
        """Whether the fit leaves this pattern out (1 in ``HELD_OUT_EVERY``, by its id)."""
        digest = hashlib.sha256(self.id.encode()).digest()
        return digest[0] % HELD_OUT_EVERY == 0


def parse_corpus(text: str, where: str = "corpus") -> list[Pattern]:
    """The patterns of one corpus file's text (format in the module docstring)."""
    patterns, block, start = [], [], 0
    lines = text.splitlines() + [""]
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line:
            if not block:
                start = number
            block.append(line)
        elif block:
            patterns.append(_parse_block(block, f"{where}:{start}"))
            block = []
    ids = [p.id for p in patterns]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise DdjaxError(f"{where}: pattern ids used twice: {', '.join(twice[:3])}")
    return patterns


def _parse_block(lines: list[str], where: str) -> Pattern:
    fields, kinds, rows = {}, [], []
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key in ("pattern", "style", "source"):
            fields[key] = value.strip()
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in KINDS:
            raise DdjaxError(f"{where}: not a track line (KIND then {N_STEPS} of"
                             f" .gxX): {line!r}")
        if len(parts[1]) != N_STEPS or set(parts[1]) - set(SYMBOLS):
            raise DdjaxError(f"{where}: a track needs {N_STEPS} of .gxX, got {parts[1]!r}")
        kinds.append(parts[0])
        rows.append([SYMBOLS[c] for c in parts[1]])
    missing = {"pattern", "style", "source"} - set(fields)
    if missing or not rows:
        raise DdjaxError(f"{where}: a pattern needs pattern:, style:, source: and tracks")
    return Pattern(fields["pattern"], fields["style"], fields["source"], tuple(kinds),
                   np.array(rows, np.int8))


def read_corpus(paths: Iterable[pathlib.Path]) -> list[Pattern]:
    """Every pattern of the corpus files at ``paths``, in order; ids unique across them."""
    patterns = []
    for path in paths:
        try:
            text = pathlib.Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise DdjaxError(f"cannot read the pattern corpus {path}: {err.strerror}") from None
        patterns += parse_corpus(text, str(path))
    ids = [p.id for p in patterns]
    if len(set(ids)) != len(ids):
        raise DdjaxError("pattern ids repeat across the corpus files")
    return patterns


def split(patterns: Sequence[Pattern]) -> tuple[list[Pattern], list[Pattern]]:
    """(fitted, held out): ``Pattern.held_out``."""
    return ([p for p in patterns if not p.held_out()], [p for p in patterns if p.held_out()])


def role_index(kind: str) -> int:
    """A kind's role, as an index into ``ROLES``."""
    return ROLES.index(ROLE_OF_KIND[kind])


def _counts(patterns: Sequence[Pattern], resp: np.ndarray) -> dict[str, np.ndarray]:
    # Each pattern's tracks counted into every component c with weight resp[pattern, c].
    n_c, n_r, n_k = resp.shape[1], len(ROLES), len(KINDS)
    counts = {"hits": np.zeros((n_c, n_r, N_STEPS)), "tracks": np.zeros((n_c, n_r)),
              "accents": np.zeros((n_c, n_r, N_STEPS, LEVELS)),
              "has_role": np.zeros((n_c, n_r)), "repeats": np.zeros((n_c, n_k)),
              "role_repeats": np.zeros((n_c, n_r)),
              "extra": np.zeros((n_c, n_r)), "patterns": resp.sum(0)}
    for pattern, w in zip(patterns, resp):
        roles = [role_index(k) for k in pattern.kinds]
        for r, level in zip(roles, pattern.level):
            counts["tracks"][:, r] += w
            counts["hits"][:, r] += w[:, None] * (level >= 0)
            for j in np.nonzero(level >= 0)[0]:
                counts["accents"][:, r, j, level[j]] += w
        counts["has_role"][:, sorted(set(roles))] += w[:, None]
        for k in set(pattern.kinds):
            counts["repeats"][:, KINDS.index(k)] += w * (pattern.kinds.count(k) > 1)
        for r in set(roles):
            counts["role_repeats"][:, r] += w * (roles.count(r) > 1)
        others = list(roles)
        for core in CORE_ROLES:  # what is left once one of each core role is taken
            if ROLES.index(core) in others:
                others.remove(ROLES.index(core))
        for r in others:
            counts["extra"][:, r] += w
    return counts


def _probabilities(c: dict[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    n_r = len(ROLES)
    on_all = (c["hits"].sum(0) + 1.0) / (c["tracks"].sum(0)[:, None] + 2.0)
    on = (c["hits"] + strength * on_all) / (c["tracks"][..., None] + strength)
    accents = c["accents"]
    accent_all = (accents.sum(0) + 1.0) / (accents.sum((0, 3))[..., None] + LEVELS)
    level = (accents + strength * accent_all) / (accents.sum(-1, keepdims=True) + strength)
    n_patterns = c["patterns"]
    presence_all = (c["has_role"].sum(0) + 1.0) / (n_patterns.sum() + 2.0)
    presence = np.clip((c["has_role"] + strength * presence_all)
                       / (n_patterns[:, None] + strength), *PRESENCE_RANGE)
    repeat = np.clip((c["repeats"] + 0.5 * REPEAT_FLOOR) / (n_patterns[:, None] + 1.0),
                     REPEAT_FLOOR, 1.0)
    role_repeat = np.clip((c["role_repeats"] + 0.5 * REPEAT_FLOOR)
                          / (n_patterns[:, None] + 1.0), REPEAT_FLOOR, 1.0)
    extra = c["extra"]
    extra_all = (extra.sum(0) + 1.0) / (extra.sum() + n_r)
    extra = (extra + strength * extra_all) / (extra.sum(-1, keepdims=True) + strength)
    track_role = np.zeros((len(n_patterns), len(CORE_ROLES) + 1, n_r))
    for t, core in enumerate(CORE_ROLES):
        r = ROLES.index(core)
        track_role[:, t] = (1.0 - presence[:, r:r + 1]) * extra
        track_role[:, t, r] += presence[:, r]
    track_role[:, -1] = extra
    return {"on": on, "level": level, "presence": presence, "repeat": repeat,
            "role_repeat": role_repeat, "track_role": track_role}


def _pattern_loglik(pattern: Pattern, on: np.ndarray, level: np.ndarray) -> np.ndarray:
    # float64[C]: log P(the pattern's grid and accents | component c), every track.
    roles = [role_index(k) for k in pattern.kinds]
    grid = pattern.grid
    p_on = on[:, roles]  # [C, T, N]
    out = np.where(grid, np.log(p_on), np.log1p(-p_on)).sum((1, 2))
    t, j = np.nonzero(grid)
    picked = level[:, np.array(roles)[t], j, pattern.level[t, j]]  # [C, hits]
    return out + np.log(picked).sum(-1)


def fit(patterns: Sequence[Pattern], strength: float = 2.0,
        styles: Sequence[str] | None = None, components: int = 1,
        iterations: int = 40, seed: int = 0) -> dict:
    """The prior's probabilities from ``patterns`` (module docstring).

    With ``components`` = 1, one component per style: plain counts. With more, each
    style is a mixture of that many patterns of playing, fitted by EM (the counts
    weighted by each pattern's responsibilities, which stay within its own style),
    started from a seeded random split.

    Returns a dict of NumPy arrays and lists over the C = styles x components
    components: ``styles`` [S] and ``component_styles`` [C], ``on`` [C, R, N],
    ``level`` [C, R, N, LEVELS], ``presence`` [C, R], ``repeat`` [C, K],
    ``role_repeat`` [C, R],
    ``track_role`` [C, T0, R] (probabilities), ``weight`` [C], and ``strength``.
    """
    styles = sorted({p.style for p in patterns}) if styles is None else list(styles)
    component_styles = [s for s in styles for _ in range(components)]
    mine = np.array([[c == p.style for c in component_styles] for p in patterns])
    rng = np.random.default_rng(seed)
    resp = np.where(mine, rng.dirichlet(np.ones(len(component_styles)), len(patterns)), 0.0)
    resp /= np.maximum(resp.sum(1, keepdims=True), 1e-300)
    for _ in range(iterations if components > 1 else 0):
        probs = _probabilities(_counts(patterns, resp), strength)
        share = np.log(resp.sum(0) + 1e-3)
        loglik = np.array([_pattern_loglik(p, probs["on"], probs["level"])
                           for p in patterns]) + share
        loglik = np.where(mine, loglik, -np.inf)
        resp = np.exp(loglik - loglik.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
    counts = _counts(patterns, resp)
    n = counts["patterns"]
    per_style = np.array([n[np.array(component_styles) == s].sum() for s in styles])
    style_weight = (per_style + 1.0) / (per_style.sum() + len(styles))
    within = (n + 0.1) / (np.repeat(per_style, components) + 0.1 * components)
    return {"styles": styles, "component_styles": component_styles,
            **_probabilities(counts, strength),
            "weight": np.repeat(style_weight, components) * within, "strength": strength,
            "components": components}


def to_arrays(fitted: dict) -> PatternPrior:
    """``fit``'s probabilities as the prior's log arrays (NumPy float32)."""
    def log(x):
        return np.log(np.asarray(x, np.float64)).astype(np.float32)
    on = np.asarray(fitted["on"], np.float64)
    presence = np.asarray(fitted["presence"], np.float64)
    return PatternPrior(log(fitted["weight"]), log(on), log(1.0 - on), log(fitted["level"]),
                        log(presence), log(1.0 - presence), log(fitted["repeat"]),
                        log(fitted["role_repeat"]), log(fitted["track_role"]))


def prior_record(fitted: dict, corpus: Sequence[Pattern], held_out: Sequence[str]) -> dict:
    """The JSON record of a fit: its arrays, the corpus it saw and what it held out."""
    def rounded(x):  # 4 significant digits: a small file, and within 0.05% of the fit
        return np.vectorize(lambda v: float(f"{v:.4g}"))(np.asarray(x, np.float64)).tolist()
    arrays = {k: rounded(fitted[k])
              for k in ("on", "level", "presence", "repeat", "role_repeat", "track_role",
                        "weight")}
    return {"format": PRIOR_FORMAT, "version": PRIOR_VERSION, "roles": list(ROLES),
            "kinds": list(KINDS), "styles": list(fitted["styles"]),
            "component_styles": list(fitted["component_styles"]),
            "strength": fitted["strength"], "components": fitted["components"],
            "n_patterns": len(corpus),
            "held_out": sorted(held_out), **arrays}


def default_prior_path() -> pathlib.Path:
    """The loop prior shipped in the package."""
    return pathlib.Path(str(importlib.resources.files("ddjax") / "pretrained"
                            / "loop-prior.json"))


@dataclasses.dataclass(frozen=True)
class LoopPrior:
    """A loaded loop prior: its styles' names and its arrays (NumPy)."""

    styles: tuple[str, ...]
    component_styles: tuple[str, ...]
    arrays: PatternPrior
    held_out: tuple[str, ...]

    def for_style(self, style: str | None) -> PatternPrior:
        """The arrays, restricted to ``style``'s components (None: every style)."""
        if style is None:
            return self.arrays
        check_style(style, self.styles)
        keep = np.array([s == style for s in self.component_styles])
        log_weight = np.where(keep, np.asarray(self.arrays.log_weight, np.float64), -np.inf)
        log_weight -= np.logaddexp.reduce(log_weight[keep])
        return self.arrays._replace(log_weight=log_weight.astype(np.float32))


def check_style(style: str, styles: Sequence[str]) -> str:
    """``style`` where the prior has it, else a DdjaxError listing the styles."""
    if style not in styles:
        raise DdjaxError(f"no style {style!r}; the styles are: {', '.join(styles)}")
    return style


@functools.lru_cache(maxsize=4)
def load_loop_prior(path: str | None = None) -> LoopPrior:
    """The loop prior file at ``path`` (the shipped one when None)."""
    where = default_prior_path() if path is None else pathlib.Path(path)
    try:
        record = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DdjaxError(f"cannot read the loop prior {where}: {err}") from None
    if record.get("format") != PRIOR_FORMAT or record.get("version") != PRIOR_VERSION:
        raise DdjaxError(f"{where} is not a ddjax loop prior (version {PRIOR_VERSION})")
    if record["roles"] != list(ROLES) or record["kinds"] != list(KINDS):
        raise DdjaxError(f"{where} was made for other roles or kinds; run"
                         " scripts/fit_loop_prior.py again")
    return LoopPrior(tuple(record["styles"]), tuple(record["component_styles"]),
                     to_arrays(record), tuple(record["held_out"]))


def held_out_loglik(patterns: Sequence[Pattern], prior: PatternPrior,
                    max_tracks: int = 4) -> dict[str, np.ndarray]:
    """Each pattern's log-likelihood (nats) under the three loop priors, on its first
    ``max_tracks`` tracks, given their kinds: ``uniform`` (the paper's generator: every
    grid alike), ``musical`` (its Beta-binomial density, ``loops.musical_grid_log_prob``)
    and ``learned`` (``patterns.log_grid_prob``), each of the grid alone; and
    ``musical_accents`` and ``learned_accents``, of the grid with its accents.
    float64[patterns] each."""
    musical = loops_lib.LoopConfig(prior="musical")
    log_velocity = np.log(np.asarray(musical.velocity_weights))
    out = {k: [] for k in ("uniform", "musical", "learned", "musical_accents",
                           "learned_accents")}
    for pattern in patterns:
        level = pattern.level[:max_tracks].astype(np.int32)
        grid = level >= 0
        roles = np.array([role_index(k) for k in pattern.kinds[:max_tracks]], np.int32)
        out["uniform"].append(-grid.size * np.log(2.0))
        m = float(loops_lib.musical_grid_log_prob(jnp.asarray(grid), musical))
        out["musical"].append(m)
        out["musical_accents"].append(m + float(log_velocity[level[grid]].sum()))
        out["learned"].append(float(patterns_lib.log_grid_prob(prior, grid, roles)))
        out["learned_accents"].append(float(patterns_lib.log_grid_prob(prior, grid, roles,
                                                                       level)))
    return {k: np.array(v, np.float64) for k, v in out.items()}
