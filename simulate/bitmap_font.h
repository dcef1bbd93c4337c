// A 5x7 bitmap font (digits, capital letters, a little punctuation) for plot
// labels. Lower-case letters are drawn as capitals; anything else as a box.
#pragma once

#include <string>

#include "simulate/png_image.h"

namespace cleave::simulate {

constexpr int kGlyphWidth = 5, kGlyphHeight = 7;

// Draws `text` with its top-left corner at (x, y), each font pixel a
// `scale` x `scale` block, one font pixel between characters.
void draw_text(Image& image, int x, int y, const std::string& text, Rgb color, int scale = 1);
// Drawn width of `text` in pixels.
int text_width(const std::string& text, int scale = 1);
// The text drawn bottom to top (for a y-axis label), its top-left at (x, y).
void draw_text_vertical(Image& image, int x, int y, const std::string& text, Rgb color, int scale = 1);

}  // namespace cleave::simulate
