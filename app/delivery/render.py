"""Email templates: `templates/email/<name>.html` (+ optional `<name>.txt`).

A template starts with a front-matter block giving the subject (itself a Jinja
template) and optionally a preheader::

    ---
    subject: Your copy of "Seven Fundamentals", {{ contact.first_name or "there" }}
    preheader: Chapter one takes ten minutes.
    ---
    <p>Hi {{ contact.first_name or "there" }}, ...</p>

Rendering is strict: an undefined variable raises, so a half-rendered email is
never sent (the message fails with the reason instead). Compiled templates are
cached per directory, so a tick compiles each template once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    select_autoescape,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.S)


class TemplateProblem(ValueError):
    """A template cannot be rendered: the message names the template and the cause."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    preheader: str | None = None


@dataclass(frozen=True)
class _Compiled:
    subject: Template
    preheader: Template | None
    html: Template
    text: Template | None


def available(directory: str | Path) -> set[str]:
    """Names of the templates in `directory` (each `<name>.html`; names starting with
    `_` are layouts for `{% extends %}`, not emails)."""
    return {p.stem for p in Path(directory).glob("*.html") if not p.stem.startswith("_")}


class Templates:
    """Compiles and renders the templates of one directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.env = Environment(
            loader=FileSystemLoader(str(self.directory)),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._text_env = Environment(undefined=StrictUndefined, autoescape=False)
        # name -> (file stamps when compiled, compiled): an edit in the console reaches
        # a running worker at its next render, without a restart. Layouts pulled in
        # with {% extends %} are reloaded by Jinja itself (auto_reload).
        self._cache: dict[str, tuple[tuple[float, ...], _Compiled]] = {}
        # Inside `batch()`: the names whose files were checked once already.
        self._checked: set[str] | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Check each template's files once for the whole block rather than at every
        render: a worker renders hundreds of emails per batch from a few templates."""
        self._checked = set()
        try:
            yield
        finally:
            self._checked = None

    def _stamps(self, name: str) -> tuple[float, ...]:
        stamps = []
        for suffix in (".html", ".txt"):
            try:
                stamps.append((self.directory / f"{name}{suffix}").stat().st_mtime)
            except FileNotFoundError:
                stamps.append(-1.0)
        return tuple(stamps)

    def _compile(self, name: str) -> _Compiled:
        cached = self._cache.get(name)
        checked = self._checked
        if cached is not None and checked is not None and name in checked:
            return cached[1]
        stamps = self._stamps(name)
        if checked is not None:
            checked.add(name)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        path = self.directory / f"{name}.html"
        if not path.exists():
            raise TemplateProblem(f"template '{name}' does not exist ({path.name} is missing)")
        source = path.read_text()
        match = FRONT_MATTER.match(source)
        if not match:
            raise TemplateProblem(
                f"template '{name}' must start with a --- block giving its subject"
            )
        try:
            meta = YAML(typ="safe").load(match.group(1)) or {}
        except YAMLError as exc:
            raise TemplateProblem(f"template '{name}': the --- block is not valid: {exc}") from None
        if not isinstance(meta, dict) or not meta.get("subject"):
            raise TemplateProblem(f"template '{name}': the --- block needs a subject line")
        body_offset = source[: match.end()].count("\n")
        try:
            html = self.env.from_string("\n" * body_offset + source[match.end() :])
            text_path = self.directory / f"{name}.txt"
            text = self._text_env.from_string(text_path.read_text()) if text_path.exists() else None
            compiled = _Compiled(
                subject=self._text_env.from_string(str(meta["subject"])),
                preheader=self._text_env.from_string(str(meta["preheader"]))
                if meta.get("preheader")
                else None,
                html=html,
                text=text,
            )
        except TemplateError as exc:
            raise TemplateProblem(f"template '{name}': {exc}") from None
        self._cache[name] = (stamps, compiled)
        return compiled

    def render(self, name: str, context: dict[str, Any]) -> Rendered:
        """The rendered email, or TemplateProblem naming what is wrong."""
        compiled = self._compile(name)
        try:
            subject = " ".join(compiled.subject.render(context).split())
            html = compiled.html.render(context)
            text = compiled.text.render(context) if compiled.text else html_to_text(html)
            preheader = compiled.preheader.render(context).strip() if compiled.preheader else None
        except TemplateError as exc:
            raise TemplateProblem(f"template '{name}': {exc}") from None
        return Rendered(subject=subject, html=html, text=text, preheader=preheader)

    def check(self, name: str) -> str | None:
        """Renders `name` against a sample contact; the problem, or None if it renders."""
        try:
            self.render(name, sample_context())
        except TemplateProblem as exc:
            return str(exc)
        return None


def sample_context() -> dict[str, Any]:
    contact = {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "timezone": "Europe/London",
        "locale": "en",
        "company": "Analytical Engines",
    }
    return {
        "contact": contact,
        "event": {"type": "sample", "properties": {}},
        "funnel": {"key": "sample", "name": "Sample funnel"},
        "stage": {"key": "sample"},
        "unsubscribe_url": "https://example.com/u/sample",
        "preferences_url": "https://example.com/p/sample",
    }


_HIDDEN = re.compile(r"<(style|script|head|title)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_LINK = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>""", re.S | re.I
)
_BLOCK = re.compile(r"</?(?:p|div|br|li|h[1-6]|tr|table|ul|ol)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")


def _link(match: re.Match[str]) -> str:
    href = next(g for g in match.groups()[:3] if g is not None)
    return f"{match.group(4)} ({href})"


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: paragraphs kept, links written out.

    Regular expressions rather than html.parser: this runs for every email without a
    .txt part, and the parser cost as much as rendering the template."""
    text = _HIDDEN.sub("", html)
    text = _LINK.sub(_link, text)
    text = _BLOCK.sub("\n", text)
    text = unescape(_TAG.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
