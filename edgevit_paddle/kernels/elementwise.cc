// GELU (exact, erf) and GroupNorm over NCHW for EdgeViT's CPU training, as Paddle custom operators. Paddle 3.3.1
// runs both backward passes on one thread (exact GELU backward: ~10 ns per element); these split the work over the
// cores and vectorise it (erf and exp as polynomials the compiler can vectorise).
//
//   edgevit_gelu(x) = 0.5 x (1 + erf(x / sqrt 2))
//   edgevit_group_norm(x [N,C,*], gamma [C], beta [C]; groups, eps) -> (y, mean [N*G], rstd [N*G])
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// exp for arguments <= 0 (Cephes' expf: 2^k times a polynomial), vectorisable
inline float exp_nonpositive(float v) {
  const float x0 = std::max(v, -87.f);
  const float k = std::floor(x0 * 1.44269504088896341f + 0.5f);
  const float x = x0 - k * 0.693359375f + k * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
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

std::vector<std::vector<int64_t>> SameShape1(const std::vector<int64_t>& x) { return {x}; }
std::vector<paddle::DataType> SameDtype1(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(edgevit_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SameShape1))
    .SetInferDtypeFn(PD_INFER_DTYPE(SameDtype1));

PD_BUILD_GRAD_OP(edgevit_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));

// ------------------------------------------------------------------------------------------ GroupNorm, NCHW

std::vector<paddle::Tensor> GroupNormForward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                             const paddle::Tensor& beta, int groups, float eps) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_group_norm: CPU float32 only");
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int64_t HW = x.numel() / (N * C), G = groups, CG = C / G;
  PD_CHECK(C % G == 0, "edgevit_group_norm: channels must divide into groups");
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({N * G}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto rstd = paddle::empty({N * G}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* gm = gamma.data<float>();
  const float* bt = beta.data<float>();
  float* od = out.data<float>();
  float* md = mean.data<float>();
  float* rd = rstd.data<float>();
  const int64_t len = CG * HW;
  // per (n, c) partial sums in parallel, the group statistics from them, then the normalisation in parallel
  std::vector<double> ps(N * C), pss(N * C);
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float* xc = xd + nc * HW;
      float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = 0; i < HW; ++i) {
        a += xc[i];
        b += xc[i] * xc[i];
      }
      ps[nc] = a;
      pss[nc] = b;
    }
  });
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t n = ng / G, g = ng % G;
    double s = 0.0, ss = 0.0;
    for (int64_t c = g * CG; c < (g + 1) * CG; ++c) {
      s += ps[n * C + c];
      ss += pss[n * C + c];
    }
    const double m = s / len;
    md[ng] = static_cast<float>(m);
    rd[ng] = static_cast<float>(1.0 / std::sqrt(std::max(ss / len - m * m, 0.0) + eps));
  }
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t c = nc % C, ng = (nc / C) * G + c / CG;
      const float a = rd[ng] * gm[c], b = bt[c] - md[ng] * a;
      const float* xc = xd + nc * HW;
      float* oc = od + nc * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) oc[i] = xc[i] * a + b;
    }
  });
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> GroupNormBackward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                              const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                              const paddle::Tensor& gout, int groups, float eps) {
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int64_t HW = x.numel() / (N * C), G = groups, CG = C / G, len = CG * HW;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto ggamma = paddle::empty({C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gbeta = paddle::empty({C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* gm = gamma.data<float>();
  const float* md = mean.data<float>();
  const float* rd = rstd.data<float>();
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  // per (n, c): sum(dy) and sum(dy * xhat); the affine's gradients and dx follow from them
  std::vector<float> sdy(N * C), sdyx(N * C);
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t ng = (nc / C) * G + (nc % C) / CG;
      const float m = md[ng], r = rd[ng];
      const float* xc = xd + nc * HW;
      const float* gc = gd + nc * HW;
      float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
      for (int64_t i = 0; i < HW; ++i) {
        a += gc[i];
        b += gc[i] * (xc[i] - m) * r;
      }
      sdy[nc] = a;
      sdyx[nc] = b;
    }
  });
  float* ggd = ggamma.data<float>();
  float* gbd = gbeta.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    double a = 0.0, b = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      a += sdy[n * C + c];
      b += sdyx[n * C + c];
    }
    gbd[c] = static_cast<float>(a);
    ggd[c] = static_cast<float>(b);
  }
  // dx = rstd * (gamma dy - mean_group(gamma dy) - xhat * mean_group(gamma dy xhat))
  std::vector<float> k1(N * G), k2(N * G);
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const int64_t n = ng / G, g = ng % G;
    double a = 0.0, b = 0.0;
    for (int64_t c = g * CG; c < (g + 1) * CG; ++c) {
      a += gm[c] * sdy[n * C + c];
      b += gm[c] * sdyx[n * C + c];
    }
    k1[ng] = static_cast<float>(a / len);
    k2[ng] = static_cast<float>(b / len);
  }
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t c = nc % C, ng = (nc / C) * G + c / CG;
      const float m = md[ng], r = rd[ng], gmc = gm[c], a = k1[ng], b = k2[ng];
      const float* xc = xd + nc * HW;
      const float* gc = gd + nc * HW;
      float* oc = gxd + nc * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) oc[i] = r * (gmc * gc[i] - a - (xc[i] - m) * r * b);
    }
  });
  return {gx, ggamma, gbeta};
}

