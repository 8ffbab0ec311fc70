#include "core/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/files.h"

namespace gqa {
using json = nlohmann::json;

namespace {

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw InputError(path, "", files::write_failure());
}

// fsync a file or folder so a rename after it publishes complete data.
void sync_path(const std::string& path) { files::sync(path); }

std::string parent_or_dot(const std::string& path) {
  const std::string p = files::parent(path);
  return p.empty() ? "." : p;
}

std::string temp_prefix(const std::string& out) { return out + ".tmp-"; }

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

// A SIGKILLed writer cannot clean up: the next writer in the same folder removes the temp folders
// (and moved-aside old folders) whose writing process no longer exists.
void remove_stale_temp_folders(const std::string& parent, const std::string& name_prefix) {
  for (const std::string& name : files::list_directory(parent)) {
    if (name.rfind(name_prefix, 0) != 0) continue;
    const auto mark = name.rfind(".tmp-");
    if (mark == std::string::npos || mark + 5 < name_prefix.size()) continue;
    const char* digits = name.c_str() + mark + 5;
    char* end = nullptr;
    const long pid = std::strtol(digits, &end, 10);
    if (end == digits || *end != '-') continue;  // not our naming
    if (!files::process_alive(pid)) files::remove_all(parent + "/" + name);
  }
}

std::string make_scratch_folder(const std::string& out_in, const std::string& tag) {
  std::string out = out_in;
  while (!out.empty() && out.back() == '/') out.pop_back();
  remove_stale_temp_folders(parent_or_dot(out), temp_prefix(base_name(out)));
  const std::string dir =
      files::make_unique_output_directory(temp_prefix(out) + std::to_string(::getpid()) + "-" + tag + "-");
  if (dir.empty())
    throw InputError(out + ".tmp-XXXXXX", "", std::string("cannot create temporary folder: ") + std::strerror(errno));
  return dir;
}

void remove_folder_atomically(const std::string& dir) {
  std::string d = dir;
  while (!d.empty() && d.back() == '/') d.pop_back();
  const std::string doomed = temp_prefix(d) + std::to_string(::getpid()) + "-removing";
  if (files::rename(d, doomed).empty()) files::remove_all(doomed);
}

const std::vector<std::string>& passthrough_files() {
  static const std::vector<std::string> files = {"generation_config.json",  "tokenizer.json", "tokenizer_config.json",
                                                 "special_tokens_map.json", "vocab.json",     "merges.txt",
                                                 "tokenizer.model",         "spiece.model",   "added_tokens.json"};
  return files;
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  if (!files::exists(dir)) throw InputError(dir, "", "folder does not exist");
  if (!files::is_directory(dir)) throw InputError(dir, "", "not a folder (expected a Hugging Face model folder)");
  config_ = load_config(dir + "/config.json");

  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (files::exists(index)) {
    json j = read_json_file(index);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw InputError(index, "weight_map", "missing or not an object");
    if (j["weight_map"].empty()) throw InputError(index, "weight_map", "lists no tensors");
    std::map<std::string, std::string> name_to_file;
    std::set<std::string> files;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw InputError(index, "weight_map." + it.key(), "expected a file name");
      std::string f = it->get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        throw InputError(index, "weight_map." + it.key(), "file name must not contain a path");
      name_to_file[it.key()] = f;
      files.insert(f);
    }
    std::map<std::string, size_t> file_index;
    for (const auto& f : files) {
      file_index[f] = shards_.size();
      shard_paths_.push_back(dir + "/" + f);
      shards_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + f));
    }
    for (const auto& [name, f] : name_to_file) {
      size_t s = file_index[f];
      if (!shards_[s]->has(name))
        throw InputError(index, "weight_map." + name, "points to " + f + ", which has no such tensor");
      where_[name] = s;
    }
  } else if (files::exists(single)) {
    shard_paths_.push_back(single);
    shards_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& n : shards_[0]->names()) where_[n] = 0;
  } else if (files::exists(dir + "/pytorch_model.bin") || files::exists(dir + "/pytorch_model.bin.index.json")) {
    throw InputError(dir, "pytorch_model.bin",
                     "pickle checkpoints are not read (unsafe to unpickle); convert once with: python -c "
                     "\"import sys,transformers as t; m=t.AutoModel.from_pretrained(sys.argv[1]); "
                     "m.save_pretrained(sys.argv[1])\" DIR  (writes model.safetensors)");
  } else {
    throw InputError(dir, "model.safetensors",
                     "no weights found (expected model.safetensors or model.safetensors.index.json)");
  }
}

const TensorView& Checkpoint::tensor(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw InputError(dir_, name, "tensor not found");
  return shards_[it->second]->tensor(name);
}

std::string Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? dir_ : shard_paths_[it->second];
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

int64_t Checkpoint::parameter_count() const {
  int64_t n = 0;
  for (const auto& kv : where_) n += tensor(kv.first).numel();
  return n;
}

