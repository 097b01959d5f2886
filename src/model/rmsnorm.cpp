// RMSNorm with HF's dtype handling.
#include "llama2/rmsnorm.h"

#include <ATen/ATen.h>

namespace llama2 {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  const at::Tensor xf = x.to(at::promote_types(x.scalar_type(), at::kFloat));
  const at::Tensor inv_rms = at::rsqrt(xf.pow(2).mean(-1, true) + eps);  // [..., 1]
  return w * (xf * inv_rms).to(x.scalar_type());
}

}  // namespace llama2
