// Matrix products for EdgeViT's CPU training on oneDNN, as Paddle custom operators: the 1x1 convolution (stride 1, no
// padding, one group) over NCHW and the Linear layer on tokens, each with its bias.
//
// 1x1 convolution: per sample one matrix product, y[n] = W [Co, Ci] x[n] [Ci, HW], run by oneDNN's sgemm -- the
// oneDNN that Paddle's own wheel ships and has already loaded (libdnnl.so.3; Paddle's dygraph conv2d never reaches
// it). The backward: dx[n] = W^T dy[n], dW = sum_n dy[n] x[n]^T.
//
// Threads: with at least as many samples as threads, the samples are split over our threads and each product runs
// on one (no synchronisation inside a product; dW is summed from one partial per thread, in order, so the result does
// not depend on timing); with fewer samples, oneDNN threads each product itself. The bias is added to each sample's
// product while it is still in cache, and its gradient summed from the same sample's output gradient.
//
//   edgevit_pointwise_conv(x [N,Ci,H,W], w [Co,Ci,1,1]) = conv2d(x, w)
//   edgevit_pointwise_conv_bias(x, w, b [Co]) = conv2d(x, w) + b[c]
//
// Linear: one product over all tokens, y [M, Co] = x [M, Ci] w [Ci, Co] + b (Paddle's weight layout), oneDNN threading
// it; the bias added and its gradient summed over the cores by our threads (Paddle's broadcast add reduces its
// gradient on one thread). dx = dy w^T, dw = x^T dy.
//
//   edgevit_linear(x [..., Ci], w [Ci, Co], b [Co]) = x w + b
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "paddle/extension.h"
#include "parallel.h"

using edgevit::parallel_for;

namespace {

// oneDNN's row-major sgemm (dnnl.h): C = alpha op(A) op(B) + beta C; returns dnnl_status_t (0 = success)
using Sgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                      float, float*, int64_t);
using OmpGet = int (*)();
using OmpSet = void (*)(int);

struct OneDnn {
  Sgemm sgemm = nullptr;
  OmpGet omp_get_max_threads = nullptr;
  OmpSet omp_set_num_threads = nullptr;
  std::string problem;
};

// the symbols of the libraries Paddle has loaded (RTLD_NOLOAD: never a second copy, never one from elsewhere)
void* loaded_symbol(const char* library, const char* name, std::string* problem) {
  void* handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) {
    *problem = std::string(library) + " is not loaded in this process (this Paddle build has no oneDNN)";
    return nullptr;
  }
  void* symbol = dlsym(handle, name);
  if (symbol == nullptr) *problem = std::string(library) + " has no " + name;
  return symbol;
}

const OneDnn& onednn() {
  static const OneDnn lib = [] {
    OneDnn l;
    l.sgemm = reinterpret_cast<Sgemm>(loaded_symbol("libdnnl.so.3", "dnnl_sgemm", &l.problem));
    l.omp_get_max_threads = reinterpret_cast<OmpGet>(loaded_symbol("libiomp5.so", "omp_get_max_threads", &l.problem));
    l.omp_set_num_threads = reinterpret_cast<OmpSet>(loaded_symbol("libiomp5.so", "omp_set_num_threads", &l.problem));
    return l;
  }();
  return lib;
}

void gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  const int status = onednn().sgemm(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
  PD_CHECK(status == 0, "edgevit gemm: dnnl_sgemm failed with status ", status);
}

// body(chunk, begin, end) over the samples [0, n): one chunk per thread, each product on one thread (oneDNN's OpenMP
// threads set to 1 on the thread that runs the chunk, and restored); fewer samples than threads: one chunk, and oneDNN
// threads each product
template <class Body>
int64_t over_samples(int64_t n, Body&& body) {
  const int64_t chunks = n >= edgevit::thread_count() ? edgevit::thread_count() : 1;
  if (chunks == 1) {
    body(int64_t{0}, int64_t{0}, n);
    return 1;
  }
  const int64_t per = (n + chunks - 1) / chunks;
  const OneDnn& lib = onednn();
  parallel_for(chunks, [&](int64_t cb, int64_t ce) {
    // oneDNN's OpenMP threads for this thread: 1 while the chunk runs, restored however it ends
    struct OneThread {
      const OneDnn& lib;
      const int saved;
      explicit OneThread(const OneDnn& l) : lib(l), saved(l.omp_get_max_threads()) { lib.omp_set_num_threads(1); }
      ~OneThread() { lib.omp_set_num_threads(saved); }
    } one_thread(lib);
    for (int64_t k = cb; k < ce; ++k) body(k, k * per, std::min(n, (k + 1) * per));
  });
  return chunks;
}

