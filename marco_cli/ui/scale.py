"""One colour scale for confidences and values: red (0) -> yellow (0.5) -> green (1).

Token confidence c_i and a node's value (the mean c_i of its rollouts) live in
[0, 1], so the same scale reads the same everywhere: the tree, the summary and
the token heatmap. Colour is only ever a second channel: every coloured figure
is also printed as a number (or, in the heatmap, is the text itself), so
``NO_COLOR`` and piped output lose nothing but the tint.
"""

from __future__ import annotations

from rich.color import Color, blend_rgb
from rich.color_triplet import ColorTriplet
from rich.style import Style

# Saturated anchors, so that terminals with 16 or 256 colours (rich downgrades
# to the nearest) still step red -> yellow -> green instead of greys and whites.
_RED = ColorTriplet(220, 0, 0)
_YELLOW = ColorTriplet(220, 200, 0)
_GREEN = ColorTriplet(0, 190, 0)


def confidence_color(value: float) -> Color:
    """The scale's colour at ``value`` (clamped to [0, 1])."""
    x = min(1.0, max(0.0, float(value)))
    rgb = blend_rgb(_RED, _YELLOW, x / 0.5) if x < 0.5 else blend_rgb(_YELLOW, _GREEN, (x - 0.5) / 0.5)
    return Color.from_triplet(rgb)


def confidence_style(value: float | None) -> Style:
    """Style for a confidence; ``None`` (forced tokens, unvisited nodes) is dim."""
    if value is None:
        return Style(dim=True)
    return Style(color=confidence_color(value))


def figure(value: float | None) -> str:
    """Four characters wide, so siblings' figures line up: ``0.73`` or `` -- ``."""
    return " -- " if value is None else f"{value:.2f}"
