// Depthwise convolutions for EdgeViT's CPU training, as Paddle custom operators (paddle.utils.cpp_extension).
//
// Paddle 3.3.1's CPU depthwise convolution runs on one thread with an im2col per channel; these run the N*C planes
// in parallel (parallel.h) with the inner loops over a row, which the compiler vectorises (-O3 -march=native).
//
//   edgevit_dwconv(x [N,C,H,W], w [C,1,K,K]; pad)        stride 1, dilation 1, zero padding `pad` (K odd, pad=K/2)
//   edgevit_dwconv_t(x [N,C,H,W], w [C,1,R,R])           transposed, kernel = stride = R: y[.., i*R+a, j*R+b]
//                                                         = x[.., i, j] * w[c, 0, a, b] (EdgeViT's LocalProp)
// Float32, NCHW, contiguous. Bias is added outside (our Conv2D layers add it in Paddle's fast path).
#include <algorithm>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

namespace {


// out[i][j] = sum_{a,b} w[a][b] * xp[i + a][j + b], xp a (H+K-1) x (W+K-1) padded plane. With K a compile-time
// constant the taps unroll into the vectorised j loop and the sum stays in registers.
template <int K>
inline void correlate_fixed(const float* xp, int wp, const float* w, float* out, int H, int W) {
  float wk[K * K];
  for (int t = 0; t < K * K; ++t) wk[t] = w[t];
  for (int i = 0; i < H; ++i) {
    float* o = out + static_cast<int64_t>(i) * W;
    const float* row = xp + static_cast<int64_t>(i) * wp;
#pragma omp simd
    for (int j = 0; j < W; ++j) {
      float s = 0.f;
#pragma GCC unroll 49
      for (int a = 0; a < K; ++a)
#pragma GCC unroll 7
        for (int b = 0; b < K; ++b) s += wk[a * K + b] * row[static_cast<int64_t>(a) * wp + j + b];
      o[j] = s;
    }
  }
}

inline void correlate_plane(const float* xp, int wp, const float* w, int K, float* out, int H, int W) {
  switch (K) {
    case 3: return correlate_fixed<3>(xp, wp, w, out, H, W);
    case 5: return correlate_fixed<5>(xp, wp, w, out, H, W);
    case 7: return correlate_fixed<7>(xp, wp, w, out, H, W);
    default: break;
  }
  for (int i = 0; i < H; ++i) {
    float* o = out + static_cast<int64_t>(i) * W;
    for (int j = 0; j < W; ++j) o[j] = 0.f;
    for (int a = 0; a < K; ++a) {
      const float* row = xp + static_cast<int64_t>(i + a) * wp;
      for (int b = 0; b < K; ++b) {
        const float wv = w[a * K + b];
        const float* r = row + b;
#pragma omp simd
        for (int j = 0; j < W; ++j) o[j] += wv * r[j];
      }
    }
  }
}

// copy a H x W plane into the middle of a zeroed (H+2p) x (W+2p) buffer
inline void pad_plane(const float* x, int H, int W, int p, float* buf) {
  const int wp = W + 2 * p;
  std::memset(buf, 0, sizeof(float) * static_cast<size_t>(H + 2 * p) * wp);
  for (int i = 0; i < H; ++i)
    std::memcpy(buf + static_cast<int64_t>(i + p) * wp + p, x + static_cast<int64_t>(i) * W, sizeof(float) * W);
}

void check(const paddle::Tensor& x, const paddle::Tensor& w, const char* op) {
  PD_CHECK(x.is_cpu() && w.is_cpu(), op, ": CPU tensors only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && w.dtype() == paddle::DataType::FLOAT32, op, ": float32 only");
  PD_CHECK(x.shape().size() == 4 && w.shape().size() == 4, op, ": x [N,C,H,W] and w [C,1,K,K]");
  PD_CHECK(w.shape()[0] == x.shape()[1] && w.shape()[1] == 1, op, ": one filter per channel");
}

}  // namespace

// ------------------------------------------------------------------------------------------ stride-1 depthwise

std::vector<paddle::Tensor> DwConvForward(const paddle::Tensor& x, const paddle::Tensor& w, int pad) {
  check(x, w, "edgevit_dwconv");
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int H = x.shape()[2], W = x.shape()[3], K = w.shape()[2];
  PD_CHECK(K == 2 * pad + 1, "edgevit_dwconv: kernel must be 2*pad+1");
  auto out = paddle::empty({N, C, H, W}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* od = out.data<float>();
  const int wp = W + 2 * pad;
  const size_t plane = static_cast<size_t>(H) * W;
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(static_cast<size_t>(H + 2 * pad) * wp);
    for (int64_t nc = begin; nc < end; ++nc) {
      pad_plane(xd + nc * plane, H, W, pad, buf.data());
      correlate_plane(buf.data(), wp, wd + (nc % C) * K * K, K, od + nc * plane, H, W);
    }
  });
  return {out};
}