void check(const paddle::Tensor& x, const paddle::Tensor& w) {
  PD_CHECK(onednn().problem.empty(), "edgevit_pointwise_conv: ", onednn().problem);
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_pointwise_conv: CPU float32 only");
  PD_CHECK(x.shape().size() == 4 && w.shape().size() == 4 && w.shape()[2] == 1 && w.shape()[3] == 1 &&
               w.shape()[1] == x.shape()[1],
           "edgevit_pointwise_conv: x [N, Ci, H, W] and w [Co, Ci, 1, 1] expected");
}

paddle::Tensor forward(const paddle::Tensor& x, const paddle::Tensor& w, const float* bias) {
  check(x, w);
  const int64_t N = x.shape()[0], Ci = x.shape()[1], HW = x.shape()[2] * x.shape()[3], Co = w.shape()[0];
  auto out = paddle::empty({N, Co, x.shape()[2], x.shape()[3]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* od = out.data<float>();
  over_samples(N, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      float* y = od + n * Co * HW;
      gemm('N', 'N', Co, HW, Ci, wd, Ci, xd + n * Ci * HW, HW, 0.f, y, HW);
      if (bias == nullptr) continue;
      for (int64_t c = 0; c < Co; ++c) {
        const float v = bias[c];
        float* yc = y + c * HW;
#pragma omp simd
        for (int64_t i = 0; i < HW; ++i) yc[i] += v;
      }
    }
  });
  return out;
}

// {dx, dw} and, when gb is given, the bias gradient into it
std::vector<paddle::Tensor> backward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& gout,
                                     float* gb) {
  const int64_t N = x.shape()[0], Ci = x.shape()[1], HW = x.shape()[2] * x.shape()[3], Co = w.shape()[0];
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  const float* gd = gdense.data<float>();
  float* gxd = gx.data<float>();
  float* gwd = gw.data<float>();
  // one dW (and bias gradient) partial per chunk, the first chunk's in gw itself, summed in chunk order afterwards
  const int64_t most = std::max<int64_t>(1, std::min<int64_t>(edgevit::thread_count(), N));
  std::vector<float> partial((most - 1) * Co * Ci);
  std::vector<double> bias_partial(most * Co, 0.0);
  const int64_t chunks = over_samples(N, [&](int64_t k, int64_t b, int64_t e) {
    float* dw = k == 0 ? gwd : partial.data() + (k - 1) * Co * Ci;
    double* db = bias_partial.data() + k * Co;
    for (int64_t n = b; n < e; ++n) {
      const float* g = gd + n * Co * HW;
      gemm('T', 'N', Ci, HW, Co, wd, Ci, g, HW, 0.f, gxd + n * Ci * HW, HW);
      gemm('N', 'T', Co, Ci, HW, g, HW, xd + n * Ci * HW, HW, n == b ? 0.f : 1.f, dw, Ci);
      if (gb == nullptr) continue;
      for (int64_t c = 0; c < Co; ++c) {
        const float* gc = g + c * HW;
        float s = 0.f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < HW; ++i) s += gc[i];
        db[c] += s;
      }
    }
    if (b == e) std::memset(dw, 0, sizeof(float) * Co * Ci);
  });
  for (int64_t k = 1; k < chunks; ++k) {
    const float* p = partial.data() + (k - 1) * Co * Ci;
#pragma omp simd
    for (int64_t i = 0; i < Co * Ci; ++i) gwd[i] += p[i];
  }
  if (gb != nullptr) {
    for (int64_t c = 0; c < Co; ++c) {
      double s = 0.0;
      for (int64_t k = 0; k < chunks; ++k) s += bias_partial[k * Co + c];
      gb[c] = static_cast<float>(s);
    }
  }
  return {gx, gw};
}

}  // namespace

std::vector<paddle::Tensor> PointwiseForward(const paddle::Tensor& x, const paddle::Tensor& w) {
  return {forward(x, w, nullptr)};
}

std::vector<paddle::Tensor> PointwiseBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                              const paddle::Tensor& gout) {
  return backward(x, w, gout, nullptr);
}

std::vector<paddle::Tensor> PointwiseBiasForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                 const paddle::Tensor& b) {
  PD_CHECK(b.numel() == w.shape()[0], "edgevit_pointwise_conv_bias: one bias per output channel expected");
  return {forward(x, w, b.data<float>())};
}

std::vector<paddle::Tensor> PointwiseBiasBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                  const paddle::Tensor& b, const paddle::Tensor& gout) {
  auto gb = paddle::empty(b.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto g = backward(x, w, gout, gb.data<float>());
  return {g[0], g[1], gb};
}

std::vector<std::vector<int64_t>> PointwiseShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w) {
  return {{x[0], w[0], x[2], x[3]}};
}

