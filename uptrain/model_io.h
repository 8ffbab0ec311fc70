// Writes a runtime model back as a Hugging Face folder: the tensors of the checkpoint it was loaded
// from, under the same names (GPT-2's fused c_attn reassembled, Conv1D transposed back), with the
// model's current values; tensors the runtime does not hold (e.g. an ignored tied copy) are copied
// through. The inverse of load_model, so training round-trips any family and any layout.
#pragma once
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/model/model.h"

namespace gqa {

struct SaveOptions {
  bool overwrite = true;
  // Storage dtype of the parameters: nullopt keeps each tensor's dtype in the source checkpoint.
  std::optional<DType> dtype;
  // More files of the folder (name -> writer), e.g. a trainer's state.
  std::map<std::string, std::function<void(const std::string& path)>> extra_files;
  // Folder whose tokenizer and generation files are copied along ("" = the source checkpoint's).
  // A resumed run loads its weights from a step checkpoint that may since have been deleted, so
  // the trainer names the original model folder here.
  std::string passthrough_from;
};

void save_model(const Model& model, const Checkpoint& source, const nlohmann::json& config, const std::string& out_dir,
                const SaveOptions& opts = {});

// The files a saved model keeps from its source (tokenizer, generation config).
void copy_passthrough(CheckpointWriter& w, const std::string& source_dir);

}  // namespace gqa
