"""What a tile says is the daemon's word: pull advice as given, unknown while unreachable, text escaped."""

from __future__ import annotations

from pathlib import Path

from agent.web.station import _render_tile, allowed_profiles, build_tile, build_wall, grid_for
from tests.integration.web.station_kit import bay, station_config


def test_the_pull_advice_is_the_daemon_s_and_a_contradiction_is_never_shown_safe() -> None:
    running = build_tile(bay("bay-1", "running", progress=0.42), None)
    assert (running.pull, running.pull_text, running.percent_text) == ("danger", "DO NOT PULL", "42.0 %")
    odd = bay("bay-1", "sanitised", pull="do not pull")  # whatever the state, the daemon's advice stands
    assert build_tile(odd, None).pull_text == "DO NOT PULL"
    contradiction = {**bay("bay-1", "present"), "safe_to_pull": False}
    assert build_tile(contradiction, None).pull_text == "ASK BEFORE PULLING"
    assert build_tile(bay("bay-1", "empty"), None).pull_text == ""  # an empty bay advises nothing


def test_a_never_wiped_drive_reads_not_sanitised_and_an_unreachable_daemon_unknown() -> None:
    present = build_tile(bay("bay-1", "present"), None)
    assert present.label == "Not sanitised" and present.pull == "safe"
    wall = build_wall({"bays": [bay("bay-1", "sanitised")]}, None, connected=False, problem="no socket")
    tile = wall.tiles[0]
    assert (tile.state, tile.pull, tile.label) == ("unknown", "unknown", "Unknown") and not tile.active
    assert wall.banner == "daemon restarting… reconnecting (no socket)"


def test_firmware_text_is_escaped_and_only_configured_profiles_are_offered(tmp_path: Path) -> None:
    config = station_config(tmp_path / "api.sock", 2)
    hostile = bay("bay-1", "present", serial='<img src=x onerror="alert(1)">')
    hostile["drive"]["model"] = "<script>alert(1)</script>"
    html = _render_tile(build_tile(hostile, config), None)
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert allowed_profiles(config, "bay-1", "ssd") == ("nist-purge",)  # the default for the media
    assert allowed_profiles(config, "bay-9", "ssd") == ()


def test_every_wall_up_to_24_bays_fits_one_screen_of_at_most_six_columns() -> None:
    for count in range(1, 25):
        columns, rows = grid_for(count)
        assert columns * rows >= count and columns <= 6 and rows <= 4, count


def _luminance(colour: str) -> float:
    channels = [int(colour[index:index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_every_tile_and_pull_colour_pair_in_wall_css_has_a_contrast_of_at_least_4_5() -> None:
    import re

    from agent.web.server import STATIC

    css = (STATIC / "wall.css").read_text()
    rules = re.findall(r"((?:\.(?:state|pull)-[a-z]+(?:,\s*)?)+)\s*\{([^}]*)\}", css)
    checked = set()
    for selectors, body in rules:
        background = re.search(r"background:\s*(#[0-9a-f]{6})", body)
        text = re.search(r"(?<!-)color:\s*(#[0-9a-f]{6})", body)
        assert background, selectors
        foreground = text.group(1) if text else "#ffffff"  # .tile's own colour
        lighter, darker = sorted((_luminance(background.group(1)), _luminance(foreground)), reverse=True)
        ratio = (lighter + 0.05) / (darker + 0.05)
        assert ratio >= 4.5, f"{selectors}: {foreground} on {background.group(1)} is {ratio:.2f}:1"
        checked.update(name.strip() for name in selectors.split(","))
    from agent.web.station import STATES

    assert {f".state-{state}" for state in STATES} <= checked  # every state has its colours, and they pass
    assert {".pull-safe", ".pull-danger", ".pull-unknown"} <= checked
