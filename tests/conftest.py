"""Shared fixtures: the repo's paths, the bundled kit, and the paper's kit when present."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Compiled programs persist across test processes (the CLI and kill tests start several).
# Every program, however quick to compile, as the CLI keeps them (ddjax.cli.main): a start or a
# first eager call compiles dozens of small ones, each slower to compile than to load.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".pytest_cache" / "xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# One BLAS thread, here and in every process a test starts (set before NumPy loads
# OpenBLAS): OpenBLAS's threads spin while they wait, and on a 2-core machine shared with
# a server, Chromium or the other test worker, JAX's small LAPACK calls (the head's
# Cholesky) wait on them: with both cores kept busy by two other processes, the probit
# test took 19.7 s with two threads and 7.1 s with one (4.0-4.6 s either way when idle).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
BUNDLED_KIT = REPO / "samples"
SHARED_KIT = REPO.parent / "shared" / "kits" / "deepdrummer"


@pytest.fixture(scope="session")
def bundled_kit():
    from ddjax.io.kit import load_kit
    return load_kit(BUNDLED_KIT, 88200)


@pytest.fixture(scope="session")
def shared_kit():
    if not SHARED_KIT.is_dir():
        pytest.skip(f"the paper's kit is not at {SHARED_KIT}")
    from ddjax.io.kit import load_kit
    return load_kit(SHARED_KIT, 88200)
