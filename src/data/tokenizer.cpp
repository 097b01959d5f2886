// Loads libllama2_spm.so with dlmopen(LM_ID_NEWLM) and calls its C API.
#include "llama2/data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {

struct Tokenizer::Library {
  void* dl = nullptr;
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*vocab_size)(void*) = nullptr;
  int (*bos_id)(void*) = nullptr;
  int (*eos_id)(void*) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
  long (*decode)(void*, const int*, size_t, char*, size_t, char*, size_t) = nullptr;
  long (*piece)(void*, int, char*, size_t) = nullptr;
  int (*unk_id)(void*) = nullptr;
  int (*train)(const char*, char*, size_t) = nullptr;
  float (*score)(void*, int) = nullptr;
  int (*type)(void*, int) = nullptr;
};

namespace {

// The shim sits next to the executable (build/ or an install's bin/), else at its build-tree path.
std::string shim_path() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const auto& dir : {exe.parent_path(), exe.parent_path().parent_path()}) {
      const auto candidate = dir / "libllama2_spm.so";
      if (std::filesystem::exists(candidate)) return candidate.string();
    }
  }
  return LLAMA2_SPM_SHIM_PATH;
}

template <typename F>
void bind(void* dl, const char* name, F& target) {
  target = reinterpret_cast<F>(dlsym(dl, name));
  if (target == nullptr) throw RuntimeFailure(std::string("tokenizer shim lacks symbol ") + name);
}

std::shared_ptr<const Tokenizer::Library> library() {
  static std::shared_ptr<const Tokenizer::Library> lib = [] {
    auto l = std::make_shared<Tokenizer::Library>();
    const std::string path = shim_path();
    l->dl = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (l->dl == nullptr) throw RuntimeFailure("cannot load the tokenizer library " + path + ": " + dlerror());
    bind(l->dl, "llama2_spm_load", l->load);
    bind(l->dl, "llama2_spm_free", l->free);
    bind(l->dl, "llama2_spm_vocab_size", l->vocab_size);
    bind(l->dl, "llama2_spm_bos_id", l->bos_id);
    bind(l->dl, "llama2_spm_eos_id", l->eos_id);
    bind(l->dl, "llama2_spm_encode", l->encode);
    bind(l->dl, "llama2_spm_decode", l->decode);
    bind(l->dl, "llama2_spm_piece", l->piece);
    bind(l->dl, "llama2_spm_unk_id", l->unk_id);
    bind(l->dl, "llama2_spm_train", l->train);
    bind(l->dl, "llama2_spm_score", l->score);
    bind(l->dl, "llama2_spm_type", l->type);
    return std::shared_ptr<const Tokenizer::Library>(std::move(l));
  }();
  return lib;
}

}  // namespace

void train_sentencepiece(const std::string& flags) {
  char err[1024] = {0};
  if (library()->train(flags.c_str(), err, sizeof(err)) != 0)
    throw BadInput(std::string("sentencepiece's trainer refused: ") + err);
}

Tokenizer::Tokenizer(const std::string& model_path) : lib_(library()) {
  if (!std::filesystem::is_regular_file(model_path))
    throw BadInput("--tokenizer = " + model_path + ": no such file; expected a sentencepiece tokenizer.model");
  char err[512] = {0};
  handle_ = lib_->load(model_path.c_str(), err, sizeof(err));
  if (handle_ == nullptr)
    throw BadInput("--tokenizer = " + model_path + ": not a sentencepiece model (" + err + ")");
}

Tokenizer::~Tokenizer() {
  if (handle_ != nullptr) lib_->free(handle_);
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids(text.size() / 2 + 16);
  char err[512] = {0};
  for (;;) {
    const long n = lib_->encode(handle_, text.data(), text.size(), ids.data(), ids.size(), err, sizeof(err));
    if (n < 0) throw RuntimeFailure(std::string("sentencepiece encode failed: ") + err);
    if (static_cast<size_t>(n) <= ids.size()) {
      ids.resize(static_cast<size_t>(n));
      return ids;
    }
    ids.resize(static_cast<size_t>(n));
  }
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string text(ids.size() * 8 + 16, '\0');
  char err[512] = {0};
  for (;;) {
    const long n = lib_->decode(handle_, ids.data(), ids.size(), text.data(), text.size(), err, sizeof(err));
    if (n < 0) throw RuntimeFailure(std::string("sentencepiece decode failed: ") + err);
    const bool fits = static_cast<size_t>(n) <= text.size();
    text.resize(static_cast<size_t>(n));
    if (fits) return text;
  }
}

std::string Tokenizer::piece(int id) const {
  char out[256] = {0};
  if (lib_->piece(handle_, id, out, sizeof(out)) < 0)
    throw RuntimeFailure(fmt::format("tokenizer: no piece for id {}", id));
  return out;
}

void write_hf_tokenizer_files(const Tokenizer& t, const std::string& tokenizer_path, const std::string& dir,
                              int64_t max_positions) {
  const std::string bos = t.piece(t.bos_id()), eos = t.piece(t.eos_id()), unk = t.piece(t.unk_id());
  std::filesystem::copy_file(tokenizer_path, dir + "/tokenizer.model", std::filesystem::copy_options::overwrite_existing);
  const auto write = [&](const std::string& name, const nlohmann::json& j) {
    AtomicFile file(dir + "/" + name);
    const std::string text = j.dump(2) + "\n";
    file.write(text.data(), text.size());
    file.commit();
  };
  write("special_tokens_map.json", {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}});
  write("tokenizer_config.json", {{"tokenizer_class", "LlamaTokenizer"}, {"bos_token", bos}, {"eos_token", eos},
                                  {"unk_token", unk}, {"pad_token", nullptr}, {"add_bos_token", true},
                                  {"add_eos_token", false}, {"clean_up_tokenization_spaces", false},
                                  {"legacy", false}, {"model_max_length", max_positions},
                                  {"padding_side", "right"}, {"sp_model_kwargs", nlohmann::json::object()}});
  write("generation_config.json", {{"bos_token_id", t.bos_id()}, {"eos_token_id", t.eos_id()},
                                   {"do_sample", true}, {"temperature", 0.6}, {"top_p", 0.9},
                                   {"max_length", max_positions}});
}

std::vector<int> encode_for_model(const Tokenizer& tokenizer, std::string_view text, const std::string& tokenizer_path,
                                  int64_t vocab_size) {
  std::vector<int> ids = tokenizer.encode(text);
  ids.insert(ids.begin(), tokenizer.bos_id());
  for (int id : ids)
    if (id >= vocab_size)
      throw BadInput(fmt::format("--tokenizer = {}: token id {} >= the model's vocab_size {}; expected the tokenizer "
                                 "the model was trained with",
                                 tokenizer_path, id, vocab_size));
  return ids;
}

int Tokenizer::vocab_size() const { return lib_->vocab_size(handle_); }
int Tokenizer::bos_id() const { return lib_->bos_id(handle_); }
int Tokenizer::eos_id() const { return lib_->eos_id(handle_); }
int Tokenizer::unk_id() const { return lib_->unk_id(handle_); }
float Tokenizer::score(int id) const { return lib_->score(handle_, id); }
PieceType Tokenizer::type(int id) const { return static_cast<PieceType>(lib_->type(handle_, id)); }

}  // namespace llama2
