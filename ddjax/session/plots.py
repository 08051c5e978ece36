"""The experiments' plots: a run's like rate over time (``plot_like_rate``) and the
thetas' densities over runs (``plot_densities``), as PNGs with the same bytes for the same
results.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np

from ddjax.io.files import atomic_write_bytes

__all__ = ["plot_like_rate", "plot_densities"]


def plot_like_rate(result: dict, path: pathlib.Path, window: int = 10) -> None:
    """Phase I like rate over time (running mean), with the phase II thetas."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    liked = np.array([h["liked"] for h in result["history"]], float)
    running = np.convolve(liked, np.ones(window), "valid") / window if liked.size >= window \
        else np.cumsum(liked) / np.arange(1, liked.size + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(np.arange(len(running)) + min(window, liked.size), running,
            label=f"phase I, running mean of {window}")
    ax.axhline(result["theta_init"], color="grey", ls="--", label="phase II, initial critic")
    ax.axhline(result["theta_final"], color="green", ls="--", label="phase II, final critic")
    ax.set_xlabel("rating")
    ax.set_ylabel("like rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['rater']} (seed {result['seed']}): delta {result['delta']:+.2f}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def _save_png(fig, path: pathlib.Path) -> None:
    """The figure as a PNG, written atomically (no timestamp: same plot, same bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def plot_densities(results: list[dict], path: pathlib.Path) -> None:
    """Histograms of theta_init, theta_final and delta, as in the paper's Figures 4-5."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    bins = np.linspace(0, 1, 11)
    left.hist([r["theta_init"] for r in results], bins=bins, alpha=0.6, label="theta_init")
    left.hist([r["theta_final"] for r in results], bins=bins, alpha=0.6, label="theta_final")
    left.set_xlabel("like rate in phase II")
    left.legend(fontsize=8)
    right.hist([r["delta"] for r in results], bins=np.linspace(-1, 1, 21), color="green")
    right.axvline(0, color="grey", ls="--")
    right.set_xlabel("delta theta")
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)
