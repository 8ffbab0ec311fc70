#include "compare/svg.h"

#include <algorithm>
#include <cmath>

#include "core/format.h"

namespace gqa::report {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kLegendRow = 20, kLegendSwatch = 34, kLegendPadding = 10;

}  // namespace

std::string coord(double v) {
  std::string text = string_printf("%.1f", v);
  return text == "-0.0" ? "0.0" : text;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

// Width of a line of text, estimated (no font metrics here): DejaVu/Helvetica average ~0.6 em.
double text_width(const std::string& text, double font_size) {
  const auto characters =
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  return 0.6 * font_size * double(characters);
}

std::string marker_path(Shape shape, double cx, double cy, double r) {
  const auto p = [](double x, double y) { return coord(x) + "," + coord(y); };
  switch (shape) {
    case Shape::kCircle:
      return "M" + p(cx - r, cy) + " a" + coord(r) + "," + coord(r) + " 0 1,0 " + coord(2 * r) + ",0 a" + coord(r) +
             "," + coord(r) + " 0 1,0 " + coord(-2 * r) + ",0Z";
    case Shape::kSquare: {
      const double s = 0.85 * r;
      return "M" + p(cx - s, cy - s) + " L" + p(cx + s, cy - s) + " L" + p(cx + s, cy + s) + " L" + p(cx - s, cy + s) +
             "Z";
    }
    case Shape::kTriangleUp:
      return "M" + p(cx, cy - 1.2 * r) + " L" + p(cx + 1.1 * r, cy + 0.8 * r) + " L" + p(cx - 1.1 * r, cy + 0.8 * r) +
             "Z";
    case Shape::kTriangleDown:
      return "M" + p(cx, cy + 1.2 * r) + " L" + p(cx + 1.1 * r, cy - 0.8 * r) + " L" + p(cx - 1.1 * r, cy - 0.8 * r) +
             "Z";
    case Shape::kDiamond:
      return "M" + p(cx, cy - 1.25 * r) + " L" + p(cx + 1.05 * r, cy) + " L" + p(cx, cy + 1.25 * r) + " L" +
             p(cx - 1.05 * r, cy) + "Z";
    case Shape::kStar: {
      std::string d;
      for (int i = 0; i < 10; ++i) {
        const double angle = kPi * i / 5 - kPi / 2, radius = i % 2 ? 0.6 * r : 1.5 * r;
        d += (i ? " L" : "M") + p(cx + radius * std::cos(angle), cy + radius * std::sin(angle));
      }
      return d + "Z";
    }
  }
  return "";
}

void Svg::text(double x, double y, const std::string& text, double size, const std::string& attributes) {
  body_ << "<text x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" font-size=\"" << coord(size) << "\""
        << (attributes.empty() ? "" : " " + attributes) << ">" << xml_escape(text) << "</text>\n";
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& attributes) {
  body_ << "<line x1=\"" << coord(x1) << "\" y1=\"" << coord(y1) << "\" x2=\"" << coord(x2) << "\" y2=\"" << coord(y2)
        << "\" " << attributes << "/>\n";
}

void Svg::rect(double x, double y, double w, double h, const std::string& attributes) {
  body_ << "<rect x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" width=\"" << coord(w) << "\" height=\"" << coord(h)
        << "\" " << attributes << "/>\n";
}

void Svg::path(const std::string& d, const std::string& attributes, const std::string& tooltip) {
  body_ << "<path d=\"" << d << "\" " << attributes;
  if (tooltip.empty())
    body_ << "/>\n";
  else
    body_ << "><title>" << xml_escape(tooltip) << "</title></path>\n";
}

std::string Svg::str() const {
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << coord(width_) << "\" height=\"" << coord(height_)
      << "\" viewBox=\"0 0 " << coord(width_) << " " << coord(height_)
      << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
      << body_.str() << "</svg>\n";
  return out.str();
}

void draw_frame(Svg& svg, const Frame& f, const std::string& x_label, const std::string& y_label) {
  svg.body() << "<g class=\"axes\">\n";
  double widest_y_tick = 0;
  for (double v : f.x.values) {
    const double x = f.px(v);
    svg.line(x, f.top, x, f.top + f.height, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    svg.line(x, f.top + f.height, x, f.top + f.height + 5, "stroke=\"#444\" stroke-width=\"1\"");
    svg.text(x, f.top + f.height + 18, f.x.label(v), kTickFont, "text-anchor=\"middle\" fill=\"#333\"");
  }
  for (double v : f.y.values) {
    const double y = f.py(v);
    svg.line(f.left, y, f.left + f.width, y, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    svg.line(f.left - 5, y, f.left, y, "stroke=\"#444\" stroke-width=\"1\"");
    svg.text(f.left - 8, y + 4, f.y.label(v), kTickFont, "text-anchor=\"end\" fill=\"#333\"");
    widest_y_tick = std::max(widest_y_tick, text_width(f.y.label(v), kTickFont));
  }
  svg.rect(f.left, f.top, f.width, f.height, "fill=\"none\" stroke=\"#444\" stroke-width=\"1\"");
  svg.text(f.left + f.width / 2, f.top + f.height + 42, x_label, kLabelFont, "text-anchor=\"middle\" fill=\"#222\"");
  if (!y_label.empty()) {
    const double x = f.left - 8 - widest_y_tick - 14;
    const double y = f.top + f.height / 2;
    svg.text(x, y, y_label, kLabelFont,
             "text-anchor=\"middle\" fill=\"#222\" transform=\"rotate(-90 " + coord(x) + " " + coord(y) + ")\"");
  }
  svg.body() << "</g>\n";
}

void draw_titles(Svg& svg, double x, const std::string& title, const std::string& subtitle) {
  svg.text(x, 28, title, kTitleFont, "font-weight=\"bold\" fill=\"#111\"");
  if (!subtitle.empty()) svg.text(x, 48, subtitle, kSubtitleFont, "fill=\"#555\"");
}

double legend_width(const std::vector<LegendItem>& items) {
  double widest = 0;
  for (const LegendItem& item : items)
    widest = std::max(widest, text_width(item.label, kLegendFont) + (item.swatch ? kLegendSwatch : 0));
  return widest + 2 * kLegendPadding;
}

double legend_height(const std::vector<LegendItem>& items) {
  return double(items.size()) * kLegendRow + 2 * kLegendPadding - 4;
}

void draw_legend(Svg& svg, double x, double y, const std::vector<LegendItem>& items) {
  svg.body() << "<g class=\"legend\">\n";
  svg.rect(x, y, legend_width(items), legend_height(items),
           "fill=\"#fafafa\" stroke=\"#ccc\" stroke-width=\"1\" rx=\"4\"");
  double row_y = y + kLegendPadding + kLegendRow / 2;
  for (const LegendItem& item : items) {
    if (item.swatch) {
      item.swatch(svg, x + kLegendPadding + kLegendSwatch / 2 - 4, row_y);
      svg.text(x + kLegendPadding + kLegendSwatch, row_y + 4, item.label, kLegendFont, "fill=\"#222\"");
    } else {
      svg.text(x + kLegendPadding, row_y + 4, item.label, kLegendFont, "font-weight=\"bold\" fill=\"#222\"");
    }
    row_y += kLegendRow;
  }
  svg.body() << "</g>\n";
}

}  // namespace gqa::report