std::vector<paddle::Tensor> DwConvBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                           const paddle::Tensor& gout, int pad) {
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int H = x.shape()[2], W = x.shape()[3], K = w.shape()[2];
  auto gx = paddle::empty({N, C, H, W}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty({C, 1, K, K}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  float* gwd = gw.data<float>();
  const int wp = W + 2 * pad;
  const size_t plane = static_cast<size_t>(H) * W;
  // K spare zeros after each padded plane: the dw dot products below run K - 1 floats past its end (against zeros
  // of gp, but 0 * garbage can be NaN)
  const size_t buf_size = static_cast<size_t>(H + 2 * pad) * wp + K;
  // dx: the output gradient correlated with the kernel turned 180 degrees
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(buf_size, 0.f), flipped(K * K);
    for (int64_t nc = begin; nc < end; ++nc) {
      const float* wc = wd + (nc % C) * K * K;
      for (int t = 0; t < K * K; ++t) flipped[t] = wc[K * K - 1 - t];
      pad_plane(gd + nc * plane, H, W, pad, buf.data());
      correlate_plane(buf.data(), wp, flipped.data(), K, gxd + nc * plane, H, W);
    }
  });
  // dw[c][a][b] = sum_n sum_ij gout[n,c,i,j] * xpad[n,c,i+a,j+b]; one channel per thread (no reduction races).
  // gout is laid out with the padded row stride and zeros in the extra columns, so each tap is one contiguous dot
  // product of length H * (W + 2p): the zeros cancel the terms that wrap into the next row.
  parallel_for(C, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(buf_size, 0.f), gp(static_cast<size_t>(H) * wp, 0.f);
    for (int64_t c = begin; c < end; ++c) {
      std::vector<double> acc(K * K, 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t nc = n * C + c;
        pad_plane(xd + nc * plane, H, W, pad, buf.data());
        for (int i = 0; i < H; ++i)
          std::memcpy(gp.data() + static_cast<int64_t>(i) * wp, gd + nc * plane + static_cast<int64_t>(i) * W,
                      sizeof(float) * W);
        const int64_t len = static_cast<int64_t>(H) * wp;
        for (int a = 0; a < K; ++a)
          for (int b = 0; b < K; ++b) {
            const float* r = buf.data() + static_cast<int64_t>(a) * wp + b;
            const float* g = gp.data();
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int64_t t = 0; t < len; ++t) s += g[t] * r[t];
            acc[a * K + b] += s;
          }
      }
      for (int t = 0; t < K * K; ++t) gwd[c * K * K + t] = static_cast<float>(acc[t]);
    }
  });
  return {gx, gw};
}

std::vector<std::vector<int64_t>> DwConvShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w, int pad) {
  return {x};
}

std::vector<paddle::DataType> DwConvDtype(const paddle::DataType& x, const paddle::DataType& w) { return {x}; }

PD_BUILD_OP(edgevit_dwconv)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .Attrs({"pad: int"})
    .SetKernelFn(PD_KERNEL(DwConvForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DwConvShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DwConvDtype));

