"""Shared fixtures: the repo's paths, the bundled kit, and the paper's kit when present."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# Compiled programs persist across test processes (the CLI and kill tests start several).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".pytest_cache" / "xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
BUNDLED_KIT = REPO / "samples"
SHARED_KIT = REPO.parent / "shared" / "kits" / "deepdrummer"


@pytest.fixture(scope="session")
def bundled_kit():
    from ddjax.kit import load_kit
    return load_kit(BUNDLED_KIT, 88200)


@pytest.fixture(scope="session")
def shared_kit():
    if not SHARED_KIT.is_dir():
        pytest.skip(f"the paper's kit is not at {SHARED_KIT}")
    from ddjax.kit import load_kit
    return load_kit(SHARED_KIT, 88200)
