"""Helpers for the browser tests and bench/serve_latency.py: a `ddjax serve` process and
Debian's Chromium driven headless by Playwright (no browser download).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
INSTALL_HINT = ("install Chromium and Playwright to run the browser tests: apt-get install"
                " chromium (Debian) and pip install -e '.[test]'; or set DDJAX_CHROMIUM to a"
                " Chromium binary")
# The flags that keep Chromium off the network on a closed machine, and let the page play
# audio without a click.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    found = os.environ.get("DDJAX_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    return found if found and os.access(found, os.X_OK) else None


def why_not_available() -> str | None:
    """None where the browser tests can run, else what to install."""
    if importlib.util.find_spec("playwright") is None:
        return f"Playwright is not installed; {INSTALL_HINT}"
    if chromium_path() is None:
        return f"no Chromium found; {INSTALL_HINT}"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


class Server:
    """``ddjax serve`` on a free port, as a child process.

    Args:
      args: arguments after ``ddjax serve``.
      port: the port to listen on (0: a free one); a server started again on a killed one's
        port serves the same page origin, so the page's localStorage carries over.
      env: environment variables to set for the server, beyond this process's.
    """

    def __init__(self, *args: str, port: int = 0, startup_timeout: float = 180.0,
                 env: dict[str, str] | None = None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ddjax.cli.main", "serve", "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
        deadline = time.monotonic() + startup_timeout
        self.output = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if " page at " in line:
                self.url = line.split(" page at ")[1].split()[0].rstrip("/")
                self.port = int(self.url.rsplit(":", 1)[1])
                # Keep reading, so a chatty server never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.kill()
        raise RuntimeError("ddjax serve did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stops the server (SIGKILL by default: nothing may depend on a clean exit)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def wait_for_loop(page, previous_key: str | None = None, timeout_ms: int = 120_000) -> str:
    """Waits until the page plays a loop other than ``previous_key``; returns its key."""
    page.wait_for_function(
        "([previous]) => document.body.dataset.state === 'playing'"
        " && document.body.dataset.key !== previous", arg=[previous_key], timeout=timeout_ms)
    return page.evaluate("document.body.dataset.key")
