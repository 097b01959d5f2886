// generate: prompt → KV-cached decoding → text.
#include "llama2/infer/generate.h"

#include <chrono>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "llama2/checkpoint/model_source.h"
#include "llama2/data/tokenizer.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/util/errors.h"

namespace llama2 {
namespace {

// This rank's logits [1, Vp/tp] → the full vocabulary's [vocab] (padding rows dropped).
at::Tensor full_logits(const Llama& model, const at::Tensor& shard) {
  const at::Tensor all = model.tensor_parallel().comm->all_gather(shard.reshape({-1}).contiguous());
  return all.narrow(0, 0, model.config().vocab_size);
}

}  // namespace

std::vector<int> generate_tokens(const Llama& model, const std::vector<int>& prompt, int64_t max_new, int eos,
                                 Sampler& sampler) {
  c10::AutoGradMode no_grad(false);
  KvCache cache = model.empty_cache(1, static_cast<int64_t>(prompt.size()) + max_new);
  at::Tensor logits = model.extend(at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end())).view({1, -1}), cache);
  std::vector<int> out;
  while (static_cast<int64_t>(out.size()) < max_new) {
    const int64_t next = sampler.next(full_logits(model, logits));
    if (next == eos) break;
    out.push_back(static_cast<int>(next));
    if (static_cast<int64_t>(out.size()) < max_new) logits = model.extend(at::full({1, 1}, next, at::kLong), cache);
  }
  return out;
}

Generation run_generate(const GenerateOptions& o, DistributedContext& dist) {
  const ModelSource source(o.model_path, o.checkpoint);
  const std::string tokenizer_path = source.tokenizer_path(o.tokenizer);
  const Tokenizer tokenizer(tokenizer_path);
  const std::vector<int> prompt = encode_for_model(tokenizer, o.prompt, tokenizer_path, source.config().vocab_size);

  dist.set_tensor_parallel(static_cast<int>(o.tensor_parallel_size), o.threads);
  apply_threads(dist.layout());
  const std::unique_ptr<Llama> model = source.load(dist, static_cast<int64_t>(prompt.size()) + o.max_new_tokens);
  Sampler sampler(o.sampling);
  Generation g;
  g.prompt_tokens = static_cast<int64_t>(prompt.size());
  const auto start = std::chrono::steady_clock::now();
  g.tokens = generate_tokens(*model, prompt, o.max_new_tokens, tokenizer.eos_id(), sampler);
  g.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  g.text = tokenizer.decode(g.tokens);
  return g;
}

}  // namespace llama2
