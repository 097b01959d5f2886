// Owns the differentiable linear layer y = x·wᵀ of every projection: forward and both gradients as oneDNN GEMMs
// (matmul.h), the weight's gradient added straight into the optimizer's flat gradient buffer when it has one.
#pragma once

namespace at {
class Tensor;
}

namespace llama2 {

// The gradient buffer a GEMM adds w's dW into directly: w's .grad when it exists (the optimizer's flat buffer),
// is contiguous and holds w's dtype or fp32 (a bf16 weight's main gradient); else undefined (autograd's way).
at::Tensor gradient_accumulator(const at::Tensor& w);

// y = x @ w^T for x [..., in] and w [out, in], differentiable (backward: dx = dy @ w, dw = dy^T @ x,
// both on oneDNN). The linear layer of every projection.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w);

}  // namespace llama2
