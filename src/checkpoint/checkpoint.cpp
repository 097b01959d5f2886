// Sharded, atomic, resharding checkpoints.
#include "llama2/checkpoint/checkpoint.h"

#include <filesystem>
#include <functional>
#include <ctime>
#include <map>
#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "llama2/checkpoint/safetensors.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/optim/adamw.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"
#include "llama2/util/json_integer.h"

namespace llama2 {
namespace fs = std::filesystem;
namespace {

std::string rank_file(int64_t world_rank) { return fmt::format("rank-{:05d}.safetensors", world_rank); }

void write_text(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

// The step of a complete checkpoint directory's name ("step-00000120" → 120); -1 for anything else (a .tmp save,
// rolled-back-*, latest).
int64_t checkpoint_step(const fs::path& path) {
  const std::string name = path.filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() == 5 || name.find_first_not_of("0123456789", 5) != std::string::npos)
    return -1;
  return std::stoll(name.substr(5));
}

// The complete checkpoints under root, by step.
std::vector<std::pair<int64_t, fs::path>> checkpoints_by_step(const std::string& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& entry : fs::directory_iterator(root))
    if (const int64_t step = checkpoint_step(entry.path()); entry.is_directory() && step >= 0)
      found.emplace_back(step, entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

void prune(const std::string& root, int64_t keep_last) {
  if (keep_last <= 0) return;
  const auto complete = checkpoints_by_step(root);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < complete.size(); ++i) fs::remove_all(complete[i].second);
}

// A non-negative integer key of meta.json, at most `max`: floats, negatives and larger values are BadInput
// (a float cast to an integer beyond its range would be undefined behaviour).
uint64_t meta_integer(const nlohmann::json& meta, const char* key, const std::string& path, uint64_t max) {
  const nlohmann::json& v = meta.at(key);
  if (!json_integer_in(v, 0, max))
    throw BadInput(fmt::format("{}: key '{}' = {} is invalid; expected an integer in [0, {}]", path, key, v.dump(), max));
  return v.get<uint64_t>();
}

// Copies the part of `local` (a parameter's new shard, flattened) that falls in this rank's optimizer
// shard [shard_begin, shard_begin + shard.numel()) given the parameter's flat offset.
void place(const at::Tensor& local, int64_t offset, at::Tensor& shard, int64_t shard_begin) {
  const at::Tensor flat = local.reshape({-1});
  const int64_t lo = std::max(offset, shard_begin);
  const int64_t hi = std::min(offset + flat.numel(), shard_begin + shard.numel());
  if (lo < hi) shard.narrow(0, lo - shard_begin, hi - lo).copy_(flat.narrow(0, lo - offset, hi - lo));
}

}  // namespace

struct CheckpointReader::Impl {
  std::string dir;
  nlohmann::json meta;
  ModelConfig config;
  int64_t tp = 1, dp = 1, optimizer_shards = 1;
  bool bf16 = false;
  std::vector<Parameter> params;
  std::optional<FlatLayout> layout;  // of the optimizer state as saved
  std::map<int64_t, std::unique_ptr<SafetensorsReader>> files;

