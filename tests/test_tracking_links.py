"""Link rewriting and the open pixel in rendered HTML (pure: no database, no app)."""

from __future__ import annotations

import re

import pytest

from app import tokens
from app.delivery.render import Rendered
from app.delivery.tracking import add_pixel, instrument, rewrite_links, safe_target, trackable

PUBLIC = "https://mail.example.org"
SECRET = "test-secret"


def wrap_all(url: str) -> str | None:
    return f"W({url})" if url.startswith("https://example.com") else None


def test_it_changes_only_the_href_values_of_links():
    source = (
        "<!doctype html>\r\n<html><body>\r\n"
        '<p>Hi,\t<A class="b" HREF=\'https://example.com/a?x=1&amp;y=2\' style="x">one</A></p>\n'
        "<a\n   title='href=\"https://example.com/fake\"' href=https://example.com/b>two</a>\n"
        '<a href = "https://example.com/c" />é\n'
        "</body></html>\n"
    )
    expected = (
        source.replace("https://example.com/a?x=1&amp;y=2", "W(https://example.com/a?x=1&amp;y=2)")
        .replace("href=https://example.com/b", "href=W(https://example.com/b)")
        .replace('"https://example.com/c"', '"W(https://example.com/c)"')
    )
    assert rewrite_links(source, wrap_all) == expected


def test_it_leaves_links_in_comments_scripts_and_styles_alone():
    source = (
        '<!-- <a href="https://example.com/commented">x</a> -->'
        "<script>var a = '<a href=\"https://example.com/script\">';</script>"
        '<style>a[href="https://example.com/style"] {}</style>'
        '<a href="https://example.com/real">real</a>'
    )
    out = rewrite_links(source, wrap_all)
    assert out == source.replace('"https://example.com/real"', '"W(https://example.com/real)"')


def test_it_does_not_take_text_inside_an_attribute_or_an_unclosed_comment_for_a_link():
    source = (
        '<img alt="<a href=\'https://example.com/alt\'>" src="x.png">'
        '<p>1 < 2 and <a href="https://example.com/real">real</a></p>'
        '<!-- never closed <a href="https://example.com/commented">'
    )
    out = rewrite_links(source, wrap_all)
    assert out == source.replace('"https://example.com/real"', '"W(https://example.com/real)"')


def test_it_rewrites_only_the_first_href_of_a_tag_and_escapes_what_it_writes():
    source = '<a href="https://example.com/1" href="https://example.com/2">x</a>'
    out = rewrite_links(source, lambda url: f'{url}?a=1&b="2"')
    assert out == (
        '<a href="https://example.com/1?a=1&amp;b=&quot;2&quot;" href="https://example.com/2">x</a>'
    )


def test_it_passes_the_decoded_url_to_be_wrapped():
    seen: list[str] = []
    rewrite_links('<a href=" https://example.com/?q=a&amp;r=&#98;">x</a>', lambda u: seen.append(u))
    assert seen == ["https://example.com/?q=a&r=b"]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "http://example.com/path?q=1#frag",
        "HTTPS://Example.COM/x",
    ],
)
def test_it_takes_http_and_https_urls_as_safe_targets(url):
    assert safe_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>1</script>",
        "mailto:ada@example.com",
        "tel:+441234",
        "#top",
        "/relative",
        "//example.com/x",
        "https:///no-host",
        "https://exa mple.com/",
        "https://example.com/\nLocation: x",
        "ftp://example.com/file",
        "",
        "https://[::1/",
    ],
)
def test_it_refuses_anything_else_as_a_target(url):
    assert not safe_target(url)


def test_it_does_not_track_the_recipient_links_or_its_own():
    for path in ("/u/tok", "/p/tok", "/c/tok", "/l/tok", "/o/tok"):
        assert not trackable(PUBLIC + path, PUBLIC + "/")
    assert trackable(PUBLIC + "/blog/post", PUBLIC)
    assert trackable("https://example.com/u/tok", PUBLIC)


def test_it_puts_the_pixel_at_the_end_of_the_body_or_the_document():
    assert add_pixel("<html><BODY>x</BODY></html>", "https://t/o/1").startswith(
        '<html><BODY>x<img src="https://t/o/1" width="1" height="1"'
    )
    assert add_pixel("<p>x</p>", "https://t/o/1").startswith('<p>x</p><img src="https://t/o/1"')


def rendered(html: str) -> Rendered:
    return Rendered(subject="s", html=html, text="t")


def test_it_instruments_an_email_with_signed_links_and_a_pixel():
    html = (
        "<html><body>"
        '<a href="https://example.com/videos/explainer-1">watch</a>'
        f'<a href="{PUBLIC}/u/unsub-token">unsubscribe</a>'
        f'<a href="{PUBLIC}/p/pref-token">preferences</a>'
        '<a href="mailto:hello@example.com">mail</a><a href="#top">top</a>'
        '<a href="javascript:alert(1)">js</a>'
        "</body></html>"
    )
    out = instrument(
        rendered(html), public_url=PUBLIC + "/", secret_key=SECRET, contact_id=7, message_id=42
    )

    [link] = re.findall(rf'href="{PUBLIC}/l/([^"]+)"', out.html)
    assert tokens.read("link", link, SECRET) == tokens.TokenData(
        7, 42, "https://example.com/videos/explainer-1"
    )
    [pixel] = re.findall(rf'<img src="{PUBLIC}/o/([^"]+)"', out.html)
    assert tokens.read("open", pixel, SECRET) == tokens.TokenData(7, 42)
    for untouched in (
        f"{PUBLIC}/u/unsub-token",
        f"{PUBLIC}/p/pref-token",
        "mailto:hello@example.com",
        "#top",
        "javascript:alert(1)",
    ):
        assert f'href="{untouched}"' in out.html
    assert (out.subject, out.text) == ("s", "t")


def test_it_signs_with_the_current_key_so_links_survive_a_rotation():
    out = instrument(
        rendered('<a href="https://example.com/">x</a>'),
        public_url=PUBLIC,
        secret_key="new",
        contact_id=1,
        message_id=2,
    )
    [link] = re.findall(rf'href="{PUBLIC}/l/([^"]+)"', out.html)
    assert tokens.read("link", link, "new") is not None
    assert tokens.read("link", link, "old") is None
