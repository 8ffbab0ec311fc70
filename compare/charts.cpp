// The SVG charts of the report: perplexity vs decode speed and vs KV cache bytes (one scatter
// renderer, parameterised by its x axis), and the uptraining loss curves.
#include "compare/charts.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "compare/metrics.h"
#include "compare/svg.h"
#include "core/format.h"

namespace gqa::report {
namespace {

const char* const kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                                "#56B4E9", "#8C564B", "#BCBD22", "#7F7F7F", "#17BECF"};
const char* const kBaselineColor = "#222222";
const char* const kDashes[] = {"", "7 4", "2 3", "9 3 2 3", "14 4", "4 2 4 6"};

std::string strategy_color(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return kBaselineColor;
  return kPalette[plan.strategy_index(cell.strategy) % std::size(kPalette)];
}

std::string kv_dash(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return "";
  return kDashes[plan.kv_index(cell.kv_heads) % std::size(kDashes)];
}

// A hollow marker outlined in `color`: a noisy timing.
std::string hollow_marker_style(const std::string& color) {
  return "fill=\"#fff\" fill-opacity=\"0.9\" stroke=\"" + color + "\" stroke-width=\"1.8\"";
}

constexpr int kKvShapes = 5;  // every shape but the star, which marks the baseline

Shape kv_shape(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return Shape::kStar;
  return static_cast<Shape>(plan.kv_index(cell.kv_heads) % kKvShapes);
}

// The legend's heading over the KV-head markers or dashes: an MLA cell takes those of the KV-head
// count whose bytes it matches.
std::string kv_legend_heading(bool mla_drawn) { return mla_drawn ? "KV heads (MLA: equal bytes)" : "KV heads"; }

// An axis over the data's range plus a margin (so no point sits on the frame), with the nice
// ticks inside it: extending the axis to the outer ticks would waste up to a step at each end.
// nice_ticks counts the outer ticks too, so ask for more until at least 4 fall inside.
Ticks axis_ticks(double lo, double hi, double margin_fraction) {
  const double margin = (hi - lo) * margin_fraction;
  lo -= margin, hi += margin;
  Ticks ticks;
  std::vector<double> inside;
  for (int target = 6; target <= 9 && inside.size() < 4; ++target) {
    ticks = nice_ticks(lo, hi, target);
    inside.clear();
    for (double v : ticks.values)
      if (v >= lo - 1e-9 * ticks.step && v <= hi + 1e-9 * ticks.step) inside.push_back(v);
  }
  if (inside.size() < 2) return ticks;  // a range nice_ticks had to widen (a single value)
  ticks.values = inside;
  ticks.lo = lo, ticks.hi = hi;
  return ticks;
}

std::string subtitle_for(const ReportOptions& options, const std::vector<std::string>& parts) {
  std::vector<std::string> all;
  if (!options.model_name.empty()) all.push_back(options.model_name);
  all.insert(all.end(), parts.begin(), parts.end());
  return join(all, "  \u00b7  ");
}

// The uptraining curves of one kind (training or validation loss).
struct CurveKind {
  const char* title;
  std::vector<LossPoint> CellResult::*member;
  bool smooth;  // training loss is one batch per step: too noisy to compare 20+ curves raw
};

using Segment = std::vector<LossPoint>;

// The curve sorted by step and cut into runs of finite losses (a gap where a loss was NaN/inf).
std::vector<Segment> finite_segments(std::vector<LossPoint> curve) {
  std::stable_sort(curve.begin(), curve.end(), [](const LossPoint& a, const LossPoint& b) { return a.step < b.step; });
  std::vector<Segment> segments(1);
  for (const LossPoint& point : curve) {
    if (std::isfinite(point.loss))
      segments.back().push_back(point);
    else if (!segments.back().empty())
      segments.emplace_back();
  }
  if (segments.back().empty()) segments.pop_back();
  return segments;
}

// Centred moving average over `window` points (odd), shrinking at the ends.
Segment moving_average(const Segment& segment, size_t window) {
  Segment smoothed = segment;
  const size_t half = window / 2;
  for (size_t i = 0; i < segment.size(); ++i) {
    const size_t from = i >= half ? i - half : 0, to = std::min(segment.size(), i + half + 1);
    double sum = 0;
    for (size_t k = from; k < to; ++k) sum += segment[k].loss;
    smoothed[i].loss = sum / double(to - from);
  }
  return smoothed;
}

struct Panel {
  std::string title;
  std::vector<std::pair<const CellResult*, std::vector<Segment>>> curves;  // cells with points, in report order
};

std::vector<Panel> loss_panels(const Plan& plan) {
  const std::vector<CurveKind> kinds = {{"Training loss", &CellResult::train_loss, true},
                                        {"Validation loss", &CellResult::valid_loss, false}};
  std::vector<Panel> panels;
  for (const CurveKind& kind : kinds) {
    Panel panel{kind.title, {}};
    size_t longest = 0;
    for (const CellResult* cell : plan.ordered) {
      std::vector<Segment> segments = finite_segments(cell->*kind.member);
      for (const Segment& segment : segments) longest = std::max(longest, segment.size());
      if (!segments.empty()) panel.curves.push_back({cell, std::move(segments)});
    }
    if (panel.curves.empty()) continue;
    const size_t window = (longest / 20) | 1;  // ~5% of the run, odd so the average is centred
    if (kind.smooth && window >= 3) {
      for (auto& [cell, segments] : panel.curves)
        for (Segment& segment : segments) segment = moving_average(segment, window);
      panel.title += " (moving average of " + std::to_string(window) + " points)";
    }
    panels.push_back(std::move(panel));
  }
  return panels;
}

// The x axis of a quality chart (perplexity after uptraining on y) and what it says about a point.
struct QualityAxis {
  std::string title;    // the chart's title
  std::string context;  // the subtitle's first part (after the model), e.g. "decode at batch 16"
  std::string label;    // the axis label
  bool higher_is_better = false;
  std::string baseline_label;                   // on the vertical reference line through the baseline
  std::string nothing_plotted;                  // in the empty plot area
  std::function<std::string(double)> describe;  // a point's x in its tooltip
  // Whether a cell's x rests on a noisy timing (drawn hollow); empty: no x is noisy.
  std::function<bool(const CellResult&)> noisy;
};

// Perplexity after uptraining against `axis`: a marker per point (colour: strategy, shape: KV
// heads, the baseline a star) with its tooltip, a faint line through each strategy's points in
// KV-head order, reference lines through the baseline, and the legend.
std::string render_quality_scatter(const Plan& plan, const ReportOptions& options, const std::vector<PlotPoint>& points,
                                   const QualityAxis& axis) {
  const auto noisy = [&axis](const PlotPoint& p) { return axis.noisy && axis.noisy(*p.cell); };

  std::vector<LegendItem> legend;
  std::set<std::string> plotted_strategies;
  std::set<int64_t> plotted_kv;
  bool mla_plotted = false;
  for (const PlotPoint& point : points)
    if (!point.cell->is_baseline) {
      plotted_strategies.insert(point.cell->strategy);
      plotted_kv.insert(point.cell->kv_heads);
      mla_plotted = mla_plotted || is_mla(*point.cell);
    }
  if (!plotted_strategies.empty()) legend.push_back({"Strategy", nullptr});
  for (size_t i = 0; i < plan.strategies.size(); ++i) {
    if (!plotted_strategies.count(plan.strategies[i])) continue;
    const std::string color = kPalette[i % std::size(kPalette)];
    legend.push_back({strategy_label(plan.strategies[i]), [color](Svg& svg, double x, double y) {
                        svg.path(marker_path(Shape::kCircle, x, y, 5.5), "fill=\"" + color + "\"");
                      }});
  }
  if (!plotted_kv.empty()) legend.push_back({kv_legend_heading(mla_plotted), nullptr});
  for (size_t i = 0; i < plan.kv_counts.size(); ++i) {
    if (!plotted_kv.count(plan.kv_counts[i])) continue;
    const Shape shape = static_cast<Shape>(i % kKvShapes);
    legend.push_back({std::to_string(plan.kv_counts[i]), [shape](Svg& svg, double x, double y) {
                        svg.path(marker_path(shape, x, y, 5.5), "fill=\"#888\"");
                      }});
  }
  const bool baseline_plotted =
      std::any_of(points.begin(), points.end(), [](const PlotPoint& p) { return p.cell->is_baseline; });
  const bool noisy_plotted = std::any_of(points.begin(), points.end(), noisy);
  if (baseline_plotted || noisy_plotted) legend.push_back({"", nullptr});  // a gap before the baseline
  if (baseline_plotted) {
    legend.push_back(
        {"MHA baseline (" + std::to_string(plan.baseline->kv_heads) + " KV heads)", [](Svg& svg, double x, double y) {
           svg.path(marker_path(Shape::kStar, x, y, 5.5), std::string("fill=\"") + kBaselineColor + "\"");
         }});
  }
  if (noisy_plotted) {
    legend.push_back({"Noisy timing (hollow)", [](Svg& svg, double x, double y) {
                        svg.path(marker_path(Shape::kCircle, x, y, 5.5), hollow_marker_style("#888"));
                      }});
  }

  const double left = 92, top = 70, plot_width = 580, plot_height = 400;
  const double legend_x = left + plot_width + 24;
  const double width = legend.empty() ? left + plot_width + 30 : legend_x + legend_width(legend) + 16;
  const double height = std::max(top + plot_height + 62, top + legend_height(legend) + 20);
  Svg svg(width, height);

  const std::string better_corner = axis.higher_is_better ? "lower right is better" : "lower left is better";
  draw_titles(svg, left, axis.title,
              subtitle_for(options, {axis.context,
                                     std::to_string(points.size()) + " of " + std::to_string(plan.ordered.size()) +
                                         " results plotted",
                                     better_corner}));

  Frame frame{left, top, plot_width, plot_height, Ticks{}, Ticks{}};  // no ticks unless there is data
  if (!points.empty()) {
    double x_lo = points[0].x, x_hi = x_lo, y_lo = points[0].y, y_hi = y_lo;
    for (const PlotPoint& p : points) {
      x_lo = std::min(x_lo, p.x), x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y), y_hi = std::max(y_hi, p.y);
    }
    frame.x = axis_ticks(x_lo, x_hi, 0.06);
    frame.y = axis_ticks(y_lo, y_hi, 0.08);
  }
  draw_frame(svg, frame, axis.label, "Perplexity after uptraining (\u2193 lower is better)");

