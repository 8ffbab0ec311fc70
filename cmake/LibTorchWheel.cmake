# LibTorch from the official torch wheel in the project venv, as the imported target gqa_torch.
#
# Why not find_package(Torch): the PyPI wheel is built with CUDA, and its TorchConfig.cmake then
# insists on a system CUDA toolkit ("Your installed Caffe2 version uses CUDA but I cannot find the
# CUDA libraries"), so the build would fail on any machine without nvcc. Nothing here needs that:
# the wheel's lib/ has every library, libtorch.so pulls in libtorch_cuda.so (and the CUDA runtime
# from the nvidia-* wheels beside it) so a GPU still works at run time, and the CUDA sources in
# kernels/ do not use torch.
execute_process(
  COMMAND ${GQA_PYTHON} -c "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__)"
  OUTPUT_VARIABLE _torch_out RESULT_VARIABLE _torch_rc ERROR_VARIABLE _torch_err OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "cannot import torch with ${GQA_PYTHON} (run `make setup`): ${_torch_err}")
endif()
string(REPLACE "\n" ";" _torch_out "${_torch_out}")
list(GET _torch_out 0 TORCH_DIR)
list(GET _torch_out 1 TORCH_CXX11_ABI)
list(GET _torch_out 2 TORCH_VERSION)
message(STATUS "LibTorch ${TORCH_VERSION} from ${TORCH_DIR}")

add_library(gqa_torch INTERFACE)
target_include_directories(gqa_torch SYSTEM INTERFACE ${TORCH_DIR}/include ${TORCH_DIR}/include/torch/csrc/api/include)
target_compile_definitions(gqa_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${TORCH_CXX11_ABI})
# --no-as-needed: nothing references libtorch.so's own symbols, but loading it is what registers the
# CUDA backend (libtorch_cuda.so) with the dispatcher.
target_link_libraries(gqa_torch INTERFACE -Wl,--no-as-needed ${TORCH_DIR}/lib/libtorch.so
  ${TORCH_DIR}/lib/libtorch_cpu.so ${TORCH_DIR}/lib/libc10.so)
