#include "core/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "core/error.h"

namespace gqa {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(path, "", std::string("invalid JSON (") + e.what() + ")");
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw InputError(path, "", "write failed (disk full?)");
}

// fsync a file or folder so a rename after it publishes complete data.
void sync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

const std::vector<std::string>& passthrough_files() {
  static const std::vector<std::string> files = {
      "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
      "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "added_tokens.json"};
  return files;
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw InputError(dir, "", "folder does not exist");
  if (!fs::is_directory(dir, ec)) throw InputError(dir, "", "not a folder (expected a Hugging Face model folder)");
  config_ = load_config(dir + "/config.json");

  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (fs::exists(index)) {
    json j = read_json(index);
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
  } else if (fs::exists(single)) {
    shard_paths_.push_back(single);
    shards_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& n : shards_[0]->names()) where_[n] = 0;
  } else if (fs::exists(dir + "/pytorch_model.bin") || fs::exists(dir + "/pytorch_model.bin.index.json")) {
    throw InputError(dir, "pytorch_model.bin",
                     "pickle checkpoints are not read (unsafe to unpickle); convert once with: python -c "
                     "\"import sys,transformers as t; m=t.AutoModel.from_pretrained(sys.argv[1]); "
                     "m.save_pretrained(sys.argv[1])\" DIR  (writes model.safetensors)");
  } else {
    throw InputError(dir, "model.safetensors", "no weights found (expected model.safetensors or model.safetensors.index.json)");
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
    if (n > most) { best = d; most = n; }
  return best;
}

CheckpointWriter::CheckpointWriter(std::string out_dir, bool overwrite, uint64_t max_shard_bytes)
    : out_(std::move(out_dir)), overwrite_(overwrite), max_shard_bytes_(max_shard_bytes) {
  while (!out_.empty() && out_.back() == '/') out_.pop_back();
  std::error_code ec;
  if (fs::exists(out_, ec) && !overwrite_)
    throw InputError(out_, "", "output folder exists (use --force to replace it)");
  fs::path parent = fs::path(out_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw InputError(out_, "", "parent folder " + parent.string() + " does not exist");
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", unsigned(rd() & 0xffffff));
  tmp_ = out_ + ".tmp-" + suffix;
  if (!fs::create_directory(tmp_, ec)) throw InputError(tmp_, "", "cannot create temporary folder: " + ec.message());
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void CheckpointWriter::copy_from(const std::string& src_dir, const std::string& file) {
  if (fs::exists(src_dir + "/" + file)) copies_.emplace_back(src_dir + "/" + file, file);
}

void CheckpointWriter::commit() {
  // Shard in name order, closing a shard when the next tensor would pass the limit.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
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
  write_text_file(tmp_ + "/config.json", config_.dump(2) + "\n");
  for (const auto& [src, name] : copies_) {
    std::error_code ec;
    fs::copy_file(src, tmp_ + "/" + name, fs::copy_options::overwrite_existing, ec);
    if (ec) throw InputError(src, "", "copy failed: " + ec.message());
  }
  sync_path(tmp_);
  // Publish: move an existing folder aside first so there is never a moment with neither.
  std::error_code ec;
  std::string old;
  if (fs::exists(out_, ec)) {
    old = tmp_ + ".old";
    fs::rename(out_, old, ec);
    if (ec) throw InputError(out_, "", "cannot replace existing folder: " + ec.message());
  }
  fs::rename(tmp_, out_, ec);
  if (ec) {
    const std::string why = ec.message();
    if (!old.empty()) fs::rename(old, out_, ec);  // put the previous folder back
    throw InputError(out_, "", "cannot move finished folder into place: " + why);
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  sync_path(fs::path(out_).parent_path().empty() ? "." : fs::path(out_).parent_path().string());
}

}  // namespace gqa
