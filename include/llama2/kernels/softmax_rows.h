// Owns the passes over a row of softmax scores (core attention's tiles): exp(x·scale − shift) with the row's sum,
// and the backward's probabilities with the scores' gradient, written straight in the GEMMs' type (fp32/bf16/fp64).
#pragma once
#include <cstdint>

#include "llama2/kernels/dtype_conversion.h"

namespace llama2 {

// p[i] ← exp(z[i]·scale − shift) in T for i < n; returns Σ of the exps (in Acc<T>, before rounding to T). z is
// scratch (it may be left holding the exps); p may be z itself. bf16 rows' exps are exact to what bf16 keeps (relative
// error 7.5e-5 before rounding, where the AVX-512 form runs), fp32's and fp64's to their own precision.
template <typename T>
Acc<T> exp_sum_row(Acc<T>* z, int64_t n, Acc<T> scale, Acc<T> shift, T* p);

// The backward of a softmax row, its probabilities recomputed: p[i] ← exp(z[i]·scale − lse[i]) and ds[i] ←
// p[i]·(dp[i] − D[i])·scale in T for i < n (lse: the log-sum-exp of each query row; D[i] = Σ dO·O of query row i;
// p in Acc<T> in the product). z and dp are scratch; p may be z itself and ds dp itself.
template <typename T>
void softmax_gradient_row(Acc<T>* z, Acc<T>* dp, int64_t n, Acc<T> scale, const Acc<T>* lse, const Acc<T>* D, T* p,
                          T* ds);

}  // namespace llama2
