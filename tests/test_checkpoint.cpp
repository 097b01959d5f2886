// safetensors byte layout and validation; HF export checked by the independent reference Llama, and
// the export → --model_path round trip bitwise.
#include <filesystem>
#include <fstream>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/checkpoint/checkpoint.h"
#include "llama2/checkpoint/gguf.h"
#include "llama2/checkpoint/gguf_export.h"
#include "llama2/checkpoint/hf_interop.h"
#include "llama2/checkpoint/safetensors.h"
#include "llama2/optim/adamw.h"
#include "llama2/util/errors.h"
#include "reference_llama.h"
#include "test_support.h"

namespace llama2::testing {
namespace {
namespace fs = std::filesystem;

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("llama2_ckpt_test_" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(path); }
  ~Scratch() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Safetensors, LayoutByTheSpecAndRoundTrip) {
  Scratch dir;
  const at::Tensor a = at::arange(6, at::kFloat).view({2, 3}), b = at::full({4}, 7, at::kLong);
  SafetensorsWriter writer(std::map<std::string, std::string>{{"k", "v"}});
  writer.add("a", a);
  writer.add("b", b);
  writer.write(dir / "t.safetensors");
  const std::string bytes = bytes_of(dir / "t.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(n % 8, 0u);  // the data buffer starts 8-byte aligned
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({24, 56}));
  EXPECT_EQ(header["__metadata__"]["k"], "v");
  EXPECT_EQ(bytes.size(), 8 + n + 56);
  float third;
  std::memcpy(&third, bytes.data() + 8 + n + 8, 4);
  EXPECT_EQ(third, 2.0f);
  const SafetensorsReader reader(dir / "t.safetensors");
  EXPECT_TRUE(at::equal(reader.read("a"), a));
  EXPECT_TRUE(at::equal(reader.read("b"), b));
  EXPECT_TRUE(at::equal(reader.read_range("a", 2, 3), at::arange(2, 5, at::kFloat)));
  EXPECT_EQ(reader.metadata().at("k"), "v");
}

TEST(Safetensors, HeadersThatLieAreRejected) {
  Scratch dir;
  const auto message = [&](const std::string& header_json, size_t data_bytes) -> std::string {
    std::string file(8, '\0');
    const uint64_t n = header_json.size();
    std::memcpy(file.data(), &n, 8);
    file += header_json + std::string(data_bytes, '\0');
    std::ofstream(dir / "bad.safetensors", std::ios::binary) << file;
    try {
      SafetensorsReader r(dir / "bad.safetensors");
    } catch (const BadInput& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string t = R"("t":{"dtype":"F32","shape":[2],"data_offsets":)";
  EXPECT_EQ(message("{" + t + "[0,8]}}", 8), "no error");
  EXPECT_NE(message("{" + t + "[0,12]}}", 8).find("do not hold 2 elements of F32"), std::string::npos);
  EXPECT_NE(message("{" + t + "[8,16]}}", 8).find("beyond the data"), std::string::npos);
  EXPECT_NE(message("{" + t + "[0,8]},\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8)
                .find("overlap or leave a hole at byte 4"), std::string::npos);
  EXPECT_NE(message("{" + t + "[0,8]},\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 12)
                .find("overlap or leave a hole"), std::string::npos);
  EXPECT_NE(message("{" + t + "[4,12]}}", 12).find("overlap or leave a hole at byte 0"), std::string::npos);
  EXPECT_NE(message("{" + t + "[0,8]}}", 12).find("the tensors index 8 bytes but the data holds 12"), std::string::npos);
  EXPECT_NE(message(R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8).find("unsupported dtype Q4"),
            std::string::npos);
  EXPECT_NE(message("{not json", 0).find("malformed JSON header"), std::string::npos);
}

// A trained-looking tiny checkpoint (random weights, a few optimizer steps) saved by this process.
std::string make_checkpoint(const Scratch& dir, const ModelConfig& c) {
  context().set_tensor_parallel(1, 1);
  Llama model(c, {&context().tp(), false}, {8, 5, at::kFloat});
  ShardedAdamW optimizer(model.parameters(), context().tp(), context().dp(), AdamWOptions{});
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    model.loss(random_tokens(2, 8, c.vocab_size, step), random_tokens(2, 8, c.vocab_size, step + 9)).backward();
    optimizer.step(1e-2);
  }
  return save_checkpoint(dir / "ckpt", 0, model, optimizer, {3, 6, 48, 5}, context());
}

TEST(HuggingFace, ExportedModelMatchesIndependentReferenceAndRoundTripsBitwise) {
  Scratch dir;
  ModelConfig c = small_config(96, 32, 2);
  const std::string ckpt = make_checkpoint(dir, c);
  ASSERT_EQ(export_hf(ckpt, dir / "hf", 1 << 30), 1);
  ASSERT_GT(export_hf(ckpt, dir / "hf_sharded", 20000), 1);  // small shards: several files + index

  // The reference reads the exported HF tensors by their HF names.
  const SafetensorsReader file(dir / "hf/model.safetensors");
  Weights hf;
  for (const auto& [name, entry] : file.entries()) hf[name] = file.read(name);
  EXPECT_EQ(hf.count("model.layers.1.self_attn.k_proj.weight"), 1u);
  EXPECT_EQ(hf.at("model.layers.1.mlp.gate_proj.weight").sizes(), (std::vector<int64_t>{48, 32}));
  const ModelConfig exported = load_hf_config(dir / "hf");
  EXPECT_TRUE(config_differences(exported, c).empty());

  c10::AutoGradMode no_grad(false);
  for (const std::string& source : {dir / "hf", dir / "hf_sharded"}) {
    Llama loaded(c, {&Communicator::self(), false}, {8, 999, at::kFloat});
    load_hf_weights(source, loaded, 0);
    const at::Tensor tokens = random_tokens(2, 8, c.vocab_size, 42);
    const at::Tensor ours = loaded.logits(tokens).permute({1, 0, 2});
    EXPECT_TRUE(all_close(ours, reference_logits(c, hf, tokens), 1e-4, 1e-4)) << source;
    CheckpointReader checkpoint(ckpt);
    for (size_t i = 0; i < loaded.parameters().size(); ++i)
      EXPECT_TRUE(at::equal(loaded.parameters()[i].value, checkpoint.full_weights(i))) << loaded.parameters()[i].name;
  }
}

// A directory laid out as meta-llama/Llama-2-7b-hf is: two F16 shards, model.safetensors.index.json, a config
// with "torch_dtype": "float16", and the rotary_emb.inv_freq tensors older exports carry. It loads: every
// weight equals the F32 export's rounded to F16 exactly (F16 → fp32 is exact), the logits agree with the F32
// export's within F16 rounding (5e-3 of their scale) and so does the loss (1e-3 relative); the inv_freq tensors
// are ignored; an inf is refused.
TEST(HuggingFace, MetaLayoutWithF16ShardsLoads) {
  Scratch dir;
  const ModelConfig c = small_config(96, 32, 2);
  export_hf(make_checkpoint(dir, c), dir / "hf", 1 << 30);
  const SafetensorsReader f32(dir / "hf/model.safetensors");
  const auto write_meta = [&](const std::string& out, const std::string& poisoned) {
    fs::create_directories(out);
    SafetensorsWriter shards[2];
    std::vector<at::Tensor> keep;
    nlohmann::json weight_map;
    int i = 0;
    for (const auto& [name, entry] : f32.entries()) {
      keep.push_back(f32.read(name).to(at::kHalf).contiguous());
      if (name == poisoned) keep.back().view({-1})[0] = std::numeric_limits<float>::infinity();
      const int file = i++ % 2;
      shards[file].add(name, keep.back());
      weight_map[name] = fmt::format("model-0000{}-of-00002.safetensors", file + 1);
    }
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string name = fmt::format("model.layers.{}.self_attn.rotary_emb.inv_freq", l);
      keep.push_back(at::rand({c.head_dim() / 2}));
      shards[0].add(name, keep.back());
      weight_map[name] = "model-00001-of-00002.safetensors";
    }
    for (int file = 0; file < 2; ++file) shards[file].write(out + fmt::format("/model-0000{}-of-00002.safetensors", file + 1));
    std::ofstream(out + "/model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}}},
                                                                          {"weight_map", weight_map}}.dump(2);
    nlohmann::json config = nlohmann::json::parse(bytes_of(dir / "hf/config.json"));
    config["torch_dtype"] = "float16";
    std::ofstream(out + "/config.json") << config.dump(2);
  };
  write_meta(dir / "meta", "");
  c10::AutoGradMode no_grad(false);
  Llama from_f16(c, {&Communicator::self(), false}, {8, 1, at::kFloat});
  Llama from_f32(c, {&Communicator::self(), false}, {8, 2, at::kFloat});
  load_hf_weights(dir / "meta", from_f16, 0);
  load_hf_weights(dir / "hf", from_f32, 0);
  for (size_t i = 0; i < from_f16.parameters().size(); ++i)
    EXPECT_TRUE(at::equal(from_f16.parameters()[i].value, from_f32.parameters()[i].value.to(at::kHalf).to(at::kFloat)))
        << from_f16.parameters()[i].name;
  const at::Tensor tokens = random_tokens(2, 8, c.vocab_size, 42), targets = random_tokens(2, 8, c.vocab_size, 43);
  EXPECT_TRUE(close_to_scale(from_f16.logits(tokens), from_f32.logits(tokens), 5e-3));
  const double loss_f16 = from_f16.loss(tokens, targets).item<double>(), loss_f32 = from_f32.loss(tokens, targets).item<double>();
  EXPECT_NEAR(loss_f16, loss_f32, 1e-3 * loss_f32);  // the eval loss, within F16 rounding of the weights

  write_meta(dir / "poisoned", "model.layers.1.mlp.up_proj.weight");
  try {
    load_hf_weights(dir / "poisoned", from_f16, 0);
    FAIL() << "no error";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'model.layers.1.mlp.up_proj.weight' holds inf or NaN"),
              std::string::npos) << e.what();
  }
}

TEST(HuggingFace, WrongShapeOrDtypeIsBadInput) {
  Scratch dir;
  ModelConfig c = small_config(96, 32, 2);
  export_hf(make_checkpoint(dir, c), dir / "hf", 1 << 30);
  ModelConfig wider = c;
  wider.intermediate_size = 64;
  Llama model(wider, {&Communicator::self(), false}, {8, 1, at::kFloat});
  try {
    load_hf_weights(dir / "hf", model, 0);
    FAIL() << "no error";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [48, 32] but the "
                                         "config needs [64, 32]"),
              std::string::npos)
        << e.what();
  }
}