  if (points.empty()) {
    svg.text(left + plot_width / 2, top + plot_height / 2, axis.nothing_plotted, kLabelFont,
             "text-anchor=\"middle\" fill=\"#888\"");
  }

  // Reference lines through the baseline: where MHA's x and quality are.
  for (const PlotPoint& p : points) {
    if (!p.cell->is_baseline) continue;
    const std::string style = "stroke=\"#999\" stroke-width=\"1\" stroke-dasharray=\"4 3\"";
    const double line_x = frame.px(p.x);
    svg.line(line_x, top, line_x, top + plot_height, style);
    svg.line(left, frame.py(p.y), left + plot_width, frame.py(p.y), style);
    // Each label beside its line, inside the frame and away from the baseline's star.
    const bool fits_right = line_x + 4 + text_width(axis.baseline_label, 10) <= left + plot_width;
    svg.text(fits_right ? line_x + 4 : line_x - 4, top + 12, axis.baseline_label, 10,
             fits_right ? "fill=\"#777\"" : "text-anchor=\"end\" fill=\"#777\"");
    const bool star_on_right = line_x > left + plot_width / 2;
    svg.text(star_on_right ? left + 4 : left + plot_width - 4, frame.py(p.y) - 4, "MHA perplexity", 10,
             star_on_right ? "fill=\"#777\"" : "text-anchor=\"end\" fill=\"#777\"");
  }

