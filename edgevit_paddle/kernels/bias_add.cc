// Per-channel bias add over NCHW for EdgeViT's CPU training, as a Paddle custom operator: the backward sums the
// output gradient per channel over the cores (Paddle's broadcast-add gradient reduces on one thread).
//
//   edgevit_bias_add(x [N,C,*], b [C]) = x + b[c]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

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
