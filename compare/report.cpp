#include "compare/report.h"

#include <cerrno>
#include <cstring>

#include "compare/charts.h"
#include "compare/markdown.h"
#include "compare/plan.h"
#include "compare/results.h"
#include "core/error.h"
#include "core/files.h"

namespace gqa::report {
using json = nlohmann::json;

namespace {

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string reason = files::write_file_atomically(path, text);
  if (!reason.empty()) throw InputError(path, "", reason);
}

}  // namespace

std::vector<std::string> report_warnings(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return warnings_for(make_plan(cells, options));
}

std::string results_csv(const std::vector<CellResult>& cells) { return render_csv(make_plan(cells, {})); }

json results_json(const std::vector<CellResult>& cells, const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);
  return render_json(plan, options, warnings_for(plan));
}

std::string quality_vs_speed_svg(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return render_quality_vs_speed(make_plan(cells, options), options);
}

std::string quality_vs_kv_bytes_svg(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return render_quality_vs_kv_bytes(make_plan(cells, options), options);
}

std::string loss_curves_svg(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return render_loss_curves(make_plan(cells, options), options);
}

std::string report_markdown(const std::vector<CellResult>& cells, const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);
  return render_markdown(plan, options, warnings_for(plan));
}

std::vector<std::string> write_report(const std::vector<CellResult>& cells, const std::string& out_dir,
                                      const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);  // validates before anything is written
  const std::vector<std::string> warnings = warnings_for(plan);
  if (files::exists(out_dir) && !files::is_directory(out_dir))
    throw InputError(out_dir, "", "exists and is not a folder");
  if (!files::make_directories(out_dir))
    throw InputError(out_dir, "", std::string("cannot create the folder: ") + std::strerror(errno));
  const std::string dir = out_dir + "/";
  // The charts first: report.md, written last, links to them.
  write_file_atomically(dir + kQualityVsSpeedSvg, render_quality_vs_speed(plan, options));
  write_file_atomically(dir + kQualityVsKvBytesSvg, render_quality_vs_kv_bytes(plan, options));
  write_file_atomically(dir + kLossCurvesSvg, render_loss_curves(plan, options));
  write_file_atomically(dir + "results.csv", render_csv(plan));
  write_file_atomically(dir + "results.json", pretty_json(render_json(plan, options, warnings)));
  write_file_atomically(dir + "report.md", render_markdown(plan, options, warnings));
  return warnings;
}

}  // namespace gqa::report