  // A faint line through each strategy's cells, in KV-head order, so a strategy reads as a curve.
  for (const std::string& strategy : plan.strategies) {
    std::string d;
    std::string color;
    for (const PlotPoint& p : points)
      if (!p.cell->is_baseline && p.cell->strategy == strategy) {
        d += (d.empty() ? "M" : " L") + coord(frame.px(p.x)) + "," + coord(frame.py(p.y));
        color = strategy_color(plan, *p.cell);
      }
    if (d.find('L') != std::string::npos)
      svg.path(d, "fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\" stroke-opacity=\"0.45\"");
  }

  // Markers last, the baseline on top.
  std::vector<PlotPoint> drawing_order = points;
  std::stable_partition(drawing_order.begin(), drawing_order.end(),
                        [](const PlotPoint& p) { return !p.cell->is_baseline; });
  for (const PlotPoint& p : drawing_order) {
    const std::string tooltip = cell_name(*p.cell) + ": perplexity " + format_perplexity(p.y) + ", " +
                                axis.describe(p.x) + (noisy(p) ? " (noisy timing)" : "");
    const std::string css_class =
        std::string("point") + (p.cell->is_baseline ? " baseline" : "") + (noisy(p) ? " noisy" : "");
    const std::string color = strategy_color(plan, *p.cell);
    // A noisy timing is drawn hollow: its position on the x axis is not to be trusted.
    const std::string style = noisy(p)
                                  ? hollow_marker_style(color)
                                  : "fill=\"" + color + "\" fill-opacity=\"0.92\" stroke=\"#fff\" stroke-width=\"1\"";
    svg.path(marker_path(kv_shape(plan, *p.cell), frame.px(p.x), frame.py(p.y), p.cell->is_baseline ? 6.5 : 5.5),
             "class=\"" + css_class + "\" " + style, tooltip);
  }
  if (!legend.empty()) draw_legend(svg, legend_x, top, legend);
  return svg.str();
}

}  // namespace

