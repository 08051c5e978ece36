"""A study's consent page (``ddjax serve --study --consent FILE``): read, checked and
rendered once, before the server listens.

A Markdown file is rendered with markdown-it-py (CommonMark), raw HTML in it escaped; an
HTML file (``.html``/``.htm``) is shown as the researcher wrote it. The participant's
"I agree" is logged with the page's SHA-256 (``Consent.digest``), so the log names the
exact text agreed to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib

from markdown_it import MarkdownIt

from ddjax.errors import DdjaxError

MAX_CONSENT_BYTES = 256 * 1024
HTML_SUFFIXES = (".html", ".htm")


@dataclasses.dataclass(frozen=True)
class Consent:
    """A consent page.

    Attributes:
      name: the file's name, as the log records it.
      html: the page's body, ready to show.
      digest: the SHA-256 of the file's bytes (hex).
    """

    name: str
    html: str
    digest: str


def load_consent(path: pathlib.Path | None) -> Consent | None:
    """The consent page in ``path`` (None: none), or a DdjaxError that names the file and
    what is wrong: missing, not a file, not UTF-8, empty, or ``MAX_CONSENT_BYTES`` or more."""
    if path is None:
        return None
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DdjaxError(f"--consent {path}: no such file") from None
    except IsADirectoryError:
        raise DdjaxError(f"--consent {path}: a folder, not a Markdown or HTML file") from None
    except OSError as err:
        raise DdjaxError(f"--consent {path}: cannot read it ({err.strerror or err})") from None
    if len(data) >= MAX_CONSENT_BYTES:
        raise DdjaxError(f"--consent {path}: {len(data)} bytes; a consent page must be under"
                         f" {MAX_CONSENT_BYTES // 1024} kB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DdjaxError(f"--consent {path}: not UTF-8 text (byte {err.start}); save it as"
                         " UTF-8") from None
    if not text.strip():
        raise DdjaxError(f"--consent {path}: the file is empty")
    html = text if path.suffix.lower() in HTML_SUFFIXES else render_markdown(text)
    return Consent(path.name, html, hashlib.sha256(data).hexdigest())


def render_markdown(text: str) -> str:
    """CommonMark ``text`` as HTML; HTML written in it is escaped, not passed through, and
    links that could run script (``javascript:``) are left as text."""
    return MarkdownIt("commonmark", {"html": False}).render(text)