PD_BUILD_GRAD_OP(edgevit_dwconv)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs({"pad: int"})
    .SetKernelFn(PD_KERNEL(DwConvBackward));

// ------------------------------------------------------------------------------------------ transposed, kernel = stride

std::vector<paddle::Tensor> DwConvTForward(const paddle::Tensor& x, const paddle::Tensor& w) {
  check(x, w, "edgevit_dwconv_t");
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int H = x.shape()[2], W = x.shape()[3], R = w.shape()[2];
  const int HO = H * R, WO = W * R;
  auto out = paddle::empty({N, C, HO, WO}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* od = out.data<float>();
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float* xp = xd + nc * H * W;
      const float* wc = wd + (nc % C) * R * R;
      float* op = od + nc * HO * WO;
      for (int i = 0; i < H; ++i)
        for (int a = 0; a < R; ++a) {
          float* orow = op + static_cast<int64_t>(i * R + a) * WO;
          const float* xrow = xp + static_cast<int64_t>(i) * W;
          for (int j = 0; j < W; ++j)
            for (int b = 0; b < R; ++b) orow[j * R + b] = xrow[j] * wc[a * R + b];
        }
    }
  });
  return {out};
}

std::vector<paddle::Tensor> DwConvTBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                            const paddle::Tensor& gout) {
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int H = x.shape()[2], W = x.shape()[3], R = w.shape()[2];
  const int WO = W * R;
  auto gx = paddle::empty({N, C, H, W}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty({C, 1, R, R}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  float* gwd = gw.data<float>();
  const int64_t in_plane = static_cast<int64_t>(H) * W, out_plane = in_plane * R * R;
  parallel_for(N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float* wc = wd + (nc % C) * R * R;
      const float* g = gd + nc * out_plane;
      float* gxp = gxd + nc * in_plane;
      for (int i = 0; i < H; ++i)
        for (int j = 0; j < W; ++j) {
          float s = 0.f;
          for (int a = 0; a < R; ++a)
            for (int b = 0; b < R; ++b) s += g[static_cast<int64_t>(i * R + a) * WO + j * R + b] * wc[a * R + b];
          gxp[i * W + j] = s;
        }
    }
  });
  parallel_for(C, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      std::vector<double> acc(R * R, 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t nc = n * C + c;
        const float* xp = xd + nc * in_plane;
        const float* g = gd + nc * out_plane;
        for (int a = 0; a < R; ++a)
          for (int b = 0; b < R; ++b) {
            float s = 0.f;
            for (int i = 0; i < H; ++i)
              for (int j = 0; j < W; ++j) s += xp[i * W + j] * g[static_cast<int64_t>(i * R + a) * WO + j * R + b];
            acc[a * R + b] += s;
          }
      }
      for (int t = 0; t < R * R; ++t) gwd[c * R * R + t] = static_cast<float>(acc[t]);
    }
  });
  return {gx, gw};
}

std::vector<std::vector<int64_t>> DwConvTShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w) {
  return {{x[0], x[1], x[2] < 0 ? -1 : x[2] * w[2], x[3] < 0 ? -1 : x[3] * w[3]}};
}

PD_BUILD_OP(edgevit_dwconv_t)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(DwConvTForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DwConvTShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DwConvDtype));

PD_BUILD_GRAD_OP(edgevit_dwconv_t)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .SetKernelFn(PD_KERNEL(DwConvTBackward));

// ------------------------------------------------------------------------------------------ threads

int& edgevit::thread_count() {
  static int n = 1;
  return n;
}

std::vector<paddle::Tensor> SetThreads(const paddle::Tensor& x, int n) {
  edgevit::thread_count() = std::max(1, n);
  return {x};
}

std::vector<std::vector<int64_t>> SameShape(const std::vector<int64_t>& x) { return {x}; }
std::vector<paddle::DataType> SameDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(edgevit_set_threads)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"n: int"})
    .SetKernelFn(PD_KERNEL(SetThreads))
    .SetInferShapeFn(PD_INFER_SHAPE(SameShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SameDtype));
