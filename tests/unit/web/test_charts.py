"""The console's SVG charts: well-formed, described, scaled by their viewBox, every label escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from agent.web import charts

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>&\""


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def test_a_burn_up_is_a_described_image_of_its_numbers() -> None:
    days = ["2026-12-01", "2026-12-02", "2026-12-03"]
    root = _parse(charts.burn_up("b", "Done", "3 of 10 done", days, [1, 1, 3], 10, [1, 0, 2]))
    assert root.get("role") == "img" and root.get("viewBox") == "0 0 720 280"
    assert root.get("aria-labelledby") == "b-title b-desc"
    assert root.find(f"{NS}title").text == "Done" and root.find(f"{NS}desc").text == "3 of 10 done"  # type: ignore
    line = root.find(f".//{NS}polyline")
    assert line is not None
    points = [tuple(map(float, point.split(","))) for point in (line.get("points") or "").split()]
    assert len(points) == 3 and points[0][1] == points[1][1] > points[2][1]  # flat, then up (SVG y grows down)
    target = root.find(f".//{NS}g[@class='target']/{NS}line")
    assert target is not None and float(target.get("y1") or 0) < points[2][1]  # the total is above the line
    bars = root.findall(f".//{NS}g[@class='series-1 daily']/{NS}rect")
    assert len(bars) == 2  # a day with none draws no bar
    texts = [element.text for element in root.iter(f"{NS}text")]
    assert "programme total 10" in texts and "3" in texts and "12-01" in texts


def test_stacked_bars_are_proportional_and_labels_are_escaped() -> None:
    svg = charts.stacked_bars("s", HOSTILE, HOSTILE, [HOSTILE, "b"], [("ok", [3, 1]), (HOSTILE, [1, 0])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = _parse(svg)
    assert root.find(f"{NS}title").text == HOSTILE  # type: ignore[union-attr]  # the text, as text
    first = [rect for group in root.findall(f"{NS}g") for rect in group.findall(f"{NS}rect")
             if (rect.findtext(f"{NS}title") or "").startswith(HOSTILE + ":")]
    widths = [float(rect.get("width") or 0) for rect in first]
    assert len(widths) == 2 and abs(widths[0] / widths[1] - 3.0) < 0.01
    legend = [element.text for element in root.iter(f"{NS}text")]
    assert "ok" in legend and HOSTILE in legend


def test_bars_write_their_values_and_an_empty_chart_is_still_an_image() -> None:
    root = _parse(charts.bars("h", "Hours", "none", ["held", "sanitised"], [2.5, 0], unit=" h"))
    assert [element.text for element in root.iter(f"{NS}text") if (element.text or "").endswith(" h")] == [
        "2.5 h", "0 h"]
    empty = _parse(charts.stacked_bars("e", "Nothing", "no jobs", [], []))
    assert empty.get("role") == "img" and empty.find(f"{NS}desc").text == "no jobs"  # type: ignore[union-attr]
