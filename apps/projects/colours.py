"""Readable text on a label's colour, by WCAG 2.x contrast.

A manager picks any colour for a label; a selected label is drawn filled with it, so its
name must be black or white, whichever contrasts more. The better of the two always
reaches at least 4.58:1 (the two ratios are equal where the colour's relative luminance
is about 0.18), so the choice alone meets WCAG's 4.5:1 for text. Unselected, a label is
its colour's outline and dot on a white card, which needs 3:1 for a graphical object
(WCAG 1.4.11): a pale colour below that is hard to see, and the labels page says so.
"""

import re

BLACK = "#000000"
WHITE = "#ffffff"
# The cards labels are drawn on (static/css/quorum.css: --surface).
CARD = "#ffffff"
OBJECT_CONTRAST = 3.0
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def relative_luminance(colour: str) -> float:
    """WCAG relative luminance of a ``#rrggbb`` colour, 0 (black) to 1 (white)."""
    if not _HEX.match(colour):
        raise ValueError(f"Not a #rrggbb colour: {colour!r}")
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """(lighter + 0.05) / (darker + 0.05): 1 for the same colour, 21 for black on white."""
    a, b = relative_luminance(first), relative_luminance(second)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def text_colour_on(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    return BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE


def hard_to_see(colour: str) -> bool:
    """Whether a label's colour drawn on a card (its outline, its dot) falls below 3:1."""
    return contrast_ratio(colour, CARD) < OBJECT_CONTRAST
