// eval: loss and perplexity of a model on a text, windows spread over DP ranks.
#include "llama2/infer/eval.h"

#include <cmath>
#include <memory>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "llama2/checkpoint/model_source.h"
#include "llama2/data/tokenizer.h"
#include "llama2/dist/communicator.h"
#include "llama2/model/llama.h"
#include "llama2/util/errors.h"
#include "llama2/util/file_io.h"

namespace llama2 {

EvalResult run_eval(const EvalOptions& o, DistributedContext& dist) {
  const ModelSource source(o.model_path, o.checkpoint);
  const ModelConfig& config = source.config();

  const std::string text = read_file(o.text, "--text");
  const std::string tokenizer_path = source.tokenizer_path(o.tokenizer);
  const std::vector<int> ids =
      encode_for_model(Tokenizer(tokenizer_path), text, tokenizer_path, config.vocab_size);
  const int64_t windows = (static_cast<int64_t>(ids.size()) - 1) / o.seq_len;
  if (windows < 1)
    throw BadInput(fmt::format("--text = {}: {} tokens make no window of --seq_len {} + 1", o.text, ids.size(), o.seq_len));

  dist.set_tensor_parallel(static_cast<int>(o.tensor_parallel_size), o.threads);
  apply_threads(dist.layout());
  const ParallelLayout& l = dist.layout();
  const std::unique_ptr<Llama> model = source.load(dist, o.seq_len);

  c10::AutoGradMode no_grad(false);
  const at::Tensor all = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
  at::Tensor sum = at::zeros({1}, at::kDouble);
  for (int64_t w = l.dp_rank; w < windows; w += l.dp) {
    const at::Tensor window = all.narrow(0, w * o.seq_len, o.seq_len + 1).unsqueeze(0);  // [1, N+1]
    sum += model->loss(window.narrow(1, 0, o.seq_len), window.narrow(1, 1, o.seq_len)).to(at::kDouble) * o.seq_len;
  }
  dist.dp().all_reduce(sum);
  EvalResult r;
  r.tokens = windows * o.seq_len;
  r.loss = sum.item<double>() / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace llama2
