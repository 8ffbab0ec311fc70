// A Hugging Face model folder: config.json, model.safetensors or sharded
// model-0000k-of-0000n.safetensors + model.safetensors.index.json (memory-mapped), and the files
// that are copied through unchanged (generation_config.json, tokenizer files).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/safetensors.h"

namespace gqa {

class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);  // throws InputError

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const TensorView& tensor(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::vector<std::string>& shard_files() const { return shard_paths_; }
  std::string file_of(const std::string& name) const;
  // Metadata of the first shard (HF writes {"format": "pt"}).
  const std::map<std::string, std::string>& metadata() const { return shards_.front()->metadata(); }
  int64_t parameter_count() const;
  DType weight_dtype() const;  // the dtype holding most parameters

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<std::string> shard_paths_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> shard index
};

// Files a converted folder keeps from its source (when present).
const std::vector<std::string>& passthrough_files();

// Removes a folder so a kill midway leaves no partly deleted folder under its name: it is renamed
// to a temp name first (which a later writer in the same parent clears, see below).
void remove_folder_atomically(const std::string& dir);
// A fresh temp folder beside `out` for a writer's scratch files (OUT.tmp-<pid>-<tag>-XXXXXX), so
// it lands on the output's file system and a killed run's leftovers are cleared like a writer's.
std::string make_scratch_folder(const std::string& out, const std::string& tag);
// Removes the temp folders that a killed writer left in `parent` (named <prefix>*.tmp-<pid>-*,
// whose process no longer exists).
void remove_stale_temp_folders(const std::string& parent, const std::string& name_prefix);

// Writes a model folder atomically: everything goes to DIR.tmp-XXXXXX, which is renamed to DIR
// only when complete, so a crash leaves either nothing or a whole folder. Tensors are split into
// shards of at most max_shard_bytes (one tensor larger than that gets a shard of its own).
class CheckpointWriter {
 public:
  CheckpointWriter(std::string out_dir, bool overwrite, uint64_t max_shard_bytes = 5ull << 30);
  ~CheckpointWriter();  // removes the temporary folder when commit() was not reached
  void set_config(const nlohmann::json& config) { config_ = config; }
  // For writers whose config depends on what computing the tensors found (e.g. a regrouping):
  // called at commit() after every tensor is written.
  void set_config_after_tensors(std::function<nlohmann::json()> fn) { config_fn_ = std::move(fn); }
  void add(TensorToWrite t) { tensors_.push_back(std::move(t)); }
  void copy_from(const std::string& src_dir, const std::string& file);  // no-op when absent
  // Another file of the folder (e.g. a trainer's state), written by `write(path)` at commit().
  void add_file(const std::string& name, std::function<void(const std::string& path)> write) {
    extra_files_.emplace_back(name, std::move(write));
  }
  void set_metadata(const std::map<std::string, std::string>& m) { metadata_ = m; }
  // Publishes the folder. Without `overwrite`, never replaces anything: a folder that appeared
  // under the name while this writer worked (another writer) stops it with InputError and stays.
  // With `overwrite` the last writer wins; returns whether a folder was replaced.
  bool commit();
  const std::string& temp_dir() const { return tmp_; }

 private:
  std::string out_, tmp_;
  bool overwrite_;
  uint64_t max_shard_bytes_;
  nlohmann::json config_;
  std::function<nlohmann::json()> config_fn_;
  std::vector<TensorToWrite> tensors_;
  std::vector<std::pair<std::string, std::string>> copies_;
  std::vector<std::pair<std::string, std::function<void(const std::string&)>>> extra_files_;
  std::map<std::string, std::string> metadata_{{"format", "pt"}};
  bool committed_ = false;
};

}  // namespace gqa
