// SVG drawing for the report's charts: text, lines, markers, a plot frame with its ticks, a
// legend. Coordinates print with one decimal, so the same data gives the same bytes.
#pragma once
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "compare/ticks.h"

namespace gqa::report {

// A canvas coordinate: one decimal, never "-0.0".
std::string coord(double v);
std::string xml_escape(const std::string& text);
// Width of a line of text, estimated (no font metrics here): DejaVu/Helvetica average ~0.6 em.
double text_width(const std::string& text, double font_size);

enum class Shape { kCircle, kSquare, kTriangleUp, kDiamond, kTriangleDown, kStar };
// The path of a marker centred at (cx, cy) of radius about r.
std::string marker_path(Shape shape, double cx, double cy, double r);

class Svg {
 public:
  Svg(double width, double height) : width_(width), height_(height) {}
  std::ostringstream& body() { return body_; }

  void text(double x, double y, const std::string& text, double size, const std::string& attributes = "");
  void line(double x1, double y1, double x2, double y2, const std::string& attributes);
  void rect(double x, double y, double w, double h, const std::string& attributes);
  // A path with an optional tooltip (<title>, shown on hover by browsers).
  void path(const std::string& d, const std::string& attributes, const std::string& tooltip = "");
  std::string str() const;  // the whole document

 private:
  double width_, height_;
  std::ostringstream body_;
};

// A plot area with its axes' ticks; maps data to canvas coordinates.
struct Frame {
  double left, top, width, height;
  Ticks x, y;
  double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

constexpr double kTickFont = 11, kLabelFont = 13, kTitleFont = 17, kSubtitleFont = 12, kLegendFont = 12;

// Grid, ticks, tick labels, the frame and the axis labels (no y label when empty).
void draw_frame(Svg& svg, const Frame& f, const std::string& x_label, const std::string& y_label);
void draw_titles(Svg& svg, double x, const std::string& title, const std::string& subtitle);

// A legend entry: a heading when `swatch` is empty, else a sample drawn centred at (x, y).
struct LegendItem {
  std::string label;
  std::function<void(Svg&, double x, double y)> swatch;
};

double legend_width(const std::vector<LegendItem>& items);
double legend_height(const std::vector<LegendItem>& items);
void draw_legend(Svg& svg, double x, double y, const std::vector<LegendItem>& items);

}  // namespace gqa::report