  SafetensorsReader& file(int64_t world_rank) {
    auto it = files.find(world_rank);
    if (it != files.end()) return *it->second;
    const std::string name = rank_file(world_rank);
    const std::string path = dir + "/" + name;
    if (!fs::exists(path)) throw BadInput(path + ": checkpoint shard is missing");
    auto reader = std::make_unique<SafetensorsReader>(path);
    const auto& listed = meta.at("files");
    if (!listed.contains(name) || listed[name].get<uint32_t>() != reader->file_crc32c())
      throw BadInput(path + ": checksum mismatch (the file is corrupted or from another checkpoint)");
    return *files.emplace(world_rank, std::move(reader)).first->second;
  }
};

CheckpointReader::CheckpointReader(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.dir = dir;
  const std::string meta_path = dir + "/meta.json";
  if (!fs::exists(meta_path)) throw BadInput(dir + ": not a complete checkpoint (no meta.json)");
  try {
    c.meta = nlohmann::json::parse(read_file(meta_path));
    if (c.meta.at("format").get<std::string>() != "llama2_pretrain checkpoint")
      throw BadInput(meta_path + ": key 'format' is not \"llama2_pretrain checkpoint\"");
    if (meta_integer(c.meta, "version", meta_path, UINT32_MAX) != kCheckpointVersion)
      throw BadInput(fmt::format("{}: format version {}; expected {}", meta_path, c.meta.at("version").dump(),
                                 kCheckpointVersion));
    constexpr int64_t kMaxRanks = int64_t{1} << 24;  // keeps every layout product inside int64
    c.tp = static_cast<int64_t>(meta_integer(c.meta, "tp", meta_path, kMaxRanks));
    c.dp = static_cast<int64_t>(meta_integer(c.meta, "dp", meta_path, kMaxRanks));
    c.optimizer_shards = static_cast<int64_t>(meta_integer(c.meta, "optimizer_shards", meta_path, kMaxRanks));
    c.bf16 = c.meta.at("dtype").get<std::string>() == "BF16";
    c.config = model_config_from_json(c.meta.at("config").dump(), meta_path + " config");
    if (c.tp < 1 || c.config.num_key_value_heads % c.tp != 0 || c.dp < 1 || c.optimizer_shards < 1 ||
        c.optimizer_shards > c.dp)
      throw BadInput(fmt::format("{}: layout tp {}, dp {}, optimizer_shards {} is invalid; expected tp dividing "
                                 "num_key_value_heads ({}), 1 ≤ dp ≤ {} and 1 ≤ optimizer_shards ≤ dp",
                                 meta_path, c.tp, c.dp, c.optimizer_shards, c.config.num_key_value_heads, kMaxRanks));
    for (const char* key : {"step", "optimizer_step", "consumed_samples", "consumed_tokens"})
      meta_integer(c.meta, key, meta_path, INT64_MAX);
    for (const char* key : {"seq_len", "global_batch"})
      if (c.meta.contains(key)) meta_integer(c.meta, key, meta_path, INT64_MAX);
    meta_integer(c.meta, "seed", meta_path, UINT64_MAX);
    const nlohmann::json& files = c.meta.at("files");
    if (!files.is_object()) throw BadInput(meta_path + ": key 'files' is not an object of file name → CRC-32C");
    for (const auto& item : files.items()) meta_integer(files, item.key().c_str(), meta_path + " files", UINT32_MAX);
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(meta_path + ": malformed (" + e.what() + ")");
  }
  c.params = parameter_layout(c.config, c.tp);
  c.layout.emplace(c.params, c.tp, c.optimizer_shards);
}

CheckpointReader::~CheckpointReader() = default;
const ModelConfig& CheckpointReader::config() const { return impl_->config; }
int64_t CheckpointReader::tp() const { return impl_->tp; }
int64_t CheckpointReader::optimizer_step() const { return impl_->meta.at("optimizer_step").get<int64_t>(); }

TrainingState CheckpointReader::state() const {
  const nlohmann::json& m = impl_->meta;
  const auto text = [&](const char* key) { return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : ""; };
  return {m.at("step").get<int64_t>(), m.at("consumed_samples").get<int64_t>(), m.at("consumed_tokens").get<int64_t>(),
          m.at("seed").get<uint64_t>(), m.value("seq_len", int64_t{0}), m.value("global_batch", int64_t{0}),
          text("corpus"), text("tokenizer")};
}

at::Tensor CheckpointReader::weights(size_t i, int64_t t) {
  if (impl_->bf16) return optimizer_state("master", i, t);
  return impl_->file(t).read("model." + impl_->params[i].name).to(at::kFloat);
}

at::Tensor CheckpointReader::optimizer_state(const std::string& name, size_t i, int64_t t) {
  Impl& c = *impl_;
  const auto shape = local_shape(c.params[i], c.tp);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  at::Tensor out = at::empty({n}, at::kFloat);
  const FlatLayout& layout = *c.layout;
  for (int64_t done = 0; done < n;) {  // the range may span several DP shards (files)
    const int64_t position = layout.offset(i) + done, d = layout.shard_of(position);
    const int64_t count = layout.overlap(position, layout.offset(i) + n, d);
    out.narrow(0, done, count)
        .copy_(c.file(d * c.tp + t).read_range("optim." + name, position - layout.shard_begin(d), count));
    done += count;
  }
  return out.view(shape);
}

at::Tensor CheckpointReader::full_weights(size_t i) {
  std::vector<at::Tensor> shards;
  for (int64_t t = 0; t < impl_->tp; ++t) shards.push_back(weights(i, t));
  return unshard(shards, impl_->params[i].spec);
}

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

PreparedSave prepare_save(const std::string& root, const Llama& model, const ShardedAdamW& optimizer,
                          const TrainingState& state, const DistributedContext& dist, SnapshotBuffers* snapshot) {
  const ParallelLayout& l = dist.layout();
  PreparedSave save;
  save.root = root;
  save.name = checkpoint_name(state.step);
  save.tmp_dir = root + "/" + save.name + ".tmp";
  save.file = save.tmp_dir + "/" + rank_file(l.rank);
  if (l.rank == 0) {
    fs::create_directories(root);
    fs::remove_all(save.tmp_dir);  // a save that died midway
    fs::create_directories(save.tmp_dir);
  }
  dist.world().barrier();

  save.writer = SafetensorsWriter({{"tp_rank", std::to_string(l.tp_rank)}, {"dp_rank", std::to_string(l.dp_rank)}});
  const auto add = [&](const std::string& name, const at::Tensor& t) {
    if (!snapshot) return save.writer.add(name, t.detach());
    at::Tensor& copy = (*snapshot)[name];
    if (!copy.defined()) copy = at::empty_like(t, at::MemoryFormat::Contiguous);
    save.writer.add(name, copy.copy_(t.detach()));
  };
  auto& opt = const_cast<ShardedAdamW&>(optimizer);
  // bf16 training resumes, exports and evaluates from the fp32 master (optim.master): the bf16 model.* copy is
  // read by nothing and not written.
  if (l.dp_rank == 0 && !opt.separate_master())
    for (const Parameter& p : model.parameters()) add("model." + p.name, p.value);
  const int64_t optimizer_shards = optimizer.zero_1() ? l.dp : 1;
  if (l.dp_rank < optimizer_shards) {
    add("optim.exp_avg", opt.exp_avg());
    add("optim.exp_avg_sq", opt.exp_avg_sq());
    if (opt.separate_master()) add("optim.master", opt.master());
  }
  if (l.rank == 0)
    save.meta = nlohmann::json{
        {"format", "llama2_pretrain checkpoint"}, {"version", kCheckpointVersion},
        {"step", state.step}, {"optimizer_step", optimizer.step_count()},
        {"consumed_samples", state.consumed_samples}, {"consumed_tokens", state.consumed_tokens},
        {"seed", state.seed}, {"seq_len", state.seq_len}, {"global_batch", state.global_batch},
        {"corpus", state.corpus}, {"tokenizer", state.tokenizer}, {"tp", l.tp}, {"dp", l.dp}, {"world", l.world},
        {"optimizer_shards", optimizer_shards}, {"dtype", opt.separate_master() ? "BF16" : "F32"},
        {"config", nlohmann::json::parse(model_config_to_json(model.config()))}}.dump();
  return save;
}

uint32_t write_rank_file(const PreparedSave& save) { return save.writer.write(save.file); }

std::string publish_save(PreparedSave& save, uint32_t crc, int64_t keep_last, const DistributedContext& dist) {
  const ParallelLayout& l = dist.layout();
  const at::Tensor crcs = dist.world().all_gather(at::tensor({static_cast<int64_t>(crc)}, at::kLong));
  const std::string final_dir = save.root + "/" + save.name;
  if (l.rank == 0) {
    nlohmann::json files = nlohmann::json::object();
    for (int64_t r = 0; r < l.world; ++r) files[rank_file(r)] = static_cast<uint32_t>(crcs[r].item<int64_t>());
    nlohmann::json meta = nlohmann::json::parse(save.meta);
    meta["files"] = files;
    write_text(save.tmp_dir + "/meta.json", meta.dump(2) + "\n");
    fs::rename(save.tmp_dir, final_dir);
    sync_directory(save.root);
    write_text(save.root + "/latest", save.name + "\n");  // only now does `latest` move
    prune(save.root, keep_last);
  }
  dist.world().barrier();
  return final_dir;
}

std::string save_checkpoint(const std::string& root, int64_t keep_last, const Llama& model,
                            const ShardedAdamW& optimizer, const TrainingState& state, const DistributedContext& dist) {
  PreparedSave save = prepare_save(root, model, optimizer, state, dist, nullptr);
  return publish_save(save, write_rank_file(save), keep_last, dist);
}

std::string roll_back_after(const std::string& root, int64_t step) {
  if (!fs::is_directory(root)) return "";
  std::vector<fs::path> later;
  for (const auto& [s, path] : checkpoints_by_step(root))
    if (s > step) later.push_back(path);
  if (later.empty()) return "";
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  const std::string aside = root + "/rolled-back-" + stamp;
  fs::create_directories(aside);
  std::string names;
  for (const fs::path& path : later) {
    fs::rename(path, aside + "/" + path.filename().string());
    names += (names.empty() ? "" : ", ") + path.filename().string();
  }
  sync_directory(aside);
  sync_directory(root);
  // `latest` names the checkpoint resumed from when it is one of root's; else none of root's is newer than it.
  const std::string resumed = checkpoint_name(step);
  if (fs::exists(root + "/" + resumed + "/meta.json"))
    write_text(root + "/latest", resumed + "\n");
  else
    fs::remove(root + "/latest");
  return fmt::format("{} moved aside to {} (nothing deleted)", names, aside);
}

std::string resolve_checkpoint(const std::string& flag, const std::string& explicit_dir, const std::string& root) {
  const auto from_latest = [](const std::string& dir) {
    std::string name = read_file(dir + "/latest");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    if (name.empty() || name.find('/') != std::string::npos || !fs::exists(dir + "/" + name + "/meta.json"))
      throw BadInput(dir + "/latest names '" + name + "', which is not a complete checkpoint in " + dir);
    return dir + "/" + name;
  };
  if (!explicit_dir.empty()) {
    if (fs::exists(explicit_dir + "/meta.json")) return explicit_dir;
    if (fs::exists(explicit_dir + "/latest")) return from_latest(explicit_dir);
    throw BadInput(flag + " = " + explicit_dir + ": not a checkpoint (no meta.json) nor a directory with 'latest'");
  }
  return fs::exists(root + "/latest") ? from_latest(root) : "";
}

namespace {

// Parameter i's shard on this rank from the checkpoint's shards: read directly at the same tp, else
// through the full tensor.
at::Tensor reshard(const CheckpointReader& checkpoint, const Parameter& param, int64_t tp, int64_t tp_rank,
                   const std::function<at::Tensor(int64_t)>& saved_shard) {
  if (checkpoint.tp() == tp) return saved_shard(tp_rank);
  std::vector<at::Tensor> shards;
  for (int64_t t = 0; t < checkpoint.tp(); ++t) shards.push_back(saved_shard(t));
  return shard(unshard(shards, param.spec), param.spec, tp, tp_rank);
}

void require_same_model(const CheckpointReader& checkpoint, const ModelConfig& config, const std::string& dir) {
  const auto differences = config_differences(checkpoint.config(), config);
  if (differences.empty()) return;
  std::string keys;
  for (const auto& k : differences) keys += (keys.empty() ? "" : ", ") + k;
  throw BadInput(dir + ": saved with a different model config (keys differ: " + keys +
                 "); expected the same config.json");
}

}  // namespace

void load_weights(CheckpointReader& checkpoint, Llama& model, int64_t tp_rank) {
  c10::AutoGradMode no_grad(false);
  const int64_t tp = model.tensor_parallel().comm->size();
  std::vector<Parameter>& params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    params[i].value.copy_(reshard(checkpoint, params[i], tp, tp_rank, [&](int64_t t) { return checkpoint.weights(i, t); }));
}

TrainingState load_checkpoint(const std::string& dir, Llama& model, ShardedAdamW& optimizer,
                              const DistributedContext& dist) {
  c10::AutoGradMode no_grad(false);
  CheckpointReader checkpoint(dir);
  require_same_model(checkpoint, model.config(), dir);
  std::vector<Parameter>& params = model.parameters();
  const int64_t tp = dist.layout().tp, tp_rank = dist.layout().tp_rank;
  const FlatLayout& layout = optimizer.layout();
  const int64_t shard_begin = optimizer.shard_offset();
  for (size_t i = 0; i < params.size(); ++i) {
    // Read once: the model parameter and, with bf16, the fp32 master copy come from the same weights.
    const at::Tensor weights = reshard(checkpoint, params[i], tp, tp_rank, [&](int64_t t) { return checkpoint.weights(i, t); });
    params[i].value.copy_(weights);
    if (optimizer.separate_master()) place(weights, layout.offset(i), optimizer.master(), shard_begin);
    for (const char* name : {"exp_avg", "exp_avg_sq"}) {
      at::Tensor& state = std::string(name) == "exp_avg" ? optimizer.exp_avg() : optimizer.exp_avg_sq();
      place(reshard(checkpoint, params[i], tp, tp_rank, [&](int64_t t) { return checkpoint.optimizer_state(name, i, t); }),
            layout.offset(i), state, shard_begin);
    }
  }
  optimizer.set_step_count(checkpoint.optimizer_step());
  dist.world().barrier();
  return checkpoint.state();
}

}  // namespace llama2
