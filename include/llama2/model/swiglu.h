// Owns SwiGLU, the MLP's activation: silu(gate) · up in one fused forward and one fused backward pass.
#pragma once
#include <ATen/core/Tensor.h>

namespace llama2 {

// gate_up [..., 2·f] (gate in the first f columns, up in the last f) → [..., f]
at::Tensor swiglu(const at::Tensor& gate_up);

}  // namespace llama2
