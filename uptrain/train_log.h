// What a training run reports: a progress bar on the terminal (step/total, tokens/s, loss, lr, ETA;
// quiet when stderr is not a TTY), and logs in OUT_DIR: train_log.jsonl (one JSON object per
// record) and train_log.h5 (one extendible float64 dataset per scalar name, plus "step"; the run
// config as attributes of the root group). Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace gqa {

// One record of train_log.jsonl, as TrainLog::record wrote it.
struct TrainLogRecord {
  std::string kind;  // "train", "valid", "wgqa", ...
  int64_t step = 0;
  std::map<std::string, double> scalars;  // NaN where the run wrote a non-finite value
};

// DIR/train_log.jsonl: the file TrainLog writes in DIR and read_train_log reads.
std::string train_log_path(const std::string& dir);

// The records of a train_log.jsonl, in file order. A missing file is an empty log and a partial
// last line (what a kill mid-write leaves) is dropped; a malformed record before the end throws
// InputError(path, "line N", ...).
std::vector<TrainLogRecord> read_train_log(const std::string& path);

// The JSONL file is the source of truth: every record goes to it first (one write(2) per line, so
// a killed process loses at most the line being written), and the HDF5 file can always be rebuilt
// from it. Layout of train_log.h5:
//   /                 attributes: "run_config" (the JSON text) and each top-level scalar field of
//                     the run config (float64, int64, UTF-8 string; bools as int64 0/1)
//   /<kind>/step      float64[rows], one row per record of that kind
//   /<kind>/<name>    float64[rows]; NaN where a record of that kind lacks the scalar
// Non-finite values are written to the JSONL as null (JSON has no NaN) and read back as NaN.
class TrainLog {
 public:
  // Opens (or creates) the logs in `dir` (created with its parents when missing). With
  // `resume_step` >= 0 the logs are continued after dropping every record whose step is
  // > resume_step (records a killed run wrote after its last checkpoint), so a resumed run's logs
  // equal an uninterrupted run's: a trailing partial JSONL line is dropped, and an HDF5 file that
  // is missing, unreadable or disagrees with the JSONL is rebuilt from it. With resume_step < 0
  // any existing logs in `dir` are replaced (a new run).
  // Throws InputError when a file cannot be created or the JSONL holds a malformed record that
  // is not at its end.
  TrainLog(const std::string& dir, const nlohmann::json& run_config, int64_t resume_step = -1);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // One record: `kind` groups scalars ("train", "valid", "wgqa", ...); HDF5 datasets are named
  // "<kind>/<name>" with "<kind>/step" beside them. Names must be non-empty, without '/', and
  // not "step" or "kind" (std::invalid_argument otherwise: a programming error).
  void record(const std::string& kind, int64_t step, const std::map<std::string, double>& scalars);
  void flush();  // both files durable on disk (called at every checkpoint)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ProgressBar {
 public:
  // `out` is where the bar goes; `tty` decides whether it redraws in place (\r) or stays quiet.
  ProgressBar(int64_t total_steps, std::ostream& out, bool tty);
  ~ProgressBar();  // ends a bar still on screen, so whatever is printed next starts a line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  static bool stderr_is_tty();  // isatty(2) and TERM is not "dumb"
  // Redraws at most ~10 times a second, but always draws step >= total. The ETA extrapolates
  // from the steps done since the first update (so start-up and warm-up time do not count).
  void update(int64_t step, double tokens_per_second, double loss, double lr);
  void message(const std::string& line);  // a line above the bar (eval results, checkpoints)
  void finish();                          // draws the latest state and ends the bar's line

  // The bar's text, at most 79 columns; eta_seconds < 0 shows "ETA --:--". Public for tests.
  static std::string format_line(int64_t step, int64_t total, double tokens_per_second, double loss, double lr,
                                 double eta_seconds);

 private:
  void draw(const std::string& line);
  void erase();

  int64_t total_;
  std::ostream& out_;
  bool tty_;
  double start_ = 0;  // steady-clock seconds at the first update
  int64_t first_step_ = -1;
  double last_draw_ = -1;  // steady-clock seconds of the last redraw
  std::string latest_;     // the bar for the latest update (drawn or rate-limited)
  bool latest_drawn_ = true;
  size_t drawn_width_ = 0;  // columns the bar occupies on screen now; 0 when not shown
  bool drawn_ = false;
};

}  // namespace gqa
