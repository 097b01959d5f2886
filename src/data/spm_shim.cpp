// libllama2_spm.so: sentencepiece behind a plain C API (ints, chars, sizes; no C++ types or exceptions
// cross it). Loaded with dlmopen(LM_ID_NEWLM) into its own link namespace, because Debian's
// libsentencepiece carries protobuf 3.14 symbols that clash with the protobuf 3.21 libtorch loads.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

void set_error(char* err, size_t err_len, const std::string& message) {
  if (err == nullptr || err_len == 0) return;
  std::strncpy(err, message.c_str(), err_len - 1);
  err[err_len - 1] = '\0';
}

}  // namespace

extern "C" {

void* llama2_spm_load(const char* path, char* err, size_t err_len) {
  try {
    auto* sp = new sentencepiece::SentencePieceProcessor();
    const auto status = sp->Load(path);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      delete sp;
      return nullptr;
    }
    return sp;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return nullptr;
  }
}

void llama2_spm_free(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

int llama2_spm_vocab_size(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize(); }
int llama2_spm_bos_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->bos_id(); }
int llama2_spm_eos_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->eos_id(); }
int llama2_spm_unk_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->unk_id(); }

// Encodes text[0, len) into ids. Returns the number of ids (written only if ≤ capacity), or -1 on error.
long llama2_spm_encode(void* h, const char* text, size_t len, int* ids, size_t capacity, char* err, size_t err_len) {
  try {
    std::vector<int> out;
    const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(std::string(text, len), &out);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return -1;
    }
    if (out.size() <= capacity) std::memcpy(ids, out.data(), out.size() * sizeof(int));
    return static_cast<long>(out.size());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

// The piece of `id` ("<s>", "▁the", ...) into out[0, capacity) (NUL-terminated, truncated); its length, or -1.
long llama2_spm_piece(void* h, int id, char* out, size_t capacity) {
  try {
    auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
    if (id < 0 || id >= sp->GetPieceSize() || capacity == 0) return -1;
    const std::string& piece = sp->IdToPiece(id);
    std::strncpy(out, piece.c_str(), capacity - 1);
    out[capacity - 1] = '\0';
    return static_cast<long>(piece.size());
  } catch (const std::exception&) {
    return -1;
  }
}

// The score of `id` (a log-probability for unigram models, minus the merge rank for BPE) and its type, numbered
// as sentencepiece's model file numbers them: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte (the processor
// cannot tell user-defined pieces, 4, from normal ones). 0 for an id outside the vocabulary.
float llama2_spm_score(void* h, int id) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  return id >= 0 && id < sp->GetPieceSize() ? sp->GetScore(id) : 0.0f;
}

int llama2_spm_type(void* h, int id) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  if (id < 0 || id >= sp->GetPieceSize()) return 0;
  if (sp->IsUnknown(id)) return 2;
  if (sp->IsControl(id)) return 3;
  if (sp->IsUnused(id)) return 5;
  if (sp->IsByte(id)) return 6;
  return 1;
}

// Decodes ids[0, n) into text. Returns the text's length (written only if ≤ capacity), or -1 on error (an id
// outside the vocabulary, say).
long llama2_spm_decode(void* h, const int* ids, size_t n, char* text, size_t capacity, char* err, size_t err_len) {
  try {
    auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
    std::string out;
    const auto status = sp->Decode(std::vector<int>(ids, ids + n), &out);
    if (!status.ok()) {
      set_error(err, err_len, status.ToString());
      return -1;
    }
    if (out.size() <= capacity) std::memcpy(text, out.data(), out.size());
    return static_cast<long>(out.size());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

// Trains a model with sentencepiece's own trainer from its flags ("--input=... --model_prefix=... ..."). 0 on
// success; -1 with the trainer's message.
int llama2_spm_train(const char* flags, char* err, size_t err_len) {
  try {
    const auto status = sentencepiece::SentencePieceTrainer::Train(flags);
    if (status.ok()) return 0;
    set_error(err, err_len, status.ToString());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  }
  return -1;
}

}  // extern "C"
