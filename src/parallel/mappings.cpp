// The five TP/SP communication functions as autograd Functions; each backward is the conjugate collective.
#include "llama2/parallel/mappings.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "llama2/dist/communicator.h"

namespace llama2 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

enum class Collective { Identity, AllReduce, Split, AllGather, ReduceScatter };

at::Tensor run(Collective op, const at::Tensor& x, const Communicator& c) {
  switch (op) {
    case Collective::Identity: return x;
    case Collective::AllReduce: {
      at::Tensor y = x.contiguous().clone();
      c.all_reduce(y);
      return y;
    }
    case Collective::Split: {
      const int64_t n = x.size(0) / c.size();
      return x.narrow(0, c.rank() * n, n).contiguous();
    }
    case Collective::AllGather: return c.all_gather(x.contiguous());
    case Collective::ReduceScatter: return c.reduce_scatter(x.contiguous());
  }
  return x;
}

// One autograd Function per (forward, backward) pair of collectives.
template <Collective Forward, Collective Backward>
struct Mapping : torch::autograd::Function<Mapping<Forward, Backward>> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Communicator* c) {
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(c));
    return run(Forward, x, *c);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto* c = reinterpret_cast<const Communicator*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    return {run(Backward, grads[0], *c), at::Tensor()};
  }
};

template <Collective Forward, Collective Backward>
at::Tensor apply(const at::Tensor& x, const Communicator& tp) {
  if (tp.size() == 1) return x;
  return Mapping<Forward, Backward>::apply(x, &tp);
}

}  // namespace

at::Tensor copy_to_tp(const at::Tensor& x, const Communicator& tp) {
  return apply<Collective::Identity, Collective::AllReduce>(x, tp);
}
at::Tensor reduce_from_tp(const at::Tensor& x, const Communicator& tp) {
  return apply<Collective::AllReduce, Collective::Identity>(x, tp);
}
at::Tensor scatter_to_sp(const at::Tensor& x, const Communicator& tp) {
  return apply<Collective::Split, Collective::AllGather>(x, tp);
}
at::Tensor gather_from_sp(const at::Tensor& x, const Communicator& tp) {
  return apply<Collective::AllGather, Collective::ReduceScatter>(x, tp);
}
at::Tensor reduce_scatter_to_sp(const at::Tensor& x, const Communicator& tp) {
  return apply<Collective::ReduceScatter, Collective::AllGather>(x, tp);
}

}  // namespace llama2
