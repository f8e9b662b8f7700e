// Work split over the cores with plain std::threads started per call and joined before it returns: no thread pool
// stays behind spinning between calls (an OpenMP pool's spinning threads kept the cores from Paddle's
// single-threaded ops, and telling libgomp to sleep slowed Paddle Inference's oneDNN). Starting a thread costs tens
// of microseconds, against the milliseconds each call here takes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace edgevit {

// threads used by every kernel (set from Python: the run's thread count)
int& thread_count();

// a tensor the kernels can read as a dense array (an output gradient may come as a strided view)
template <class T>
T dense(const T& t) {
  return t.is_contiguous() ? t : t.contiguous();
}

// body(begin, end) over [0, n) in one contiguous chunk per thread
template <class Body>
void parallel_for(int64_t n, Body&& body) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(thread_count(), n));
  if (t == 1) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + t - 1) / t;
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (int64_t i = 1; i < t; ++i) {
    const int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&body, b, e] { body(b, e); });
  }
  body(int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace edgevit
