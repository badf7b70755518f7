"""The committed catalogs cover every string of the recipient pages, in every language,
keep their placeholders, and the compiled .mo files match their .po sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app.i18n import LOCALES, normalize

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> set[str]:
    """The strings pybabel finds with babel.cfg, as `pybabel extract -k _l` would."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found = extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords)
    return {str(message) for _file, _line, message, _comments, _context in found}


def catalog(locale: str, suffix: str) -> Catalog:
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / f"messages.{suffix}", "rb") as f:
        return read_po(f, locale=locale) if suffix == "po" else read_mo(f)


def translations(cat: Catalog) -> dict[str, str]:
    return {str(m.id): str(m.string) for m in cat if m.id and not m.fuzzy}


def test_it_finds_the_strings_of_the_recipient_pages() -> None:
    strings = extracted()

    assert {
        "Your email preferences",
        "Unsubscribe",
        "At most one email a week",
        "This link does not work",
    } <= strings


@pytest.mark.parametrize("locale", [code for code in LOCALES if code != "en"])
def test_it_translates_every_string(locale: str) -> None:
    po = translations(catalog(locale, "po"))

    missing = sorted(s for s in extracted() if not po.get(s))
    assert missing == []
    for source, translated in po.items():
        assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(translated)), (
            source
        )


@pytest.mark.parametrize("locale", [code for code in LOCALES if code != "en"])
def test_it_ships_compiled_catalogs_that_match_their_sources(locale: str) -> None:
    assert translations(catalog(locale, "mo")) == translations(catalog(locale, "po"))


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("de", "de"),
        ("de-AT", "de"),
        ("fr_CA", "fr"),
        ("ES", "es"),
        ("en-US", "en"),
        ("ja", None),
        ("", None),
        (None, None),
    ],
)
def test_it_maps_a_contacts_locale_to_a_language_we_have(
    tag: str | None, language: str | None
) -> None:
    assert normalize(tag) == language
