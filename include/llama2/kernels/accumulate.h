// Owns the accumulation type of the hand-written kernels: fp32 for fp32 and bf16 data, fp64 for fp64.
#pragma once
#include <type_traits>

namespace llama2 {

template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

}  // namespace llama2