DType Checkpoint::weight_dtype() const {
  std::map<DType, int64_t> count;
  for (const auto& kv : where_) count[tensor(kv.first).dtype] += tensor(kv.first).numel();
  DType best = DType::F32;
  int64_t most = -1;
  for (const auto& [d, n] : count)
    if (n > most) {
      best = d;
      most = n;
    }
  return best;
}

CheckpointWriter::CheckpointWriter(std::string out_dir, bool overwrite, uint64_t max_shard_bytes)
    : out_(std::move(out_dir)), overwrite_(overwrite), max_shard_bytes_(max_shard_bytes) {
  while (!out_.empty() && out_.back() == '/') out_.pop_back();
  if (files::exists(out_) && !overwrite_)
    throw InputError(out_, "", "output folder exists (use --force to replace it)");
  const std::string parent = files::parent(out_);
  if (!parent.empty() && !files::is_directory(parent))
    throw InputError(out_, "", "parent folder " + parent + " does not exist");
  remove_stale_temp_folders(parent_or_dot(out_), temp_prefix(base_name(out_)));
  // OUT.tmp-<pid>-XXXXXX: the pid lets a later writer tell a killed run's leftovers from a live one.
  tmp_ = files::make_unique_output_directory(temp_prefix(out_) + std::to_string(::getpid()) + "-");
  if (tmp_.empty())
    throw InputError(out_ + ".tmp-XXXXXX", "", std::string("cannot create temporary folder: ") + std::strerror(errno));
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) files::remove_all(tmp_);
}

void CheckpointWriter::copy_from(const std::string& src_dir, const std::string& file) {
  if (files::exists(src_dir + "/" + file)) copies_.emplace_back(src_dir + "/" + file, file);
}

bool CheckpointWriter::commit() {
  // Shard in name order, closing a shard when the next tensor would pass the limit.
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  std::vector<std::vector<TensorToWrite>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (auto& t : tensors_) {
    if (in_shard > 0 && in_shard + t.nbytes > max_shard_bytes_) {
      shards.emplace_back();
      in_shard = 0;
    }
    in_shard += t.nbytes;
    total += t.nbytes;
    shards.back().push_back(std::move(t));
  }
  tensors_.clear();
  if (shards.size() == 1) {
    write_safetensors(tmp_ + "/model.safetensors", std::move(shards[0]), metadata_);
    sync_path(tmp_ + "/model.safetensors");
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      for (const auto& t : shards[i]) weight_map[t.name] = name;
      write_safetensors(tmp_ + "/" + name, std::move(shards[i]), metadata_);
      sync_path(tmp_ + "/" + name);
    }
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text_file(tmp_ + "/model.safetensors.index.json", index.dump(2) + "\n");
  }
  if (config_fn_) config_ = config_fn_();
  write_text_file(tmp_ + "/config.json", config_.dump(2) + "\n");
  for (const auto& [src, name] : copies_) {
    const std::string why = files::copy_file(src, tmp_ + "/" + name);
    if (!why.empty()) throw InputError(src, "", "copy failed: " + why);
  }
  for (const auto& [name, write] : extra_files_) {
    write(tmp_ + "/" + name);
    sync_path(tmp_ + "/" + name);
  }
  sync_path(tmp_);
  // Publish. Without overwrite nothing may be replaced, not even a folder another writer
  // published while this one worked (it was absent at the start).
  if (!overwrite_) {
    bool existed = false;
    const std::string why = files::rename_no_replace(tmp_, out_, &existed);
    if (existed)
      throw InputError(
          out_, "",
          "appeared while this run was writing it (another writer?); it was left as it is (use --force to replace it)");
    if (!why.empty()) throw InputError(out_, "", "cannot move finished folder into place: " + why);
    committed_ = true;
    sync_path(parent_or_dot(out_));
    return false;
  }
  // Replacing an existing folder swaps the two atomically where the file system can (then tmp_
  // holds the old folder); else the old one is moved aside first and put back on failure.
  std::string old;
  if (files::exists(out_) && files::exchange(tmp_, out_).empty()) {
    committed_ = true;
    files::remove_all(tmp_);
    sync_path(parent_or_dot(out_));
    return true;
  }
  if (files::exists(out_)) {
    old = tmp_ + ".old";
    const std::string why = files::rename(out_, old);
    if (!why.empty()) throw InputError(out_, "", "cannot replace existing folder: " + why);
  }
  const std::string why = files::rename(tmp_, out_);
  if (!why.empty()) {
    if (!old.empty()) files::rename(old, out_);  // put the previous folder back
    throw InputError(out_, "", "cannot move finished folder into place: " + why);
  }
  committed_ = true;
  if (!old.empty()) files::remove_all(old);
  sync_path(parent_or_dot(out_));
  return !old.empty();
}

}  // namespace gqa
