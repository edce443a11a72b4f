"""The shared stylesheet's colours meet WCAG 2.1 AA (4.5:1 for text) in every pair the console uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[3] / "agent" / "web" / "static" / "console.css").read_text()


def variables() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", CSS)
    assert root, "console.css has no :root block"
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", root.group(1)))


def luminance(colour: str) -> float:
    channels = [int(colour[index:index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_is_computed_as_wcag_defines_it() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("text", "background"), [
    ("fg", "bg"), ("muted", "bg"), ("accent", "bg"),  # body text, secondary text, links
    ("fg", "ok"), ("fg", "bad"), ("fg", "warn"), ("fg", "busy"), ("fg", "idle"),  # text on a state's colour
])
def test_text_on_the_shared_colours_is_readable(text: str, background: str) -> None:
    colours = variables()
    assert contrast(colours[text], colours[background]) >= 4.5, (text, background)


@pytest.mark.parametrize(("text", "background"), [
    ("#ffab91", "bg"),     # .problem
    ("fg", "#263238"),     # buttons
    ("fg", "#1c252d"),     # table headers
    ("#000000", "#ffd54f"),  # the skip link
])
def test_the_literal_colours_are_readable(text: str, background: str) -> None:
    colours = variables()
    assert contrast(colours.get(text, text), colours.get(background, background)) >= 4.5


def test_the_focus_ring_stands_out_from_the_page() -> None:
    assert "outline: 3px solid #ffd54f" in CSS
    assert contrast("#ffd54f", variables()["bg"]) >= 3.0  # WCAG 1.4.11: non-text contrast
