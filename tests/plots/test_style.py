"""One look everywhere: fixed, colour-blind-safe stack colours; atomic saves."""

from __future__ import annotations

import colorsys
from pathlib import Path

import matplotlib.colors as mcolors
import pytest

from spark_harness.plots import style


def _hls(colour: str) -> tuple[float, float, float]:
    return colorsys.rgb_to_hls(*mcolors.to_rgb(colour))


def test_stacks_a_and_b_have_fixed_okabe_ito_colours():
    assert style.stack_colour("A") == style.OKABE_ITO["blue"]
    assert style.stack_colour("B") == style.OKABE_ITO["vermillion"]
    # blue vs vermillion: apart in lightness as well as hue, so they survive greyscale
    assert abs(_hls(style.stack_colour("A"))[1] - _hls(style.stack_colour("B"))[1]) > 0.05


def test_b_modes_are_tints_of_b_ordered_by_lightness():
    b_hue = _hls(style.stack_colour("B"))[0]
    modes = [_hls(style.stack_colour(m)) for m in ("B0", "B1", "B2")]
    assert all(abs(h - b_hue) < 0.02 for h, _, _ in modes)  # the same hue: variants of B
    lightness = [light for _, light, _ in modes]
    assert lightness[0] > lightness[1] > lightness[2]  # B0 palest ... B2 = B
    assert style.stack_colour("B2") == style.stack_colour("B")
    # and told apart by hatch as well, not by colour alone
    assert len({style.STACK_HATCHES[m] for m in ("B0", "B1", "B2")}) == 3


def test_other_stack_names_get_a_stable_palette_colour():
    colour = style.stack_colour("C-custom")
    assert colour == style.stack_colour("C-custom")
    assert colour in style.OKABE_ITO.values()
    assert colour not in (style.stack_colour("A"), style.stack_colour("B"))


def test_tint_mixes_with_white():
    assert style.tint("#000000", 0.0) == "#000000"
    assert style.tint("#000000", 1.0) == "#ffffff"
    assert style.tint("#000000", 0.5) == "#808080"


def test_save_writes_png_and_svg_and_redraws_identically(tmp_path: Path):
    def draw() -> tuple[bytes, bytes]:
        with style.styled():
            fig, axes = style.new_figure(1)
            axes[0].plot([1, 2, 3], [3, 1, 2], color=style.stack_colour("A"))
            axes[0].set_xlabel("x (s)")
            style.save(fig, tmp_path / "f.png", tmp_path / "f.svg")
        return (tmp_path / "f.png").read_bytes(), (tmp_path / "f.svg").read_bytes()

    first = draw()
    assert first[0].startswith(b"\x89PNG") and b"<svg" in first[1]
    assert draw() == first  # no timestamps or random ids: equal data, equal files
    assert not list(tmp_path.glob(".*.part"))  # no temporary left behind


def test_save_leaves_no_file_when_drawing_fails(tmp_path: Path):
    with style.styled():
        fig, axes = style.new_figure(1)
        axes[0].text(0.5, 0.5, r"$\badcommand$")  # mathtext fails at draw time
        with pytest.raises(ValueError):
            style.save(fig, tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []
