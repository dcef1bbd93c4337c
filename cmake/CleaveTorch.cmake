# LibTorch for cleave: the interface target `cleave_torch` that every library
# with tensors links.
#
# Default: find_package(Torch), i.e. Debian's CPU LibTorch (libtorch-dev), or
# any LibTorch given with -DCMAKE_PREFIX_PATH=<dir containing share/cmake/Torch>
# (for a pip PyTorch: python3 -c "import torch; print(torch.utils.cmake_prefix_path)").
# A CUDA LibTorch's TorchConfig.cmake looks for the CUDA toolkit (nvcc,
# cudart headers) and stops when it is missing.
#
# -DCLEAVE_TORCH_ROOT=<dir with include/ and lib/> (e.g. the `torch` folder of
# a pip PyTorch) skips TorchConfig.cmake and links the shared libraries found
# there directly: no CUDA toolkit needed, the libraries' own RPATHs find the
# CUDA runtime that pip installed. Give the ABI with
# -DCLEAVE_TORCH_CXX11_ABI=0|1 (python3 -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))").
#
# Sets CLEAVE_TORCH_CUDA (ON when the LibTorch has CUDA kernels; code sees
# the CLEAVE_TORCH_CUDA macro) and CLEAVE_TORCH_CXX11_ABI (0 or 1).

set(CLEAVE_TORCH_ROOT "" CACHE PATH "A LibTorch folder (include/, lib/) to use without TorchConfig.cmake")
set(CLEAVE_TORCH_CXX11_ABI "" CACHE STRING "With CLEAVE_TORCH_ROOT: the LibTorch's _GLIBCXX_USE_CXX11_ABI (0 or 1)")

add_library(cleave_torch INTERFACE)

if(CLEAVE_TORCH_ROOT)
  if(NOT EXISTS "${CLEAVE_TORCH_ROOT}/include/torch/csrc/api/include/torch/version.h")
    message(FATAL_ERROR "CLEAVE_TORCH_ROOT=${CLEAVE_TORCH_ROOT} has no include/torch/csrc/api/include/"
                        "torch/version.h: give the LibTorch folder (for pip: the `torch` package folder)")
  endif()
  if(NOT CLEAVE_TORCH_CXX11_ABI MATCHES "^[01]$")
    message(FATAL_ERROR "CLEAVE_TORCH_ROOT needs -DCLEAVE_TORCH_CXX11_ABI=0 or 1: "
                        "python3 -c \"import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))\"")
  endif()
  set(torch_libraries)
  foreach(lib torch torch_cpu c10 torch_cuda c10_cuda)
    find_library(CLEAVE_TORCH_LIB_${lib} ${lib} PATHS "${CLEAVE_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
    if(CLEAVE_TORCH_LIB_${lib})
      list(APPEND torch_libraries ${CLEAVE_TORCH_LIB_${lib}})
    elseif(lib MATCHES "^(torch|torch_cpu|c10)$")
      message(FATAL_ERROR "CLEAVE_TORCH_ROOT=${CLEAVE_TORCH_ROOT}: lib/lib${lib}.so not found")
    endif()
  endforeach()
  set(CLEAVE_TORCH_CUDA OFF)
  if(CLEAVE_TORCH_LIB_torch_cuda)
    set(CLEAVE_TORCH_CUDA ON)
  endif()
  target_link_libraries(cleave_torch INTERFACE ${torch_libraries} Threads::Threads)
  target_include_directories(cleave_torch SYSTEM INTERFACE "${CLEAVE_TORCH_ROOT}/include"
                             "${CLEAVE_TORCH_ROOT}/include/torch/csrc/api/include")
  target_link_options(cleave_torch INTERFACE "LINKER:-rpath,${CLEAVE_TORCH_ROOT}/lib")
else()
  find_package(Torch REQUIRED)
  target_link_libraries(cleave_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(cleave_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  set(CLEAVE_TORCH_CUDA OFF)
  if(TARGET torch_cuda OR CAFFE2_USE_CUDA)
    set(CLEAVE_TORCH_CUDA ON)
  endif()
  # TORCH_CXX_FLAGS is "-D_GLIBCXX_USE_CXX11_ABI=0|1" on Linux.
  set(CLEAVE_TORCH_CXX11_ABI 1)
  if("${TORCH_CXX_FLAGS}" MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
    set(CLEAVE_TORCH_CXX11_ABI 0)
  endif()
endif()

if(CLEAVE_TORCH_CUDA)
  target_compile_definitions(cleave_torch INTERFACE CLEAVE_TORCH_CUDA=1)
  # Nothing of ours calls into libtorch_cuda.so directly, so a linker with
  # --as-needed (Ubuntu's default) would drop it and CUDA would be missing at
  # run time ("no CUDA device 0").
  target_link_options(cleave_torch INTERFACE "LINKER:--no-as-needed")
endif()

# A LibTorch built with the old libstdc++ string ABI (pip wheels before
# PyTorch 2.7 and the pre-cxx11-abi LibTorch zips) cannot share std::string
# with C++ libraries built with the new one (Debian's yaml-cpp and
# GoogleTest). cleave then compiles all of its own code with the old ABI,
# builds GoogleTest from source (CLEAVE_GTEST_SOURCE_DIR, e.g.
# /usr/src/googletest from libgtest-dev) and leaves out the CLI, the only
# user of yaml-cpp. ZeroMQ and OpenSSL are C libraries; Cereal is headers.
if(CLEAVE_TORCH_CXX11_ABI EQUAL 0)
  add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=0)
  if(CLEAVE_BUILD_CLI)
    message(WARNING "This LibTorch uses the old C++ string ABI (_GLIBCXX_USE_CXX11_ABI=0), which "
                    "Debian's yaml-cpp cannot link with: building without the CLI (CLEAVE_BUILD_CLI=OFF). "
                    "Libraries, tests and benchmarks are built. For the CLI, use a LibTorch with "
                    "the cxx11 ABI (PyTorch >= 2.7, or the cxx11-abi LibTorch download).")
    set(CLEAVE_BUILD_CLI OFF CACHE BOOL "Build the cleave CLI (needs yaml-cpp)" FORCE)
  endif()
  if(CLEAVE_BUILD_TESTS AND NOT CLEAVE_GTEST_SOURCE_DIR)
    message(FATAL_ERROR "This LibTorch uses the old C++ string ABI (_GLIBCXX_USE_CXX11_ABI=0): the "
                        "installed GoogleTest cannot be linked with it. Give its sources with "
                        "-DCLEAVE_GTEST_SOURCE_DIR=/usr/src/googletest (Debian libgtest-dev), or "
                        "-DCLEAVE_BUILD_TESTS=OFF.")
  endif()
endif()
message(STATUS "cleave: LibTorch CUDA ${CLEAVE_TORCH_CUDA}, _GLIBCXX_USE_CXX11_ABI=${CLEAVE_TORCH_CXX11_ABI}")
