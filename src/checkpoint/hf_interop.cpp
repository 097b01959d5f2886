// Hugging Face Llama names/shapes ↔ the fused, TP-sharded parameters.
#include "llama2/checkpoint/hf_interop.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/checkpoint/checkpoint.h"
#include "llama2/checkpoint/safetensors.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {
namespace fs = std::filesystem;
namespace {

struct Piece {
  std::string hf_name;
  int64_t rows;  // along dim 0 of the fused full tensor
};

// The HF tensors a (fused) parameter is made of, in row order.
std::vector<Piece> hf_pieces(const Parameter& p, const ModelConfig& c) {
  const auto replace = [&](const std::string& fused, const std::string& by) {
    return p.name.substr(0, p.name.find(fused)) + by + ".weight";
  };
  const int64_t q_rows = c.num_attention_heads * c.head_dim(), kv_rows = c.num_key_value_heads * c.head_dim();
  if (p.name.find("qkv_proj") != std::string::npos)
    return {{replace("qkv_proj", "q_proj"), q_rows}, {replace("qkv_proj", "k_proj"), kv_rows},
            {replace("qkv_proj", "v_proj"), kv_rows}};
  if (p.name.find("gate_up_proj") != std::string::npos)
    return {{replace("gate_up_proj", "gate_proj"), c.intermediate_size},
            {replace("gate_up_proj", "up_proj"), c.intermediate_size}};
  return {{p.name, p.full_shape[0]}};
}

std::vector<int64_t> piece_shape(const Parameter& p, const Piece& piece) {
  std::vector<int64_t> shape = p.full_shape;
  shape[0] = piece.rows;
  return shape;
}

// Tensors of the files that are not the model's: rotary tables (`rotary_emb.inv_freq`, recomputed from rope_theta,
// as HF itself ignores them) in one info line; anything else in one warning naming them.
void report_unused_tensors(const std::map<std::string, std::unique_ptr<SafetensorsReader>>& readers,
                   const std::set<std::string>& used) {
  std::vector<std::string> rotary, other;
  for (const auto& [path, reader] : readers)
    for (const auto& [name, entry] : reader->entries())
      if (!used.count(name)) (name.find("rotary_emb.inv_freq") != std::string::npos ? rotary : other).push_back(name);
  if (!rotary.empty())
    spdlog::info("ignored {} rotary_emb.inv_freq tensors (recomputed from rope_theta, as Hugging Face does)",
                 rotary.size());
  if (!other.empty())
    spdlog::warn("ignored {} tensors that are not this model's: {}", other.size(), fmt::join(other, ", "));
}

void write_text(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

// An HF directory's tensors by name: the index's weight_map, or every tensor of model.safetensors.
class HfDirectory {
 public:
  explicit HfDirectory(const std::string& model_dir) : dir_(model_dir) {
    const std::string index_path = model_dir + "/model.safetensors.index.json";
    if (fs::exists(index_path)) {
      try {
        std::ifstream in(index_path);
        const nlohmann::json index = nlohmann::json::parse(in);
        for (const auto& [name, file] : index.at("weight_map").items())
          file_of_[name] = model_dir + "/" + file.get<std::string>();
      } catch (const nlohmann::json::exception& e) {
        throw BadInput(index_path + ": malformed (" + e.what() + "); expected a weight_map of tensor → file");
      }
    } else if (!fs::exists(model_dir + "/model.safetensors")) {
      throw BadInput("--model_path = " + model_dir + ": no model.safetensors or model.safetensors.index.json");
    }
  }

  // Tensor `name` in fp32; BadInput naming the file and tensor when it is missing, has another shape than
  // `shape`, an unsupported dtype, or values that are not finite.
  at::Tensor read(const std::string& name, const std::vector<int64_t>& shape) {
    SafetensorsReader& r = reader(name);
    const TensorEntry& e = r.entry(name);
    if (e.shape != shape)
      throw BadInput(fmt::format("{}: tensor '{}' has shape [{}] but the config needs [{}]", r.path(), name,
                                 fmt::join(e.shape, ", "), fmt::join(shape, ", ")));
    if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16" && e.dtype != "F64")
      throw BadInput(
          fmt::format("{}: tensor '{}' has dtype {}; expected F32, BF16, F16 or F64", r.path(), name, e.dtype));
    at::Tensor t = r.read(name).to(at::kFloat);  // F16 and BF16 are exact in fp32
    if (!at::isfinite(t).all().item<bool>())
      throw BadInput(fmt::format("{}: tensor '{}' holds inf or NaN values; expected finite weights", r.path(), name));
    used_.insert(name);
    return t;
  }

  void report_unused() const { report_unused_tensors(readers_, used_); }

 private:
  SafetensorsReader& reader(const std::string& name) {
    const auto it = file_of_.find(name);
    const std::string path = it != file_of_.end() ? it->second : dir_ + "/model.safetensors";
    auto& r = readers_[path];
    if (!r) r = std::make_unique<SafetensorsReader>(path);
    return *r;
  }

  std::string dir_;
  std::map<std::string, std::string> file_of_;
  std::map<std::string, std::unique_ptr<SafetensorsReader>> readers_;
  std::set<std::string> used_;
};

// Parameter i of a checkpoint's layout `params`, read full and cut into its Hugging Face tensors in order: visit
// gets each one's name and shape and a view of the full tensor (which the view keeps alive).
void visit_hf_pieces(CheckpointReader& checkpoint, const std::vector<Parameter>& params, size_t i, const ModelConfig& c,
                     const std::function<void(const HfTensor&, const at::Tensor&)>& visit) {
  const at::Tensor full = checkpoint.full_weights(i).contiguous();
  int64_t row = 0;
  for (const Piece& piece : hf_pieces(params[i], c)) {
    visit({piece.hf_name, piece_shape(params[i], piece)}, full.narrow(0, row, piece.rows));
    row += piece.rows;
  }
}

}  // namespace

int export_hf(const std::string& checkpoint_dir, const std::string& output_dir, int64_t max_shard_bytes) {
  CheckpointReader checkpoint(checkpoint_dir);
  const ModelConfig& c = checkpoint.config();
  const std::vector<Parameter> params = parameter_layout(c, checkpoint.tp());
  ensure_directory(output_dir, "--output");
  // Assign whole parameters to files up front, so file names are known before writing.
  std::vector<int> file_of(params.size());
  int files = 1;
  int64_t bytes = 0, total = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    int64_t n = 4;
    for (int64_t d : params[i].full_shape) n *= d;
    if (bytes > 0 && bytes + n > max_shard_bytes) ++files, bytes = 0;
    file_of[i] = files;
    bytes += n;
    total += n;
  }
  const auto file_name = [&](int f) {
    return files == 1 ? std::string("model.safetensors") : fmt::format("model-{:05d}-of-{:05d}.safetensors", f, files);
  };
  nlohmann::json weight_map = nlohmann::json::object();
  for (int f = 1; f <= files; ++f) {
    SafetensorsWriter writer(std::map<std::string, std::string>{{"format", "pt"}});
    for (size_t i = 0; i < params.size(); ++i) {
      if (file_of[i] != f) continue;
      visit_hf_pieces(checkpoint, params, i, c, [&](const HfTensor& t, const at::Tensor& piece) {
        writer.add(t.name, piece);
        weight_map[t.name] = file_name(f);
      });
    }
    writer.write(output_dir + "/" + file_name(f));
  }
  if (files > 1)
    write_text(output_dir + "/model.safetensors.index.json",
               nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
  nlohmann::json config = nlohmann::json::parse(model_config_to_json(c));
  config["torch_dtype"] = "float32";
  write_text(output_dir + "/config.json", config.dump(2) + "\n");
  return files;
}

ModelConfig load_hf_config(const std::string& model_dir) { return load_model_config(model_dir + "/config.json"); }

void load_hf_weights(const std::string& model_dir, Llama& model, int64_t tp_rank) {
  c10::AutoGradMode no_grad(false);
  HfDirectory dir(model_dir);
  const int64_t tp = model.tensor_parallel().comm->size();
  for (Parameter& p : model.parameters()) {
    std::vector<at::Tensor> pieces;
    for (const Piece& piece : hf_pieces(p, model.config())) pieces.push_back(dir.read(piece.hf_name, piece_shape(p, piece)));
    p.value.copy_(shard(at::cat(pieces, 0), p.spec, tp, tp_rank));
  }
  dir.report_unused();
}

std::vector<HfTensor> hf_tensors(const ModelConfig& c) {
  std::vector<HfTensor> out;
  for (const Parameter& p : parameter_layout(c, 1))
    for (const Piece& piece : hf_pieces(p, c)) out.push_back({piece.hf_name, piece_shape(p, piece)});
  return out;
}

void read_hf_tensors(const ModelConfig& c, CheckpointReader* checkpoint, const std::string& model_path,
                     const std::function<void(const HfTensor&, const at::Tensor&)>& visit) {
  c10::AutoGradMode no_grad(false);
  if (checkpoint != nullptr) {
    const std::vector<Parameter> params = parameter_layout(c, checkpoint->tp());
    for (size_t i = 0; i < params.size(); ++i) visit_hf_pieces(*checkpoint, params, i, c, visit);
    return;
  }
  HfDirectory dir(model_path);
  for (const Parameter& p : parameter_layout(c, 1))
    for (const Piece& piece : hf_pieces(p, c)) {
      const HfTensor t{piece.hf_name, piece_shape(p, piece)};
      visit(t, dir.read(t.name, t.shape));
    }
  dir.report_unused();
}

}  // namespace llama2
