// Minimal line charts for the run directory's plot.png: panels stacked
// vertically, each with axes, "nice" ticks labelled in the bitmap font, a
// title, axis labels and a legend.
#pragma once

#include <string>
#include <vector>

#include "simulate/png_image.h"

namespace cleave::simulate {

struct Series {
  std::string name;
  Rgb color;
  std::vector<double> x, y;     // same length; drawn in order, with a marker per point
};

struct Panel {
  std::string title;
  std::string x_label, y_label;
  std::vector<Series> series;
};

// A palette that tells lines apart on white.
Rgb series_color(size_t index);

// The tick values for [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// A tick label: "0", "2.5", "1200", "1.5e+06".
std::string tick_label(double value);

// Renders the panels `width` pixels wide, each `panel_height` high. A panel
// without points draws its axes and the words "no data".
Image render_chart(const std::vector<Panel>& panels, int width = 960, int panel_height = 380);

}  // namespace cleave::simulate