std::vector<std::vector<int64_t>> GroupNormShape(const std::vector<int64_t>& x, const std::vector<int64_t>& g,
                                                 const std::vector<int64_t>& b, int groups, float eps) {
  const int64_t ng = x[0] < 0 ? -1 : x[0] * groups;
  return {x, {ng}, {ng}};
}

std::vector<paddle::DataType> GroupNormDtype(const paddle::DataType& x, const paddle::DataType& g,
                                             const paddle::DataType& b) {
  return {x, x, x};
}

PD_BUILD_OP(edgevit_group_norm)
    .Inputs({"X", "Gamma", "Beta"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"groups: int", "eps: float"})
    .SetKernelFn(PD_KERNEL(GroupNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(GroupNormShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GroupNormDtype));

PD_BUILD_GRAD_OP(edgevit_group_norm)
    .Inputs({"X", "Gamma", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma"), paddle::Grad("Beta")})
    .Attrs({"groups: int", "eps: float"})
    .SetKernelFn(PD_KERNEL(GroupNormBackward));

// ------------------------------------------------------------------------------------------ per-channel bias, NCHW
// y = x + b[c]; the backward sums the output gradient per channel over the cores (Paddle's broadcast-add gradient
// reduces on one thread) and hands the gradient through for x.

std::vector<paddle::Tensor> BiasAddForward(const paddle::Tensor& x, const paddle::Tensor& b) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_bias_add: CPU float32 only");
  const int64_t N = x.shape()[0], C = x.shape()[1], HW = x.numel() / (N * C);
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* bd = b.data<float>();
  float* od = out.data<float>();
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float v = bd[nc % C];
      const float* xc = xd + nc * HW;
      float* oc = od + nc * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) oc[i] = xc[i] + v;
    }
  });
  return {out};
}

std::vector<paddle::Tensor> BiasAddBackward(const paddle::Tensor& x, const paddle::Tensor& b,
                                            const paddle::Tensor& gout) {
  const int64_t N = gout.shape()[0], C = gout.shape()[1], HW = gout.numel() / (N * C);
  auto gb = paddle::empty({C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gbd = gb.data<float>();
  parallel_for(C, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const float* gc = gd + (n * C + c) * HW;
        float s = 0.f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < HW; ++i) s += gc[i];
        acc += s;
      }
      gbd[c] = static_cast<float>(acc);
    }
  });
  return {gout, gb};
}

std::vector<std::vector<int64_t>> BiasAddShape(const std::vector<int64_t>& x, const std::vector<int64_t>& b) {
  return {x};
}

std::vector<paddle::DataType> BiasAddDtype(const paddle::DataType& x, const paddle::DataType& b) { return {x}; }

