// Owns RMSNorm as Hugging Face's LlamaRMSNorm computes it (statistics in fp32, weight applied after).
#pragma once
#include <ATen/core/Tensor.h>

namespace llama2 {

// x [..., h], w [h] → w · x / sqrt(mean(x²) + eps), statistics in fp32 (fp64 for fp64 x), result in x's dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);

}  // namespace llama2
