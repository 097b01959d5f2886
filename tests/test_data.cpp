// Tokenizer vs Debian's spm_encode, prepare-data output, the shard format byte by byte, window order
// over layouts and resumption, and the data errors. Needs assets/tokenizer.model (scripts/fetch-assets.sh).
#include <filesystem>
#include <fstream>
#include <set>
#include <cstring>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "llama2/data/blend.h"
#include "llama2/data/data_sources.h"
#include "llama2/data/documents.h"
#include "llama2/data/prepare_data.h"
#include "llama2/data/token_shard.h"
#include "llama2/data/token_windows.h"
#include "llama2/data/tokenizer.h"
#include "llama2/util/checksum.h"
#include "llama2/util/errors.h"
#include "test_support.h"

namespace llama2::testing {
namespace {
namespace fs = std::filesystem;

const std::string kTokenizer = std::string(LLAMA2_SOURCE_DIR) + "/assets/tokenizer.model";

struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / ("llama2_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++))) {
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
    return (path / name).string();
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  if (pipe != nullptr) EXPECT_EQ(::pclose(pipe), 0) << command;
  return out;
}

// spm_encode --output_format=id encodes each input line separately: one id list per line.
std::vector<std::vector<int>> spm_encode_lines(const std::string& text_file) {
  std::vector<std::vector<int>> lines;
  std::istringstream out(run("spm_encode --model=" + kTokenizer + " --output_format=id < " + text_file));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    lines.emplace_back(std::istream_iterator<int>(ids), std::istream_iterator<int>());
  }
  return lines;
}

const std::vector<std::string> kLines = {
    "The State of the Union is strong.", "  Leading spaces, tabs\tand numbers 1790–2021!",
    "Unicode: naïve café, Ελληνικά, 日本語, emoji 🙂.", "Repeated    spaces and a trailing space "};

TEST(Tokenizer, EncodesEachLineAsSpmEncodeDoes) {
  ASSERT_TRUE(fs::exists(kTokenizer)) << "run scripts/fetch-assets.sh first";
  TempDir dir;
  std::string text;
  for (const auto& l : kLines) text += l + "\n";
  const auto expected = spm_encode_lines(dir.file("text.txt", text));
  const Tokenizer tok(kTokenizer);
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  ASSERT_EQ(expected.size(), kLines.size());
  for (size_t i = 0; i < kLines.size(); ++i) EXPECT_EQ(tok.encode(kLines[i]), expected[i]) << kLines[i];
}

std::vector<int64_t> shard_tokens(const std::string& path, int64_t vocab = 32000) {
  const MappedShard shard(path, vocab);
  std::vector<int64_t> out(static_cast<size_t>(shard.tokens()));
  shard.copy(0, shard.tokens(), out.data());
  return out;
}

TEST(PrepareData, ShardHoldsBosIdsEosPerDocumentInInputOrder) {
  TempDir dir;
  std::string lines;
  for (const auto& l : kLines) lines += l + "\n";
  const auto expected_ids = spm_encode_lines(dir.file("lines.txt", lines));
  fs::create_directories(dir.path / "in");
  dir.file("in/a.txt", kLines[0]);  // a .txt file is one document
  std::string jsonl;
  for (size_t i = 1; i < kLines.size(); ++i) jsonl += nlohmann::json{{"text", kLines[i]}, {"id", i}}.dump() + "\n\n";
  dir.file("in/b.jsonl", jsonl);  // one document per non-blank line
  PrepareOptions o;
  o.tokenizer = kTokenizer;
  o.inputs = {(dir.path / "in").string()};
  o.output_dir = (dir.path / "out").string();
  o.val_fraction = 0;
  const PrepareSummary summary = prepare_data(o);
  std::vector<int64_t> expected;
  for (const auto& ids : expected_ids) {
    expected.push_back(1);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(2);
  }
  EXPECT_EQ(shard_tokens(o.output_dir + "/train-00000.bin"), expected);
  EXPECT_EQ(summary.documents, 4);
  const DatasetIndex index = read_index(o.output_dir);
  EXPECT_EQ(index.tokenizer_sha256, "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347");
  EXPECT_EQ(index.train.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(index.train.documents, 4);
  EXPECT_EQ(index.validation.tokens, 0);
}

TEST(PrepareData, ValidationSplitIsDeterministicAndDisjoint) {
  TempDir dir;
  std::string jsonl;
  for (int i = 0; i < 200; ++i) jsonl += nlohmann::json{{"text", "document number " + std::to_string(i)}}.dump() + "\n";
  PrepareOptions o;
  o.tokenizer = kTokenizer;
  o.inputs = {dir.file("docs.jsonl", jsonl)};
  o.val_fraction = 0.1;
  DatasetIndex first, second;
  for (DatasetIndex* index : {&first, &second}) {
    o.output_dir = (dir.path / (index == &first ? "a" : "b")).string();
    prepare_data(o);
    *index = read_index(o.output_dir);
  }
  EXPECT_EQ(first.validation.documents + first.train.documents, 200);
  EXPECT_GT(first.validation.documents, 5);   // ~20 expected
  EXPECT_LT(first.validation.documents, 40);
  EXPECT_EQ(first.validation.documents, second.validation.documents);
  EXPECT_EQ(shard_tokens((dir.path / "a/validation-00000.bin").string()),
            shard_tokens((dir.path / "b/validation-00000.bin").string()));
}

TEST(PrepareData, BadInputsNameTheFileAndPlace) {
  TempDir dir;
  PrepareOptions o;
  o.tokenizer = kTokenizer;
  o.output_dir = (dir.path / "out").string();
  const auto message = [&](std::vector<std::string> inputs) -> std::string {
    o.inputs = std::move(inputs);
    try {
      prepare_data(o);
    } catch (const BadInput& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string bad_utf8 = dir.file("bad.txt", std::string("valid text then \xC3\x28 invalid"));
  EXPECT_EQ(message({bad_utf8}), bad_utf8 + ": invalid UTF-8 at byte offset 16");
  const std::string no_text = dir.file("no_text.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  EXPECT_NE(message({no_text}).find(no_text + ": line 2: no string field \"text\""), std::string::npos);
  const std::string broken = dir.file("broken.jsonl", "{\"text\": \"ok\"\n");
  EXPECT_NE(message({broken}).find(broken + ": line 1: malformed JSON"), std::string::npos);
  EXPECT_EQ(message({(dir.path / "missing.txt").string()}),
            "--input = " + (dir.path / "missing.txt").string() + ": no such file or directory");
  const std::string empty = dir.file("empty.txt", "");
  EXPECT_EQ(message({empty}), "--input: every document is empty; expected some text");
  const std::string csv = dir.file("data.csv", "a,b");
  EXPECT_EQ(message({csv}), "--input = " + csv + ": unsupported file type; expected .txt or .jsonl");
}

TEST(Utf8, OffsetsOfInvalidSequences) {
  EXPECT_EQ(invalid_utf8_offset("plain ascii"), std::string::npos);
  EXPECT_EQ(invalid_utf8_offset("caf\xC3\xA9 \xF0\x9F\x99\x82"), std::string::npos);  // é, 🙂
  EXPECT_EQ(invalid_utf8_offset("ab\x80"), 2u);               // stray continuation byte
  EXPECT_EQ(invalid_utf8_offset("ab\xC0\xAF"), 2u);           // overlong '/'
  EXPECT_EQ(invalid_utf8_offset("ab\xED\xA0\x80"), 2u);       // surrogate
  EXPECT_EQ(invalid_utf8_offset("abc\xE2\x82"), 3u);          // truncated
}

TEST(Checksums, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(crc32c_tables("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// CRC-32C one bit at a time from its definition (reflected polynomial 0x82F63B78, inverted in and out).
uint32_t crc32c_bitwise(const uint8_t* p, size_t size, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return ~crc;
}

TEST(Checksums, BothCrc32cPathsEqualTheBitwiseDefinition) {
  std::mt19937 rng(7);
  std::vector<uint8_t> bytes(4096 + 16);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 8; ++offset)  // every alignment
    for (size_t size : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096}) {
      const uint8_t* p = bytes.data() + offset;
      const uint32_t want = crc32c_bitwise(p, size, 0);
      EXPECT_EQ(crc32c(p, size), want) << "offset " << offset << " size " << size;
      EXPECT_EQ(crc32c_tables(p, size), want) << "offset " << offset << " size " << size;
      const size_t half = size / 3;  // continued from a first part's CRC
      EXPECT_EQ(crc32c(p + half, size - half, crc32c(p, half)), want);
      EXPECT_EQ(crc32c(p, size, 0x12345678u), crc32c_bitwise(p, size, 0x12345678u));
    }
}

template <typename T>
T field(const std::string& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(Shard, HeaderFieldsByteByByteAndRoundTrip) {
  TempDir dir;
  for (const int64_t vocab : {int64_t{32000}, int64_t{70000}}) {
    const std::string path = (dir.path / "s.bin").string();
    const std::vector<uint32_t> tokens = {1, 500, 31999, 2, 7};
    write_shard(path, tokens, vocab, 2);
    const std::string bytes = read_bytes(path);
    const uint32_t width = vocab <= 65536 ? 2 : 4;
    ASSERT_EQ(bytes.size(), 64 + tokens.size() * width);
    EXPECT_EQ(bytes.substr(0, 8), "L2TOKSHD");
    EXPECT_EQ(field<uint32_t>(bytes, 8), 1u);
    EXPECT_EQ(field<uint32_t>(bytes, 12), width);
    EXPECT_EQ(field<uint64_t>(bytes, 16), static_cast<uint64_t>(vocab));
    EXPECT_EQ(field<uint64_t>(bytes, 24), 5u);
    EXPECT_EQ(field<uint64_t>(bytes, 32), 2u);
    EXPECT_EQ(field<uint32_t>(bytes, 40), crc32c(bytes.data() + 64, bytes.size() - 64));
    EXPECT_EQ(field<uint32_t>(bytes, 44), crc32c(bytes.data(), 44));
    EXPECT_EQ(bytes.substr(48, 16), std::string(16, '\0'));
    EXPECT_EQ(field<uint16_t>(bytes, 64 + width), 500);  // second token, little-endian
    EXPECT_EQ(shard_tokens(path, vocab), (std::vector<int64_t>{1, 500, 31999, 2, 7}));
  }
}

// Rewrites `path` after applying `edit` to its bytes, then returns the BadInput message of opening it.
std::string open_error(const std::string& path, const std::function<void(std::string&)>& edit, int64_t vocab = 32000) {
  std::string bytes = read_bytes(path);
  edit(bytes);
  std::ofstream(path + ".bad", std::ios::binary) << bytes;
  try {
    MappedShard shard(path + ".bad", vocab);
  } catch (const BadInput& e) {
    return e.what();
  }
  return "no error";
}

TEST(Shard, BadShardsNameFileAndOffset) {
  TempDir dir;
  const std::string path = (dir.path / "s.bin").string();
  write_shard(path, {1, 2, 3, 4}, 32000, 1);
  const std::string bad = path + ".bad: offset ";
  EXPECT_EQ(open_error(path, [](std::string& b) { b[0] = 'X'; }),
            bad + "0: wrong magic; expected \"L2TOKSHD\" (a prepare-data shard)");
  EXPECT_EQ(open_error(path, [](std::string& b) { b[8] = 9; }), bad + "8: format version 9; expected 1");
  EXPECT_EQ(open_error(path, [](std::string& b) { b[20] = 1; }), bad + "44: header checksum mismatch (corrupted header)");
  EXPECT_EQ(open_error(path, [](std::string& b) { b.resize(b.size() - 1); }),
            bad + "71: file has 71 bytes; the header's 4 tokens need 72 (truncated or padded shard)");
  EXPECT_EQ(open_error(path, [](std::string& b) { b[66] ^= 1; }), bad + "40: token checksum mismatch");
  EXPECT_EQ(open_error(path, [](std::string&) {}, 3),
            bad + "68: token id 3 >= the model's vocab_size 3; expected data made for this vocabulary");
  EXPECT_EQ(open_error(path, [](std::string& b) { b.resize(10); }),
            path + ".bad: truncated token shard: 10 bytes, expected at least the 64-byte header");
}

// A corpus whose token at position i is i (vocab 2^20, so uint32 shards), split over two shards.
struct CountingCorpus {
  TempDir dir;
  SplitIndex split;
  CountingCorpus(int64_t tokens) {
    std::vector<uint32_t> a, b;
    for (int64_t i = 0; i < tokens; ++i) (i < tokens / 3 ? a : b).push_back(static_cast<uint32_t>(i));
    write_shard((dir.path / "s0.bin").string(), a, 1 << 20, 1);
    write_shard((dir.path / "s1.bin").string(), b, 1 << 20, 1);
    split = {{"s0.bin", "s1.bin"}, tokens, 2};
  }
  TokenWindows windows(int64_t seq_len, bool shuffle) const {
    return TokenWindows(dir.path.string(), split, seq_len, 1 << 20, 7, shuffle);
  }
};

TEST(Windows, EveryWindowOnceInAnEpochWhateverTheLayout) {
  const int64_t seq = 8, windows = 48;
  const CountingCorpus corpus(windows * seq + 1);
  const TokenWindows data = corpus.windows(seq, true);
  ASSERT_EQ(data.windows(), windows);
  for (const int64_t dp : {1, 2, 4})
    for (const int64_t accum : {1, 2}) {
      const int64_t batch = 3, steps = windows / (batch * accum * dp);
      std::multiset<int64_t> seen;
      for (int64_t step = 0; step < steps; ++step)
        for (int64_t r = 0; r < dp; ++r)
          for (int64_t u = 0; u < accum; ++u) {
            const at::Tensor s = data.samples(first_sample(step, u, r, batch, accum, dp), batch);
            for (int64_t i = 0; i < batch; ++i) {
              ASSERT_EQ(s[i][seq].item<int64_t>() - s[i][0].item<int64_t>(), seq);  // seq + 1 consecutive tokens
              seen.insert(s[i][0].item<int64_t>() / seq);
            }
          }
      EXPECT_EQ(seen.size(), static_cast<size_t>(windows)) << "dp " << dp << " accum " << accum;
      EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), static_cast<size_t>(windows));
    }
}

TEST(Windows, ResumeFromConsumedSamplesAndReshuffleEachEpoch) {
  const CountingCorpus corpus(20 * 4 + 1);
  const TokenWindows running = corpus.windows(4, true);
  at::Tensor first_epoch = running.samples(0, 20), second_epoch = running.samples(20, 20);
  const at::Tensor continued = running.samples(33, 5);
  const TokenWindows resumed = corpus.windows(4, true);  // a new process that consumed 33 samples
  EXPECT_TRUE(at::equal(resumed.samples(33, 5), continued));
  EXPECT_FALSE(at::equal(first_epoch, second_epoch));
  EXPECT_TRUE(at::equal(std::get<0>(first_epoch.select(1, 0).sort()), std::get<0>(second_epoch.select(1, 0).sort())));
  EXPECT_TRUE(at::equal(corpus.windows(4, false).samples(0, 2).select(1, 0), at::tensor({0, 4}, at::kLong)));
}

TEST(DataSources, RefusesOtherTokenizerSmallCorpusAndLargeIds) {
  TempDir dir;
  PrepareOptions p;
  p.tokenizer = kTokenizer;
  p.inputs = {dir.file("doc.txt", "A short document for a small corpus.")};
  p.output_dir = (dir.path / "data").string();
  p.val_fraction = 0;
  prepare_data(p);
  ModelConfig c = small_config(32000);
  TrainOptions o;
  o.data_dir = {p.output_dir};
  o.seq_len = 4;
  const auto message = [&](const ModelConfig& config, int64_t global_batch) -> std::string {
    try {
      open_data(config, o, global_batch);
    } catch (const BadInput& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message(c, 1), "no error");
  EXPECT_NE(message(c, 1000).find("fewer than one global batch of 1000 samples"), std::string::npos);
  ModelConfig small = small_config(1000);
  EXPECT_NE(message(small, 1).find("its tokenizer has 32000 pieces but the config's vocab_size is 1000"),
            std::string::npos);
  // Another valid sentencepiece model, trained here by Debian's spm_train.
  std::string corpus;
  for (int i = 0; i < 200; ++i) corpus += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  run("spm_train --input=" + dir.file("corpus.txt", corpus) + " --model_prefix=" + (dir.path / "other").string() +
      " --vocab_size=60 --minloglevel=2 2>/dev/null");
  o.tokenizer = (dir.path / "other.model").string();
  EXPECT_NE(message(c, 1).find("but --tokenizer = " + o.tokenizer + " differs"), std::string::npos);
  o.tokenizer = kTokenizer;
  EXPECT_EQ(message(c, 1), "no error");
  o.data_dir = {(dir.path / "nowhere").string()};
  EXPECT_NE(message(c, 1).find("no index.json"), std::string::npos);
}

// A corpus whose sample k is the row [id, k]: the blend's choices read back from its output.
class Tagged : public SampleSource {
 public:
  explicit Tagged(int64_t id) : id_(id) {}
  at::Tensor samples(int64_t first, int64_t count) const override {
    at::Tensor out = at::empty({count, 2}, at::kLong);
    for (int64_t i = 0; i < count; ++i) {
      out[i][0] = id_;
      out[i][1] = first + i;
    }
    return out;
  }

 private:
  int64_t id_;
};

BlendedSamples tagged_blend(const std::vector<double>& weights) {
  std::vector<std::unique_ptr<SampleSource>> sources;
  for (size_t c = 0; c < weights.size(); ++c) sources.push_back(std::make_unique<Tagged>(static_cast<int64_t>(c)));
  return BlendedSamples(std::move(sources), weights);
}

// Every prefix n of the first 10,000 samples holds corpus c within one sample of w_c·n (weights given unnormalised
// to check the normalisation), each corpus's samples in its own order 0, 1, 2, ...; by hand, no other reference.
TEST(Blend, EveryPrefixWithinOneSampleOfTheWeights) {
  for (const std::vector<double>& weights : {std::vector<double>{6, 3, 1}, std::vector<double>{998, 1, 1}}) {
    const BlendedSamples blend = tagged_blend(weights);
    const double total = weights[0] + weights[1] + weights[2];
    const at::Tensor s = blend.samples(0, 10000);  // [n, 2]
    std::vector<int64_t> count(3, 0);
    double worst = 0;
    for (int64_t n = 1; n <= 10000; ++n) {
      const int64_t c = s[n - 1][0].item<int64_t>();
      ASSERT_EQ(s[n - 1][1].item<int64_t>(), count[c]) << "corpus " << c << " read out of its order";
      ++count[c];
      for (size_t k = 0; k < 3; ++k)
        worst = std::max(worst, std::abs(static_cast<double>(count[k]) - weights[k] / total * static_cast<double>(n)));
    }
    EXPECT_LT(worst, 1.0) << "weights " << weights[0] << "/" << weights[1] << "/" << weights[2];
    EXPECT_EQ(blend.counts(10000), count);
    EXPECT_EQ(blend.counts(7777), (std::vector<int64_t>{  // the prefix counts by hand from the rows
        (s.narrow(0, 0, 7777).select(1, 0) == 0).sum().item<int64_t>(),
        (s.narrow(0, 0, 7777).select(1, 0) == 1).sum().item<int64_t>(),
        (s.narrow(0, 0, 7777).select(1, 0) == 2).sum().item<int64_t>()}));
  }
}

// The stream is a function of the global index alone: assembled from the micro-batches of dp 1, 2 and 4 (the same
// global batch of 8) it is the same, and a new process that resumes at sample 5000 (past the first block of the
// blend's counts) continues it exactly.
TEST(Blend, SameStreamAtEveryDpSizeAndAfterAResume) {
  const BlendedSamples blend = tagged_blend({0.6, 0.3, 0.1});
  const at::Tensor whole = blend.samples(0, 800);
  for (const auto& [dp, batch, accum] : {std::tuple<int64_t, int64_t, int64_t>{1, 8, 1}, {2, 2, 2}, {4, 2, 1}}) {
    at::Tensor assembled = at::empty({800, 2}, at::kLong);
    for (int64_t step = 0; step < 100; ++step)
      for (int64_t r = 0; r < dp; ++r)
        for (int64_t u = 0; u < accum; ++u) {
          const int64_t first = first_sample(step, u, r, batch, accum, dp);
          assembled.narrow(0, first, batch).copy_(blend.samples(first, batch));
        }
    EXPECT_TRUE(at::equal(assembled, whole)) << "dp " << dp;
  }
  const at::Tensor continued = blend.samples(5000, 300);
  EXPECT_TRUE(at::equal(tagged_blend({0.6, 0.3, 0.1}).samples(5000, 300), continued));
}

TEST(Blend, DataDirFormsAndErrors) {
  const std::vector<Corpus> blend = data_blend({"3", "data/web", "1", "other/code/"});
  ASSERT_EQ(blend.size(), 2u);
  EXPECT_EQ(blend[0].name, "web");
  EXPECT_EQ(blend[1].name, "code");
  EXPECT_DOUBLE_EQ(blend[0].weight, 0.75);
  EXPECT_EQ(data_blend({"data/web"}).front().weight, 1.0);
  const std::vector<Corpus> same = data_blend({"1", "a/data", "1", "b/data"});  // one name twice: the paths
  EXPECT_EQ(same[0].name, "a/data");
  EXPECT_EQ(same[1].name, "b/data");
  const auto message = [](const std::vector<std::string>& values) -> std::string {
    try {
      data_blend(values);
    } catch (const BadInput& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message({"1", "a", "2"}), "--data_dir = 1 a 2: 3 values; expected DIR, or WEIGHT DIR pairs such as "
                                      "--data_dir 0.7 data/web 0.3 data/code");
  EXPECT_EQ(message({"0", "a", "1", "b"}), "--data_dir = 0 a 1 b: weight '0' is not a positive number; expected DIR, "
                                           "or WEIGHT DIR pairs such as --data_dir 0.7 data/web 0.3 data/code");
  EXPECT_NE(message({"a", "b"}).find("weight 'a' is not a positive number"), std::string::npos);
  EXPECT_NE(message({"nan", "a", "1", "b"}).find("weight 'nan'"), std::string::npos);
}

}  // namespace
}  // namespace llama2::testing
