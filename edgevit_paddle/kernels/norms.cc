// GroupNorm over NCHW and LayerNorm over the last dimension for EdgeViT's CPU training, as Paddle custom operators:
// Paddle 3.3.1 runs both backward passes on one thread; these split the rows (samples x groups, or tokens) over the
// cores.
//
//   edgevit_group_norm(x [N,C,*], gamma [C], beta [C]; groups, eps) -> (y, mean [N*G], rstd [N*G])
//   edgevit_layer_norm(x [..., C], gamma [C], beta [C]; eps) -> (y, mean [rows], rstd [rows])
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

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

std::vector<paddle::DataType> NormDtype(const paddle::DataType& x, const paddle::DataType& g,
                                             const paddle::DataType& b) {
  return {x, x, x};
}

PD_BUILD_OP(edgevit_group_norm)
    .Inputs({"X", "Gamma", "Beta"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"groups: int", "eps: float"})
    .SetKernelFn(PD_KERNEL(GroupNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(GroupNormShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NormDtype));

PD_BUILD_GRAD_OP(edgevit_group_norm)
    .Inputs({"X", "Gamma", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma"), paddle::Grad("Beta")})
    .Attrs({"groups: int", "eps: float"})
    .SetKernelFn(PD_KERNEL(GroupNormBackward));

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
    .SetInferDtypeFn(PD_INFER_DTYPE(NormDtype));

PD_BUILD_GRAD_OP(edgevit_layer_norm)
    .Inputs({"X", "Gamma", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma"), paddle::Grad("Beta")})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));