std::string render_quality_vs_speed(const Plan& plan, const ReportOptions& options) {
  const std::string batch = std::to_string(plan.speed_batch);
  QualityAxis axis;
  axis.title = "Perplexity vs decode speed";
  axis.context = plan.speed_batch ? "decode at batch " + batch : "no decode times";
  axis.higher_is_better = plan.x_is_speedup;
  axis.label = plan.x_is_speedup ? "Decode speedup vs MHA at batch " + batch + " (\u00d7, higher is better \u2192)"
                                 : "Decode time per token at batch " + batch + " (ms, \u2190 lower is better)";
  axis.baseline_label = "MHA speed";
  axis.nothing_plotted = "No result has both a perplexity after uptraining and a decode time";
  axis.describe = [&plan](double x) {
    return plan.x_is_speedup ? format_fixed(x, 2) + "\u00d7 MHA speed" : format_significant(x) + " ms/token";
  };
  // A point whose x rests on a noisy timing: a speedup's (speedup_is_noisy) or the cell's own time.
  axis.noisy = [&plan](const CellResult& cell) {
    return plan.x_is_speedup ? speedup_is_noisy(plan, cell, plan.speed_batch) : is_noisy(cell, plan.speed_batch);
  };
  return render_quality_scatter(plan, options, quality_points(plan, nullptr), axis);
}

