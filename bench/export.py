"""``ddjax export`` speed, whole process: one loop, and 20 loops in one call (issue #23).

Each figure is the wall time of a fresh ``python -m ddjax.cli export ... --out`` (MIDI and
the listening WAV, the default), the median of ``--runs`` runs: ``one_loop_s`` for one
loop, ``per_loop_s`` for ``--n`` loops in one call divided by ``--n``, and
``marginal_per_loop_s``, what each loop after the first adds ((t_n - t_1) / (n - 1)): the
export's own work once the process has started. ``imports_jax`` says whether the command
imported JAX at all (``-X importtime``); it should not. Target: at most 0.5 s per loop.

The loops are random 4-track loops of the bundled kit made here with NumPy (``--loops DIR``
takes the first ``--n`` JSON files of a folder instead, e.g. ``ddjax generate --n 20
--midi --out DIR``). Prints one JSON line. The CPU model is read from /proc/cpuinfo here:
``bench/machine.py`` imports JAX.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from ddjax.io.kit import AUDIO_EXTENSIONS, bundled_kit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from host_cpu import cpu_name


def random_loops(folder: pathlib.Path, n: int, seed: int = 0) -> list[pathlib.Path]:
    """``n`` loop files: 4 tracks of 16 steps, about 30 % of cells on, velocities 70/100/127,
    4 distinct samples of the bundled kit, at 120 BPM."""
    kit = bundled_kit()
    names = sorted(p.relative_to(kit).as_posix() for p in kit.rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"loop_{i:04d}.json")
        paths[-1].write_text(json.dumps({
            "grid": (rng.random((4, 16)) < 0.3).astype(int).tolist(),
            "velocity": rng.choice([70, 100, 127], (4, 16)).tolist(),
            "samples": [names[j] for j in rng.choice(len(names), 4, replace=False)],
            "bpm": 120}))
    return paths


def export_seconds(loops: list[pathlib.Path], out: pathlib.Path) -> float:
    """Wall time of one ``ddjax export`` process over ``loops``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ddjax.cli", "export", *map(str, loops),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports_jax(loop: pathlib.Path, out: pathlib.Path) -> bool:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ddjax.cli", "export",
                           str(loop), "--out", str(out)], check=True, capture_output=True,
                          text=True)
    return any(line.rsplit("|", 1)[-1].strip() == "jax" for line in done.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="loops in the many-loop call")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, median")
    parser.add_argument("--loops", type=pathlib.Path, help="a folder of loop JSON files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        loops = (sorted(args.loops.glob("*.json"))[:args.n] if args.loops
                 else random_loops(tmp / "in", args.n))
        one = [export_seconds(loops[:1], tmp / f"one{r}" / "loop") for r in range(args.runs)]
        many = [export_seconds(loops, tmp / f"many{r}") for r in range(args.runs)]
        jax_imported = imports_jax(loops[0], tmp / "check" / "loop")
    t_one, t_many = statistics.median(one), statistics.median(many)
    print(json.dumps({
        "bench": "export", "cpu": cpu_name(), "python": platform.python_version(),
        "loops": len(loops), "runs": args.runs,
        "one_loop_s": round(t_one, 3), "many_loops_s": round(t_many, 3),
        "per_loop_s": round(t_many / len(loops), 3),
        "marginal_per_loop_s": round((t_many - t_one) / max(1, len(loops) - 1), 3),
        "imports_jax": jax_imported, "loadavg": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