// llama.cpp pairs rotary dimensions (2i, 2i+1); HF pairs (i, i + d/2). Two heads of d = 4, rows numbered by hand.
TEST(Gguf, RotaryRowsPairAdjacentPerHead) {
  const at::Tensor hf = at::arange(8, at::kFloat).reshape({8, 1});
  const at::Tensor ours = rotary_rows_for_llama_cpp(hf, 2);
  const std::vector<float> expected = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(ours[i][0].item<float>(), expected[static_cast<size_t>(i)]) << i;
}

// q8_0 of one block by hand: max |x| = 12.7, so d = 0.1 (f16 0x2E66) and q = round(x / 0.1); 0.25 -> 2.5 rounds away
// from zero to 3, as C's roundf.
TEST(Gguf, Q8BlockByHand) {
  at::Tensor x = at::zeros({1, 32}, at::kFloat);
  x[0][0] = 12.7f, x[0][1] = -6.35f, x[0][2] = 0.25f, x[0][3] = -0.25f, x[0][4] = 1.0f;
  const std::vector<uint8_t> block = ggml_encode(x, GgmlType::q8_0);
  ASSERT_EQ(block.size(), 34u);
  EXPECT_EQ(block[0] | block[1] << 8, 0x2E66);
  const std::vector<int> q = {127, -64, 3, -3, 10};
  for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(static_cast<int8_t>(block[2 + i]), q[i]) << i;
  for (size_t i = q.size(); i < 32; ++i) EXPECT_EQ(block[2 + i], 0) << i;
  EXPECT_EQ(ggml_bytes(GgmlType::q8_0, 64), 68);
}

}  // namespace
}  // namespace llama2::testing
