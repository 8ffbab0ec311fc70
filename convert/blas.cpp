#include "convert/blas.h"

#include <dlfcn.h>

#include <cstdlib>

namespace gqa {
namespace {

// The few OpenBLAS entry points used, by their C signatures (cblas.h's enums are ints).
struct OpenBlas {
  void (*dgemm)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                const double* b, int ldb, double beta, double* c, int ldc) = nullptr;
  char* (*corename)() = nullptr;
  int (*threads)() = nullptr;
};

const OpenBlas* openblas() {
  static const OpenBlas* loaded = []() -> const OpenBlas* {
    void* h = ::dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return nullptr;
    static OpenBlas b;
    b.dgemm = reinterpret_cast<decltype(b.dgemm)>(::dlsym(h, "cblas_dgemm"));
    b.corename = reinterpret_cast<decltype(b.corename)>(::dlsym(h, "openblas_get_corename"));
    b.threads = reinterpret_cast<decltype(b.threads)>(::dlsym(h, "openblas_get_num_threads"));
    return b.dgemm && b.corename && b.threads ? &b : nullptr;
  }();
  return loaded;
}

constexpr int kColMajor = 102, kNoTrans = 111;  // CblasColMajor, CblasNoTrans

}  // namespace

Eigen::MatrixXd multiply(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  const OpenBlas* blas = openblas();
  if (!blas || a.size() == 0 || b.size() == 0) return a * b;
  Eigen::MatrixXd c(a.rows(), b.cols());
  // Column-major, as Eigen stores MatrixXd.
  blas->dgemm(kColMajor, kNoTrans, kNoTrans, int(a.rows()), int(b.cols()), int(a.cols()), 1.0, a.data(), int(a.rows()),
              b.data(), int(b.rows()), 0.0, c.data(), int(c.rows()));
  return c;
}

std::string blas_description() {
  const OpenBlas* blas = openblas();
  if (!blas) return "Eigen (no OpenBLAS)";
  return std::string("OpenBLAS (") + blas->corename() + " kernels, " + std::to_string(blas->threads()) + " threads)";
}

std::string blas_kernel_hint() {
  const OpenBlas* blas = openblas();
  if (!blas || std::getenv("OPENBLAS_CORETYPE")) return "";
  const std::string core = blas->corename();
  if (core != "Prescott" && core != "prescott") return "";
  __builtin_cpu_init();
  const char* better = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                         : nullptr;
  if (!better) return "";
  return std::string(
             "note: OpenBLAS did not recognise this CPU and uses its Prescott (SSE3) kernels; OPENBLAS_CORETYPE=") +
         better + " would use its " + (std::string(better) == "SkylakeX" ? "AVX-512" : "AVX2") +
         " (a Llama-1B svd conversion took 51 s instead of 64 s so on a 2-core VM)";
}

}  // namespace gqa
