"""Click and open tracking in a rendered email: link rewriting and the open pixel.

Each `<a href>` to an http(s) URL becomes `PUBLIC_URL/l/<token>`, where the signed
token (app.tokens, kind "link") carries the contact, the message and the original
URL: the redirect can only ever lead to the URL it was minted for, so it is no
open redirect. Left alone: the recipient links (`/u/`, `/p/`, `/c/`), `mailto:`,
`tel:`, anchors, relative links and anything that is not plain http(s).

Only the value of the `href` attribute of `<a>` start tags changes; every other
byte of the HTML is kept. One regular expression walks the document as an HTML
tokenizer would, tag by tag: comments, `<script>` and `<style>` (where an `<a`
is not a link) and every other tag (an `<a` inside an attribute value is not a
tag) are stepped over whole. Within an `<a>` tag the attribute is found with the
pattern of the standard library's HTML parser. (html.parser itself found the same
links at four times the cost, as much as rendering the email took.)

The text part is not rewritten: its links stay as written (not tracked).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from urllib.parse import urlsplit

from app import tokens
from app.delivery.render import Rendered

# The recipient pages and our own tracking routes are never wrapped: unsubscribes
# are attributed through the token they already carry.
OWN_PATHS = ("/u/", "/p/", "/c/", "/l/", "/o/")
# The attribute pattern of html.parser (CPython's `attrfind_tolerant`), so we find
# exactly the attributes the parser reported.
_ATTR = re.compile(
    r"((?<=[\'\"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*(\'[^\']*\'|\"[^\"]*\"|(?![\'\"])[^>\s]*))?(?:\s|/(?!>))*"
)
_TAG_NAME = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*(?:\s|/(?!>))*")
# A start tag's body: anything but ">", where quoted values may hold ">".
# (Unrolled, "normal* (special normal*)*": one regex step per run of plain characters
# rather than one per character; this regex scans every email a funnel tracks.)
_TAG_BODY = r"""[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>"""
_TOKENS = re.compile(
    # Text and tags other than the four below, a whole run per match (fewer Python steps).
    r"(?:[^<]+|<(?!a[\s/>]|!--|script\b|style\b)(?:/?[a-zA-Z][^\s/>]*" + _TAG_BODY + r")?)+"
    r"|<!--.*?(?:-->|\Z)"  # a comment (also Outlook's conditional ones), or its unclosed rest
    r"|<(script|style)\b.*?(?:</\1\s*>|\Z)"  # raw text: no tags inside
    r"|(?P<a><a(?=[\s/>])" + _TAG_BODY + r")"  # a link's start tag
    r"|</?[a-zA-Z][^\s/>]*" + _TAG_BODY,  # any other tag, stepped over whole
    re.IGNORECASE | re.DOTALL,
)
PIXEL = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">'
)


@lru_cache(maxsize=4096)  # a template's links are the same in every email it renders
def safe_target(url: str) -> bool:
    """May a tracked link lead here? Absolute http(s) URLs with a host only; never
    `javascript:`, `data:` or anything with control characters or spaces."""
    if not url or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def trackable(url: str, public_url: str) -> bool:
    """Should this link be wrapped: a safe target that is not one of our own links."""
    base = public_url.rstrip("/")
    if any(url.startswith(base + path) for path in OWN_PATHS):
        return False  # (per recipient: checked before the cached safety check)
    return safe_target(url)


def _href_span(raw: str) -> tuple[int, int, str] | None:
    """Where the first href value sits in a raw start tag: (start, end, quote)."""
    head = _TAG_NAME.match(raw)
    k = head.end() if head else len(raw)
    while k < len(raw):
        m = _ATTR.match(raw, k)
        if not m:
            return None
        if m.group(1).lower() == "href" and m.group(2):
            value = m.group(3)
            quote = value[:1] if value[:1] in ("'", '"') and value[-1:] == value[:1] else ""
            start = m.start(3) + len(quote)
            return start, m.end(3) - len(quote), quote
        k = m.end()
    return None


def rewrite_links(source: str, wrap: Callable[[str], str | None]) -> str:
    """`source` with each `<a>`'s href replaced by `wrap(url)` (None: keep it as is).

    `url` is the decoded value (`&amp;` read as `&`), as a browser would follow it.
    """
    out: list[str] = []
    done = 0
    for token in _TOKENS.finditer(source):
        raw, offset = token.group("a"), token.start()
        span = _href_span(raw) if raw else None
        if raw is None or span is None:
            continue
        start, end, _quote = span
        new = wrap(html.unescape(raw[start:end]).strip())
        if new is None:
            continue
        out += [source[done : offset + start], html.escape(new, quote=True)]
        done = offset + end
    out.append(source[done:])
    return "".join(out)


def add_pixel(source: str, src: str) -> str:
    """`source` with a 1x1 image at the end of its body (or of the document)."""
    tag = PIXEL.format(src=html.escape(src, quote=True))
    at = source.lower().rfind("</body>")
    return source + tag if at < 0 else source[:at] + tag + source[at:]


def instrument(
    rendered: Rendered,
    *,
    public_url: str,
    secret_key: str,
    contact_id: int,
    message_id: int,
) -> Rendered:
    """The email with its links wrapped in signed redirects and an open pixel added."""
    base = public_url.rstrip("/")

    def wrap(url: str) -> str | None:
        if not trackable(url, base):
            return None
        token = tokens.make("link", secret_key, contact_id, message_id, url)
        return f"{base}/l/{token}"

    body = rewrite_links(rendered.html, wrap)
    pixel = tokens.make("open", secret_key, contact_id, message_id)
    return replace(rendered, html=add_pixel(body, f"{base}/o/{pixel}"))
