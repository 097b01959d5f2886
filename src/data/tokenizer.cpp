// Loads libllama2_spm.so with dlmopen(LM_ID_NEWLM) and calls its C API.
#include "llama2/data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include "llama2/util/errors.h"

namespace llama2 {

struct Tokenizer::Library {
  void* dl = nullptr;
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*vocab_size)(void*) = nullptr;
  int (*bos_id)(void*) = nullptr;
  int (*eos_id)(void*) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
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
    return std::shared_ptr<const Tokenizer::Library>(std::move(l));
  }();
  return lib;
}

}  // namespace

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

int Tokenizer::vocab_size() const { return lib_->vocab_size(handle_); }
int Tokenizer::bos_id() const { return lib_->bos_id(handle_); }
int Tokenizer::eos_id() const { return lib_->eos_id(handle_); }

}  // namespace llama2
