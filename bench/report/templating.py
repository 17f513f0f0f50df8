"""The report pages' Jinja2 templates, compiled once per template text, not once per report.

Compiling report.html takes longer than rendering it (70 ms against 2 ms on a small run),
so the compiled code is kept in Jinja2's own bytecode cache: a private folder of this user
in the temp directory. Jinja2 takes it from there only while the template's text is the
one it was compiled from (it keeps a hash of the text beside the code), and the file
names carry the Jinja2 version, so a changed template or Jinja2 compiles afresh. Only
compiled template code is kept, never anything of a run. Where the cache cannot be read
or written, the template is compiled as before.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
PATTERN = f"cvbench-jinja2-{jinja2.__version__}-%s.cache"
CACHE_DIR: str | None = None  # None: Jinja2's folder of this user in the temp directory


class _Cache(FileSystemBytecodeCache):
    """Jinja2's file cache, less its errors: a template that cannot be kept is compiled."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _cache() -> FileSystemBytecodeCache | None:
    try:  # Jinja2's own folder is made for this user alone (0700), refused if another owns it
        return _Cache(CACHE_DIR, PATTERN)
    except (OSError, RuntimeError):
        return None


def template(name: str) -> jinja2.Template:
    """The template of that name under templates/, HTML-escaping what it puts in."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       bytecode_cache=_cache()).get_template(name)