std::string render_quality_vs_kv_bytes(const Plan& plan, const ReportOptions& options) {
  QualityAxis axis;
  axis.title = "Perplexity vs KV cache size";
  axis.context = plan.kv_vs_mha
                     ? "MHA caches " + format_bytes(double(*plan.baseline->kv_bytes_per_token)) + " per token"
                     : "KV cache per token, all layers";
  axis.higher_is_better = false;
  axis.label = plan.kv_vs_mha ? "KV cache bytes per token vs MHA (fraction, \u2190 smaller is better)"
                              : "KV cache bytes per token (bytes, \u2190 smaller is better)";
  axis.baseline_label = "MHA KV bytes";
  axis.nothing_plotted = "No result has both a perplexity after uptraining and KV bytes per token";
  axis.describe = [&plan](double x) {
    return plan.kv_vs_mha ? format_percent(x) + " of MHA's KV bytes" : format_bytes(x) + " KV/token";
  };
  return render_quality_scatter(plan, options, kv_bytes_points(plan, nullptr), axis);
}

std::string render_loss_curves(const Plan& plan, const ReportOptions& options) {
  const std::vector<Panel> panels = loss_panels(plan);

  // Axis ranges shared by the panels, so training and validation losses compare at a glance.
  Ticks x_ticks, y_ticks;  // no ticks unless there is data
  std::string clip_note;
  std::vector<LossPoint> all_points;
  for (const Panel& panel : panels)
    for (const auto& [cell, segments] : panel.curves)
      for (const Segment& segment : segments) all_points.insert(all_points.end(), segment.begin(), segment.end());
  if (!all_points.empty()) {
    int64_t first_step = all_points[0].step, last_step = first_step;
    double lowest = all_points[0].loss, highest = lowest;
    for (const LossPoint& p : all_points) {
      first_step = std::min(first_step, p.step), last_step = std::max(last_step, p.step);
      lowest = std::min(lowest, p.loss), highest = std::max(highest, p.loss);
    }
    // Right after conversion the loss can sit far above where the runs end up, flattening the
    // part worth comparing into a line: when the first quarter of the run takes over half the
    // height, the axis is cut above the highest loss of the remaining three quarters.
    const double settled_from = double(first_step) + 0.25 * double(last_step - first_step);
    double settled_highest = lowest;
    for (const LossPoint& p : all_points)
      if (double(p.step) >= settled_from) settled_highest = std::max(settled_highest, p.loss);
    double top_loss = highest;
    if (settled_highest > lowest && highest - lowest > 2 * (settled_highest - lowest)) {
      top_loss = settled_highest + 0.5 * (settled_highest - lowest);
      clip_note = "y axis cut at " + format_significant(top_loss) + " (the first steps reach " +
                  format_significant(highest) + ")";
    }
    if (last_step == first_step) last_step = first_step + 10;  // one step: an axis of whole steps around it
    x_ticks = nice_ticks(double(first_step), double(last_step), 6);
    y_ticks = axis_ticks(lowest, top_loss, 0.04);
  }

  std::vector<LegendItem> legend;
  std::set<std::string> strategies_drawn;
  std::set<int64_t> kv_drawn;
  bool baseline_drawn = false, mla_drawn = false;
  for (const Panel& panel : panels)
    for (const auto& [cell, segments] : panel.curves) {
      if (cell->is_baseline)
        baseline_drawn = true;
      else
        strategies_drawn.insert(cell->strategy), kv_drawn.insert(cell->kv_heads), mla_drawn |= is_mla(*cell);
    }
  const auto line_swatch = [](std::string color, std::string dash) {
    return [color, dash](Svg& svg, double x, double y) {
      svg.line(
          x - 13, y, x + 13, y,
          "stroke=\"" + color + "\" stroke-width=\"2.2\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\""));
    };
  };
  if (!strategies_drawn.empty()) legend.push_back({"Strategy", nullptr});
  for (size_t i = 0; i < plan.strategies.size(); ++i)
    if (strategies_drawn.count(plan.strategies[i]))
      legend.push_back({strategy_label(plan.strategies[i]), line_swatch(kPalette[i % std::size(kPalette)], "")});
  if (!kv_drawn.empty()) legend.push_back({kv_legend_heading(mla_drawn), nullptr});
  for (size_t i = 0; i < plan.kv_counts.size(); ++i)
    if (kv_drawn.count(plan.kv_counts[i]))
      legend.push_back({std::to_string(plan.kv_counts[i]), line_swatch("#777", kDashes[i % std::size(kDashes)])});
  if (baseline_drawn) {
    legend.push_back({"", nullptr});
    legend.push_back({"MHA baseline", line_swatch(kBaselineColor, "")});
  }

  const size_t panel_count = std::max<size_t>(panels.size(), 1);
  const double left = 84, top = 84, panel_gap = 84, plot_height = 400;
  const double plot_width = panel_count == 1 ? 580 : 420;
  const double panels_right = left + double(panel_count) * plot_width + double(panel_count - 1) * panel_gap;
  const double legend_x = panels_right + 24;
  const double width = legend.empty() ? panels_right + 30 : legend_x + legend_width(legend) + 16;
  const double height = std::max(top + plot_height + 62, top + legend_height(legend) + 20);
  Svg svg(width, height);
  draw_titles(
      svg, left, "Uptraining loss",
      subtitle_for(options, clip_note.empty() ? std::vector<std::string>{} : std::vector<std::string>{clip_note}));

  if (panels.empty()) {
    draw_frame(svg, Frame{left, top, plot_width, plot_height, x_ticks, y_ticks}, "Uptraining step", "Loss");
    svg.text(left + plot_width / 2, top + plot_height / 2, "No uptraining curves recorded", kLabelFont,
             "text-anchor=\"middle\" fill=\"#888\"");
  }
  const double stroke_width = all_points.size() > 2000 ? 1.3 : 1.7;  // many curves: thinner lines
  for (size_t k = 0; k < panels.size(); ++k) {
    const double panel_left = left + double(k) * (plot_width + panel_gap);
    const Frame frame{panel_left, top, plot_width, plot_height, x_ticks, y_ticks};
    draw_frame(svg, frame, "Uptraining step", k == 0 ? "Cross-entropy loss (\u2193 lower is better)" : "");
    svg.text(panel_left + plot_width / 2, top - 8, panels[k].title, kLabelFont,
             "text-anchor=\"middle\" font-weight=\"bold\" fill=\"#333\"");
    const std::string clip_id = "plot-area-" + std::to_string(k);
    svg.body() << "<clipPath id=\"" << clip_id << "\"><rect x=\"" << coord(panel_left) << "\" y=\"" << coord(top)
               << "\" width=\"" << coord(plot_width) << "\" height=\"" << coord(plot_height) << "\"/></clipPath>\n"
               << "<g clip-path=\"url(#" << clip_id << ")\">\n";
    // The baseline last, so the reference curve stays on top of the others.
    auto curves = panels[k].curves;
    std::stable_partition(curves.begin(), curves.end(), [](const auto& curve) { return !curve.first->is_baseline; });
    for (const auto& [cell, segments] : curves) {
      const std::string color = strategy_color(plan, *cell), dash = kv_dash(plan, *cell);
      for (const Segment& segment : segments) {
        if (segment.size() == 1) {  // a lone value: a dot, since a one-point line is invisible
          svg.path(marker_path(Shape::kCircle, frame.px(double(segment[0].step)), frame.py(segment[0].loss), 2.5),
                   "class=\"curve\" fill=\"" + color + "\"", cell_name(*cell));
          continue;
        }
        std::string d;
        for (const LossPoint& point : segment)
          d += (d.empty() ? "M" : " L") + coord(frame.px(double(point.step))) + "," + coord(frame.py(point.loss));
        svg.path(d,
                 "class=\"curve\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" + coord(stroke_width) +
                     "\" stroke-linejoin=\"round\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\""),
                 cell_name(*cell));
      }
    }
    svg.body() << "</g>\n";
  }
  if (!legend.empty()) draw_legend(svg, legend_x, top, legend);
  return svg.str();
}

}  // namespace gqa::report
