# GQA_FUZZ=ON (build-fuzz/, `make fuzz`): every target below is compiled with libFuzzer's coverage
# instrumentation, AddressSanitizer (+ LeakSanitizer) and UBSan, stopping at the first report.
# Asserts stay on (no NDEBUG) and libstdc++ checks its containers' bounds, so nlohmann::json's and
# std::vector's misuse asserts count as findings too. Only clang ships libFuzzer.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "GQA_FUZZ needs clang (libFuzzer): configure with "
                      "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
endif()
set(GQA_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)

include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=fuzzer ${GQA_FUZZ_SANITIZERS})
check_cxx_source_compiles([[
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
]] GQA_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(NOT GQA_HAVE_LIBFUZZER)
  message(FATAL_ERROR "clang cannot link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-dev)")
endif()

string(TOUPPER "${CMAKE_BUILD_TYPE}" GQA_FUZZ_CONFIG)
foreach(lang C CXX)
  string(REPLACE "-DNDEBUG" "" CMAKE_${lang}_FLAGS_${GQA_FUZZ_CONFIG} "${CMAKE_${lang}_FLAGS_${GQA_FUZZ_CONFIG}}")
  string(REGEX REPLACE "-O[0-9s]" "" CMAKE_${lang}_FLAGS_${GQA_FUZZ_CONFIG} "${CMAKE_${lang}_FLAGS_${GQA_FUZZ_CONFIG}}")
endforeach()
add_compile_options(-O1 -g -fsanitize=fuzzer-no-link ${GQA_FUZZ_SANITIZERS} -D_GLIBCXX_ASSERTIONS)
add_link_options(${GQA_FUZZ_SANITIZERS})
