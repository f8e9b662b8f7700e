// Exact (erf) GELU for EdgeViT's CPU training, as a Paddle custom operator. Paddle 3.3.1 runs its backward on one
// thread (~10 ns per element); this splits the work over the cores and vectorises it (erf and exp as polynomials the
// compiler can vectorise).
//
//   edgevit_gelu(x) = 0.5 x (1 + erf(x / sqrt 2))
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// erf as Eigen computes it for float (a rational approximation on [-4, 4], +/-1 beyond): a few ulp, and unlike libm's
// erff it vectorises.
inline float erf_fast(float v) {
  const float x = std::min(4.f, std::max(-4.f, v));
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  p = p * x;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return p / q;
}

// exp for arguments <= 0 (Cephes' expf: 2^k times a polynomial), vectorisable: k by nearbyint (GCC 12 does not
// vectorise std::floor here, which left the whole backward loop scalar, 10x slower) and 2^k by a bit cast (max relative
// error against exp 8e-8 on [-87, 0])
inline float exp_nonpositive(float v) {
  const float x0 = std::max(v, -87.f);
  const float k = __builtin_nearbyintf(x0 * 1.44269504088896341f);
  const float x = x0 - k * 0.693359375f + k * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.f;
  return y * __builtin_bit_cast(float, (static_cast<int32_t>(k) + 127) << 23);
}
}  // namespace

std::vector<paddle::Tensor> GeluForward(const paddle::Tensor& x) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_gelu: CPU float32 only");
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  float* od = out.data<float>();
  const int64_t n = x.numel();
  parallel_for(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) od[i] = 0.5f * xd[i] * (1.f + erf_fast(xd[i] * kInvSqrt2));
  });
  return {out};
}

std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& gout) {
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  const int64_t n = x.numel();
  parallel_for(n, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float v = xd[i];
      const float cdf = 0.5f * (1.f + erf_fast(v * kInvSqrt2));
      const float pdf = kInvSqrt2Pi * exp_nonpositive(-0.5f * v * v);
      gxd[i] = gd[i] * (cdf + v * pdf);
    }
  });
  return {gx};
}

std::vector<std::vector<int64_t>> OutputShapeOfInput(const std::vector<int64_t>& x) { return {x}; }
std::vector<paddle::DataType> DtypeOfInput(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(edgevit_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(OutputShapeOfInput))
    .SetInferDtypeFn(PD_INFER_DTYPE(DtypeOfInput));

PD_BUILD_GRAD_OP(edgevit_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));
