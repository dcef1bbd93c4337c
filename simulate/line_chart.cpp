#include "simulate/line_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "simulate/bitmap_font.h"

namespace cleave::simulate {
namespace {

constexpr Rgb kInk{30, 30, 30};
constexpr Rgb kGrid{225, 225, 225};
constexpr int kScale = 2;                       // font pixels are 2x2
constexpr int kLeft = 110, kRight = 24, kTop = 44, kBottom = 64;

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  void pad() {   // a flat series still gets a visible range
    if (empty()) {
      lo = 0;
      hi = 1;
    } else if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
      const double d = std::max(std::abs(hi) * 0.05, 1e-6);
      lo -= d;
      hi += d;
    }
  }
};

void draw_panel(Image& image, const Panel& panel, int top, int width, int height) {
  const int x0 = kLeft, x1 = width - kRight;
  const int y0 = top + kTop, y1 = top + height - kBottom;
  Range xs, ys;
  for (const Series& s : panel.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xs.add(s.x[i]);
      ys.add(s.y[i]);
    }
  }
  const bool no_data = xs.empty();
  xs.pad();
  ys.pad();
  const std::vector<double> x_ticks = nice_ticks(xs.lo, xs.hi);
  const std::vector<double> y_ticks = nice_ticks(ys.lo, ys.hi);
  // The axes span the outer ticks so every label sits on the frame.
  const double xlo = std::min(xs.lo, x_ticks.front()), xhi = std::max(xs.hi, x_ticks.back());
  const double ylo = std::min(ys.lo, y_ticks.front()), yhi = std::max(ys.hi, y_ticks.back());
  auto px = [&](double v) { return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0); };
  auto py = [&](double v) { return y1 - (v - ylo) / (yhi - ylo) * (y1 - y0); };

  const int glyph_h = kGlyphHeight * kScale;
  for (double t : y_ticks) {
    const int y = static_cast<int>(std::lround(py(t)));
    image.line(x0, y, x1, y, kGrid);
    image.line(x0 - 6, y, x0, y, kInk);
    const std::string label = tick_label(t);
    draw_text(image, x0 - 10 - text_width(label, kScale), y - glyph_h / 2, label, kInk, kScale);
  }
  for (double t : x_ticks) {
    const int x = static_cast<int>(std::lround(px(t)));
    image.line(x, y0, x, y1, kGrid);
    image.line(x, y1, x, y1 + 6, kInk);
    const std::string label = tick_label(t);
    draw_text(image, x - text_width(label, kScale) / 2, y1 + 10, label, kInk, kScale);
  }
  image.line(x0, y0, x0, y1, kInk, 2);
  image.line(x0, y1, x1, y1, kInk, 2);
  image.line(x0, y0, x1, y0, kInk);
  image.line(x1, y0, x1, y1, kInk);

  draw_text(image, (x0 + x1 - text_width(panel.title, kScale)) / 2, top + 14, panel.title, kInk, kScale);
  draw_text(image, (x0 + x1 - text_width(panel.x_label, kScale)) / 2, y1 + 34, panel.x_label, kInk, kScale);
  draw_text_vertical(image, 12, (y0 + y1 - text_width(panel.y_label, kScale)) / 2, panel.y_label, kInk, kScale);
  if (no_data) {
    draw_text(image, (x0 + x1 - text_width("no data", kScale)) / 2, (y0 + y1) / 2, "no data", kInk, kScale);
    return;
  }

  for (const Series& s : panel.series) {
    bool has_last = false;
    double lx = 0, ly = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        has_last = false;
        continue;
      }
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (has_last) image.line(lx, ly, x, y, s.color, 2);
      const int cx = static_cast<int>(std::lround(x)), cy = static_cast<int>(std::lround(y));
      image.fill(cx - 2, cy - 2, cx + 2, cy + 2, s.color);
      lx = x;
      ly = y;
      has_last = true;
    }
  }

  // Legend: in the top corner (right, else left) that covers fewer points.
  int legend_w = 0;
  for (const Series& s : panel.series) legend_w = std::max(legend_w, text_width(s.name, kScale));
  const int line_h = glyph_h + 6;
  const int box_w = legend_w + 52, box_h = 8 + line_h * static_cast<int>(panel.series.size());
  auto covered = [&](int left) {
    int n = 0;
    for (const Series& s : panel.series) {
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        const double x = px(s.x[i]), y = py(s.y[i]);
        n += x >= left - 8 && x <= left + box_w + 8 && y >= y0 && y <= y0 + box_h + 8;
      }
    }
    return n;
  };
  const int right = x1 - box_w - 4, left_corner = x0 + 10;
  const int lx = covered(right) <= covered(left_corner) ? right : left_corner;
  image.fill(lx, y0 + 4, lx + box_w, y0 + 4 + box_h, {255, 255, 255});
  for (size_t i = 0; i < panel.series.size(); ++i) {
    const int ly = y0 + 8 + static_cast<int>(i) * line_h;
    image.line(lx + 6, ly + glyph_h / 2, lx + 34, ly + glyph_h / 2, panel.series[i].color, 3);
    draw_text(image, lx + 42, ly, panel.series[i].name, kInk, kScale);
  }
}

}  // namespace

Rgb series_color(size_t index) {
  static const Rgb kPalette[] = {{31, 119, 180}, {214, 39, 40},  {44, 160, 44},  {255, 127, 14},
                                 {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};
  return kPalette[index % (sizeof kPalette / sizeof kPalette[0])];
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  const double first = std::floor(lo / step) * step;
  for (double t = first; t <= hi + step * 0.999; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (ticks.size() > 50) break;
  }
  return ticks;
}

std::string tick_label(double value) {
  char buf[32];
  if (value != 0 && (std::abs(value) >= 1e6 || std::abs(value) < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.2g", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", value);
  }
  return buf;
}

Image render_chart(const std::vector<Panel>& panels, int width, int panel_height) {
  Image image(width, panel_height * static_cast<int>(std::max<size_t>(1, panels.size())));
  for (size_t i = 0; i < panels.size(); ++i) {
    draw_panel(image, panels[i], static_cast<int>(i) * panel_height, width, panel_height);
  }
  return image;
}

}  // namespace cleave::simulate