std::vector<std::vector<int64_t>> PointwiseBiasShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                     const std::vector<int64_t>& b) {
  return {{x[0], w[0], x[2], x[3]}};
}

std::vector<paddle::DataType> PointwiseDtype(const paddle::DataType& x, const paddle::DataType& w) { return {x}; }

std::vector<paddle::DataType> PointwiseBiasDtype(const paddle::DataType& x, const paddle::DataType& w,
                                                 const paddle::DataType& b) {
  return {x};
}

PD_BUILD_OP(edgevit_pointwise_conv)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(PointwiseForward))
    .SetInferShapeFn(PD_INFER_SHAPE(PointwiseShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(PointwiseDtype));

PD_BUILD_GRAD_OP(edgevit_pointwise_conv)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .SetKernelFn(PD_KERNEL(PointwiseBackward));

PD_BUILD_OP(edgevit_pointwise_conv_bias)
    .Inputs({"X", "W", "B"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(PointwiseBiasForward))
    .SetInferShapeFn(PD_INFER_SHAPE(PointwiseBiasShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(PointwiseBiasDtype));

PD_BUILD_GRAD_OP(edgevit_pointwise_conv_bias)
    .Inputs({"X", "W", "B", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(PointwiseBiasBackward));

// ------------------------------------------------------------------------------------------ Linear on tokens

std::vector<paddle::Tensor> LinearForward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b) {
  PD_CHECK(onednn().problem.empty(), "edgevit_linear: ", onednn().problem);
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "edgevit_linear: CPU float32 only");
  PD_CHECK(w.shape().size() == 2 && x.shape().back() == w.shape()[0] && b.numel() == w.shape()[1],
           "edgevit_linear: x [..., Ci], w [Ci, Co] and b [Co] expected");
  const int64_t Ci = w.shape()[0], Co = w.shape()[1], M = x.numel() / Ci;
  std::vector<int64_t> shape = x.shape();
  shape.back() = Co;
  auto out = paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* bd = b.data<float>();
  float* od = out.data<float>();
  // the bias first, then the product accumulated onto it (beta = 1): one pass over the output, no second one
  parallel_for(M, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) std::memcpy(od + m * Co, bd, sizeof(float) * Co);
  });
  gemm('N', 'N', M, Co, Ci, x.data<float>(), Ci, w.data<float>(), Co, 1.f, od, Co);
  return {out};
}

std::vector<paddle::Tensor> LinearBackward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                           const paddle::Tensor& gout) {
  const int64_t Ci = w.shape()[0], Co = w.shape()[1], M = x.numel() / Ci;
  auto gx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto gb = paddle::empty(b.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const paddle::Tensor gdense = edgevit::dense(gout);
  const float* xd = x.data<float>();
  const float* gd = gdense.data<float>();
  gemm('N', 'T', M, Ci, Co, gd, Co, w.data<float>(), Co, 0.f, gx.data<float>(), Ci);
  gemm('T', 'N', Ci, Co, M, xd, Ci, gd, Co, 0.f, gw.data<float>(), Co);
  // bias gradient: column sums of dy, one partial per thread, added in order
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(edgevit::thread_count(), M));
  const int64_t per = (M + chunks - 1) / chunks;
  std::vector<float> partial(chunks * Co, 0.f);
  parallel_for(chunks, [&](int64_t cb, int64_t ce) {
    for (int64_t k = cb; k < ce; ++k) {
      float* p = partial.data() + k * Co;
      for (int64_t m = k * per; m < std::min(M, (k + 1) * per); ++m) {
        const float* g = gd + m * Co;
#pragma omp simd
        for (int64_t c = 0; c < Co; ++c) p[c] += g[c];
      }
    }
  });
  float* gbd = gb.data<float>();
  for (int64_t c = 0; c < Co; ++c) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * Co + c];
    gbd[c] = static_cast<float>(s);
  }
  return {gx, gw, gb};
}

std::vector<std::vector<int64_t>> LinearShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                              const std::vector<int64_t>& b) {
  std::vector<int64_t> out = x;
  out.back() = w[1];
  return {out};
}

PD_BUILD_OP(edgevit_linear)
    .Inputs({"X", "W", "B"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(LinearForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(PointwiseBiasDtype));

PD_BUILD_GRAD_OP(edgevit_linear)
    .Inputs({"X", "W", "B", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .SetKernelFn(PD_KERNEL(LinearBackward));
