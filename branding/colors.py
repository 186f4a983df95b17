"""Colour contrast as WCAG 2 defines it, to keep a reseller's accent colour readable."""

import re

HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
WHITE = "#ffffff"
# Text needs 4.5:1 against its background (WCAG 2, level AA, normal-size text).
MIN_TEXT_CONTRAST = 4.5


def _channel(value):
    value /= 255
    return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4


def relative_luminance(hex_color):
    red, green, blue = (int(hex_color[index:index + 2], 16) for index in (1, 3, 5))
    return 0.2126 * _channel(red) + 0.7152 * _channel(green) + 0.0722 * _channel(blue)


def contrast_ratio(first, second):
    """From 1 (the same) to 21 (black on white)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
