// Layout changes for EdgeViT's CPU training, as Paddle custom operators: Paddle 3.3.1 copies a transposed 4-D view
// element by element (splitting fused qkv into heads, [32, 196, 6, 36] -> [32, 6, 196, 36]: 5.5 ms, against 0.2 ms
// for a 3-D transpose of the same data). Here rows of the innermost dimension are copied whole, over the cores.
//
//   edgevit_swap12(x [A, B, C, D]) = x.transpose([0, 2, 1, 3]), contiguous; its gradient is the same swap
//   edgevit_subsample(x [N, C, H, W], r) = x[:, :, ::r, ::r]; its gradient scatters back into zeros
//   edgevit_patchify(x [N, C, H, W], p) = every p x p patch's values as channels, [N, C * p * p, H / p, W / p]
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

namespace {

paddle::Tensor swap12(const paddle::Tensor& x) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4,
           "edgevit_swap12: a CPU float32 tensor of 4 dimensions expected");
  const int64_t A = x.shape()[0], B = x.shape()[1], C = x.shape()[2], D = x.shape()[3];
  auto out = paddle::empty({A, C, B, D}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor dense = edgevit::dense(x);
  const float* xd = dense.data<float>();
  float* od = out.data<float>();
  // one output row [a, c, b, :] per step
  parallel_for(A * C, [&](int64_t begin, int64_t end) {
    for (int64_t ac = begin; ac < end; ++ac) {
      const int64_t a = ac / C, c = ac % C;
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(od + (ac * B + b) * D, xd + ((a * B + b) * C + c) * D, sizeof(float) * D);
    }
  });
  return out;
}

}  // namespace

std::vector<paddle::Tensor> Swap12Forward(const paddle::Tensor& x) { return {swap12(x)}; }

std::vector<paddle::Tensor> Swap12Backward(const paddle::Tensor& gout) { return {swap12(gout)}; }

std::vector<std::vector<int64_t>> Swap12Shape(const std::vector<int64_t>& x) { return {{x[0], x[2], x[1], x[3]}}; }

std::vector<paddle::DataType> LayoutDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(edgevit_swap12)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(Swap12Forward))
    .SetInferShapeFn(PD_INFER_SHAPE(Swap12Shape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayoutDtype));

PD_BUILD_GRAD_OP(edgevit_swap12)
    .Inputs({paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(Swap12Backward));

// ------------------------------------------------------------------------------------------ every r-th row and column

std::vector<paddle::Tensor> SubsampleForward(const paddle::Tensor& x, int r) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4 && r >= 1,
           "edgevit_subsample: a CPU float32 NCHW tensor and a ratio >= 1 expected");
  const int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t Ho = (H + r - 1) / r, Wo = (W + r - 1) / r;
  auto out = paddle::empty({x.shape()[0], x.shape()[1], Ho, Wo}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  float* od = out.data<float>();
  parallel_for(NC, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc)
      for (int64_t i = 0; i < Ho; ++i) {
        const float* row = xd + (nc * H + i * r) * W;
        float* o = od + (nc * Ho + i) * Wo;
        for (int64_t j = 0; j < Wo; ++j) o[j] = row[j * r];
      }
  });
  return {out};
}

std::vector<paddle::Tensor> SubsampleBackward(const paddle::Tensor& x, const paddle::Tensor& gout, int r) {
  const int64_t NC = x.shape()[0] * x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t Ho = (H + r - 1) / r, Wo = (W + r - 1) / r;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  parallel_for(NC, [&](int64_t begin, int64_t end) {
    std::memset(gxd + begin * H * W, 0, sizeof(float) * (end - begin) * H * W);
    for (int64_t nc = begin; nc < end; ++nc)
      for (int64_t i = 0; i < Ho; ++i) {
        float* row = gxd + (nc * H + i * r) * W;
        const float* g = gd + (nc * Ho + i) * Wo;
        for (int64_t j = 0; j < Wo; ++j) row[j * r] = g[j];
      }
  });
  return {gx};
}

std::vector<std::vector<int64_t>> SubsampleShape(const std::vector<int64_t>& x, int r) {
  return {{x[0], x[1], (x[2] + r - 1) / r, (x[3] + r - 1) / r}};
}

PD_BUILD_OP(edgevit_subsample)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"r: int"})
    .SetKernelFn(PD_KERNEL(SubsampleForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SubsampleShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayoutDtype));

PD_BUILD_GRAD_OP(edgevit_subsample)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"r: int"})
    .SetKernelFn(PD_KERNEL(SubsampleBackward));

// ------------------------------------------------------------------------------------------ patches to channels
// A convolution whose kernel equals its stride (the patch embeddings) is this rearrangement followed by a 1x1
// product: out[n, (c * p + i) * p + j, h, w] = x[n, c, h * p + i, w * p + j] (rows and columns past the last whole
// patch are dropped, as the convolution drops them; their gradient is zero).

std::vector<paddle::Tensor> PatchifyForward(const paddle::Tensor& x, int p) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4 && p >= 1,
           "edgevit_patchify: a CPU float32 NCHW tensor and a patch size >= 1 expected");
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t Ho = H / p, Wo = W / p;
  auto out = paddle::empty({N, C * p * p, Ho, Wo}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  float* od = out.data<float>();
  // one output plane [n, (c, i, j)] per step
  parallel_for(N * C * p * p, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t j = k % p, i = (k / p) % p, nc = k / (p * p);
      float* o = od + k * Ho * Wo;
      for (int64_t h = 0; h < Ho; ++h) {
        const float* row = xd + (nc * H + h * p + i) * W + j;
        for (int64_t w = 0; w < Wo; ++w) o[h * Wo + w] = row[w * p];
      }
    }
  });
  return {out};
}

std::vector<paddle::Tensor> PatchifyBackward(const paddle::Tensor& x, const paddle::Tensor& gout, int p) {
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t Ho = H / p, Wo = W / p;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  // one input plane [n, c] per step: every patch position of it
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    if (Ho * p != H || Wo * p != W) std::memset(gxd + begin * H * W, 0, sizeof(float) * (end - begin) * H * W);
    for (int64_t nc = begin; nc < end; ++nc)
      for (int64_t i = 0; i < p; ++i)
        for (int64_t j = 0; j < p; ++j) {
          const float* g = gd + ((nc * p + i) * p + j) * Ho * Wo;
          for (int64_t h = 0; h < Ho; ++h) {
            float* row = gxd + (nc * H + h * p + i) * W + j;
            for (int64_t w = 0; w < Wo; ++w) row[w * p] = g[h * Wo + w];
          }
        }
  });
  return {gx};
}

std::vector<std::vector<int64_t>> PatchifyShape(const std::vector<int64_t>& x, int p) {
  return {{x[0], x[1] * p * p, x[2] / p, x[3] / p}};
}

PD_BUILD_OP(edgevit_patchify)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"p: int"})
    .SetKernelFn(PD_KERNEL(PatchifyForward))
    .SetInferShapeFn(PD_INFER_SHAPE(PatchifyShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayoutDtype));

PD_BUILD_GRAD_OP(edgevit_patchify)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"p: int"})
    .SetKernelFn(PD_KERNEL(PatchifyBackward));
