#include "uptrain/model_io.h"

#include <algorithm>
#include <cstring>

#include "core/arch.h"
#include "core/error.h"

namespace gqa {

void copy_passthrough(CheckpointWriter& w, const std::string& source_dir) {
  for (const std::string& f : passthrough_files()) w.copy_from(source_dir, f);
}

void save_model(const Model& model, const Checkpoint& source, const nlohmann::json& config, const std::string& out_dir,
                const SaveOptions& opts) {
  // Checkpoint name -> the parameters stored in it (one, or q/k/v of a fused tensor by slot).
  struct Parts {
    std::vector<const ModelParameter*> by_slot;
    bool conv1d = false, per_head = false;
    int64_t layer = 0;
  };
  std::map<std::string, Parts> stored;
  for (const ModelParameter& p : model.parameters()) {
    auto name = role_tensor_name(source, p.stack, p.role, p.layer);
    auto loc = locate(source.config(), p.stack, p.role, p.layer);
    if (!name || !loc)
      throw InputError(source.dir(), role_name(p.role), "parameter has no tensor in the source checkpoint");
    Parts& parts = stored[*name];
    const size_t slot = loc->fused_part < 0 ? 0 : size_t(loc->fused_part);
    if (parts.by_slot.size() <= slot) parts.by_slot.resize(slot + 1, nullptr);
    parts.by_slot[slot] = &p;
    parts.conv1d = loc->conv1d;
    parts.per_head = loc->fused_per_head;
    parts.layer = p.layer;
  }

  CheckpointWriter w(out_dir, opts.overwrite);
  w.set_config(config);
  w.set_metadata(source.metadata());
  for (const std::string& name : source.names()) {
    const TensorView& src = source.tensor(name);
    auto it = stored.find(name);
    TensorToWrite t;
    t.name = name;
    t.shape = src.shape;
    if (it == stored.end()) {  // not a runtime parameter: the source bytes, unchanged
      t.dtype = src.dtype;
      t.nbytes = src.nbytes;
      t.fill = [&src](uint8_t* dst) { std::memcpy(dst, src.data, src.nbytes); };
      w.add(std::move(t));
      continue;
    }
    const Parts parts = it->second;
    t.dtype = opts.dtype.value_or(src.dtype);
    t.nbytes = size_t(src.numel()) * dtype_size(t.dtype);
    const ModelConfig& runtime = model.config();
    std::vector<FusedRun> runs;  // fused q/k/v: how the slots' rows interleave along out
    if (parts.by_slot.size() == 3)
      runs = fused_qkv_runs(runtime.layout(AttentionModule::DecoderSelf, parts.layer),
                            runtime.stored_kv_heads(AttentionModule::DecoderSelf, parts.layer), parts.per_head);
    t.fill = [parts, runs, &src, name, dtype = t.dtype](uint8_t* dst) {
      // Linear layout [out, in] (vectors [out]); fused slots along out, as fused_qkv_runs says.
      std::vector<at::Tensor> pieces;
      for (const ModelParameter* p : parts.by_slot) {
        if (!p) throw InputError(name, "", "fused tensor is missing one of q/k/v in the runtime model");
        pieces.push_back(p->tensor.detach().to(at::kCPU, at::kFloat));
      }
      at::Tensor full = pieces[0];  // one parameter, unless fused
      if (!runs.empty()) {
        std::vector<at::Tensor> rows;
        for (const FusedRun& run : runs) rows.push_back(pieces[size_t(run.part)].narrow(0, run.first_row, run.rows));
        full = at::cat(rows, 0);
      }
      if (parts.conv1d && full.dim() == 2) full = full.t();
      full = full.contiguous();
      if (full.numel() != src.numel())
        throw InputError(name, "shape",
                         "runtime tensor has " + std::to_string(full.numel()) + " values, the checkpoint " +
                             std::to_string(src.numel()));
      from_float32(dtype, full.data_ptr<float>(), full.numel(), dst);
    };
    w.add(std::move(t));
  }
  copy_passthrough(w, opts.passthrough_from.empty() ? source.dir() : opts.passthrough_from);
  for (const auto& [name, write] : opts.extra_files) w.add_file(name, write);
  w.commit();
}

}  // namespace gqa
