// Owns the passes over core attention's score tiles, a call per tile: the forward's online softmax (exps, sums,
// running max and output) and the backward's probabilities with the scores' gradient, in the GEMMs' type.
#pragma once
#include <cstdint>

#include "llama2/kernels/dtype_conversion.h"

namespace llama2 {

// The online softmax over a causal score tile z [rows, n] (q·kᵀ before the scale; rows n apart), row r seeing its
// keys [0, min(r + diagonal + 1, n)), diagonal ≥ 0: per row the running max m (of z·scale) and sum l (of exp(z·scale
// − m)) brought up to date, the row's unnormalised output o [rows, d] rescaled to the new max, and p [rows, n] ←
// exp(z·scale − m) in T, 0 for the masked keys. `first`: the row's first key tile (m, l and o not yet set; o left for
// the caller to overwrite). z is scratch; p may be z itself. bf16 rows' exps are exact to what bf16 keeps (relative
// error 7.5e-5 before rounding, where the AVX-512 form runs), fp32's and fp64's to their own precision.
template <typename T>
void online_softmax_rows(Acc<T>* z, int64_t rows, int64_t n, int64_t diagonal, Acc<T> scale, bool first, Acc<T>* m,
                         Acc<T>* l, Acc<T>* o, int64_t d, T* p);

// The backward of softmax over a causal tile held transposed ([count, n], rows n apart: row j a key, entry i a query
// row), its probabilities recomputed: p[j, i] ← exp(z[j, i]·scale − lse[i]) and ds[j, i] ← p[j, i]·(dp[j, i] −
// D[i])·scale in T (lse: each query row's log-sum-exp; D[i] = Σ dO·O of query row i; p in Acc<T> in the product),
// for i from clamp(j − diagonal, 0, n) on; p and ds 0 before (the query rows that key j is masked for). z and dp
// are scratch; p may be z itself and ds dp itself.
template <typename T>
void softmax_gradient_rows(Acc<T>* z, Acc<T>* dp, int64_t count, int64_t n, int64_t diagonal, Acc<T> scale,
                           const Acc<T>* lse, const Acc<T>* D, T* p, T* ds);

}  // namespace llama2