PD_BUILD_OP(edgevit_bias_add)
    .Inputs({"X", "B"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(BiasAddForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BiasAddShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BiasAddDtype));

PD_BUILD_GRAD_OP(edgevit_bias_add)
    .Inputs({"X", "B", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(BiasAddBackward));

// ------------------------------------------------------------------------------------------ LayerNorm, last dim
// y = (x - mean) * rstd * gamma + beta over the last dimension C of each row; Paddle's backward runs on one thread.

std::vector<paddle::Tensor> LayerNormForward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                             const paddle::Tensor& beta, float eps) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_layer_norm: CPU float32 only");
  const int64_t C = x.shape().back(), M = x.numel() / C;
  auto out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({M}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto rstd = paddle::empty({M}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* gm = gamma.data<float>();
  const float* bt = beta.data<float>();
  float* od = out.data<float>();
  float* md = mean.data<float>();
  float* rd = rstd.data<float>();
  parallel_for(M, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const float* xr = xd + m * C;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += xr[c];
      const float mu = s / C;
      float v = 0.f;
#pragma omp simd reduction(+ : v)
      for (int64_t c = 0; c < C; ++c) v += (xr[c] - mu) * (xr[c] - mu);
      const float r = 1.f / std::sqrt(v / C + eps);
      md[m] = mu;
      rd[m] = r;
      float* orow = od + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) orow[c] = (xr[c] - mu) * r * gm[c] + bt[c];
    }
  });
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                              const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                              const paddle::Tensor& gout, float eps) {
  const int64_t C = x.shape().back(), M = x.numel() / C;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto ggamma = paddle::empty({C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gbeta = paddle::empty({C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* gm = gamma.data<float>();
  const float* md = mean.data<float>();
  const float* rd = rstd.data<float>();
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  // dgamma / dbeta: per-chunk partial sums (one chunk per thread), added in order afterwards
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(edgevit::thread_count(), M));
  std::vector<double> pg(chunks * C, 0.0), pb(chunks * C, 0.0);
  const int64_t per = (M + chunks - 1) / chunks;
  parallel_for(chunks, [&](int64_t cb, int64_t ce) {
    for (int64_t k = cb; k < ce; ++k) {
      std::vector<float> sg(C, 0.f), sb(C, 0.f);
      for (int64_t m = k * per; m < std::min(M, (k + 1) * per); ++m) {
        const float* xr = xd + m * C;
        const float* gr = gd + m * C;
        const float mu = md[m], r = rd[m];
        float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
        for (int64_t c = 0; c < C; ++c) {
          const float xh = (xr[c] - mu) * r, g = gr[c] * gm[c];
          a += g;
          b += g * xh;
          sg[c] += gr[c] * xh;
          sb[c] += gr[c];
        }
        a /= C;
        b /= C;
        float* o = gxd + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) o[c] = r * (gr[c] * gm[c] - a - (xr[c] - mu) * r * b);
      }
      for (int64_t c = 0; c < C; ++c) {
        pg[k * C + c] = sg[c];
        pb[k * C + c] = sb[c];
      }
    }
  });
  float* ggd = ggamma.data<float>();
  float* gbd = gbeta.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    double a = 0.0, b = 0.0;
    for (int64_t k = 0; k < chunks; ++k) {
      a += pg[k * C + c];
      b += pb[k * C + c];
    }
    ggd[c] = static_cast<float>(a);
    gbd[c] = static_cast<float>(b);
  }
  return {gx, ggamma, gbeta};
}

std::vector<std::vector<int64_t>> LayerNormShape(const std::vector<int64_t>& x, const std::vector<int64_t>& g,
                                                 const std::vector<int64_t>& b, float eps) {
  int64_t m = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) m = (x[i] < 0 || m < 0) ? -1 : m * x[i];
  return {x, {m}, {m}};
}

PD_BUILD_OP(edgevit_layer_norm)
    .Inputs({"X", "Gamma", "Beta"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LayerNormShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GroupNormDtype));

PD_BUILD_GRAD_OP(edgevit_layer_norm)
    .Inputs({"X", "Gamma", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma"), paddle::Grad("Beta")})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));
