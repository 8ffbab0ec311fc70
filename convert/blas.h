// Which dense linear algebra the large products of the strategies run on: OpenBLAS (every core,
// the CPU's kernels picked at run time) when libopenblas.so.0 is on the machine, else Eigen's own
// single-threaded products. Opened with dlopen(RTLD_LOCAL), not linked: a linked BLAS would also
// answer LibTorch's BLAS calls (measured: it changed float32 training results in the 5th digit).
#pragma once
#include <Eigen/Dense>

#include <string>

namespace gqa {

// a * b for large double matrices: OpenBLAS's dgemm when it is there, else Eigen's product.
Eigen::MatrixXd multiply(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b);

// "OpenBLAS (SkylakeX kernels, 2 threads)" or "Eigen (no BLAS)".
std::string blas_description();
// A one-line hint when OpenBLAS fell back to its oldest x86-64 kernels (Prescott: SSE3) on a CPU
// with AVX2 or AVX-512, as it does on VMs whose CPU model it does not recognise, and
// OPENBLAS_CORETYPE is not set; "" otherwise. Measured on such a VM (2 cores; Llama 1B, svd with
// 1,024 calibration tokens, the whole command): 94 s with Eigen alone, 64 s with OpenBLAS's
// Prescott kernels, 51 s with its SkylakeX kernels.
std::string blas_kernel_hint();

}  // namespace gqa
