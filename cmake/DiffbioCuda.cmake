# CUDA support for diffbio's own CUDA targets (tests and the .cuh self-containment check).
#
#   diffbio_find_cuda_compiler(<out-var>)
#       Sets <out-var> to ON when a CUDA compiler is available and diffbio is the
#       top-level project (the default of DIFFBIO_ENABLE_CUDA), OFF otherwise.
#       When check_language(CUDA) finds nothing but DIFFBIO_FALLBACK_NVCC (default
#       /usr/local/cuda/bin/nvcc) exists, that nvcc is used.
#
#   diffbio_enable_cuda()
#       Enables the CUDA language with CMAKE_CUDA_ARCHITECTURES defaulting to "75;90"
#       and sets CMAKE_CUDA_STANDARD to 20 when nvcc accepts -std=c++20 (checked with a
#       real compile), else 17.

include_guard(GLOBAL)

if(NOT DEFINED DIFFBIO_FALLBACK_NVCC)
  set(DIFFBIO_FALLBACK_NVCC "/usr/local/cuda/bin/nvcc")
endif()

function(_diffbio_locate_cuda_compiler out_var)
  if(CMAKE_CUDA_COMPILER)
    set(${out_var} "${CMAKE_CUDA_COMPILER}" PARENT_SCOPE)
    return()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS "${DIFFBIO_FALLBACK_NVCC}")
    message(STATUS "diffbio: check_language(CUDA) found nothing, using ${DIFFBIO_FALLBACK_NVCC}")
    set(CMAKE_CUDA_COMPILER "${DIFFBIO_FALLBACK_NVCC}" CACHE FILEPATH "CUDA compiler" FORCE)
  endif()
  if(CMAKE_CUDA_COMPILER)
    set(${out_var} "${CMAKE_CUDA_COMPILER}" PARENT_SCOPE)
  else()
    set(${out_var} "" PARENT_SCOPE)
  endif()
endfunction()

function(diffbio_find_cuda_compiler out_var)
  set(_default OFF)
  # Only probe when the answer matters: the top-level default (not given by the user yet),
  # or an explicit request.
  if((DIFFBIO_IS_TOP_LEVEL AND NOT DEFINED DIFFBIO_ENABLE_CUDA) OR DIFFBIO_ENABLE_CUDA)
    _diffbio_locate_cuda_compiler(_nvcc)
    if(_nvcc AND DIFFBIO_IS_TOP_LEVEL)
      set(_default ON)
    endif()
  endif()
  set(${out_var} ${_default} PARENT_SCOPE)
endfunction()

# A macro, so that the variables it sets land in the caller's directory scope.
macro(diffbio_enable_cuda)
  _diffbio_locate_cuda_compiler(_diffbio_nvcc)
  if(NOT _diffbio_nvcc)
    message(FATAL_ERROR
      "DIFFBIO_ENABLE_CUDA is ON but no CUDA compiler was found. "
      "Set CMAKE_CUDA_COMPILER (or the CUDACXX environment variable), or configure with -DDIFFBIO_ENABLE_CUDA=OFF.")
  endif()

  # Fixed architectures: the build must not depend on the GPU of the build machine.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES "75;90" CACHE STRING "CUDA architectures diffbio's CUDA targets are built for")
  endif()

  enable_language(CUDA)

  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    # CMake releases older than nvcc's C++20 support do not know its flag (e.g. CMake 3.25
    # with nvcc 13). Check with a real compile whether this nvcc and its host compiler
    # accept C++20, and if so teach CMake the flag.
    include(CheckSourceCompiles)
    set(_diffbio_saved_required_flags "${CMAKE_REQUIRED_FLAGS}")
    set(CMAKE_REQUIRED_FLAGS "-std=c++20")
    check_source_compiles(CUDA [=[
#include <bit>
#include <concepts>
#include <span>
template <std::floating_point T>
__host__ __device__ constexpr T diffbio_square(T x) { return x * x; }
__global__ void diffbio_kernel(float* p) { p[threadIdx.x] = diffbio_square(p[threadIdx.x]); }
template <class T> requires std::integral<T>
constexpr int diffbio_bits(T v) { return std::popcount(static_cast<unsigned>(v)); }
int main() {
  constexpr bool three_way = (1 <=> 2) < 0;
  static_assert(three_way && diffbio_bits(7) == 3);
  float data[2] = {1.0f, 2.0f};
  std::span<float> s(data);
  return static_cast<int>(s.size()) - 2;
}
]=] DIFFBIO_NVCC_SUPPORTS_CXX20)
    set(CMAKE_REQUIRED_FLAGS "${_diffbio_saved_required_flags}")
    if(DIFFBIO_NVCC_SUPPORTS_CXX20)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
      set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
    endif()
  endif()
  if(NOT DEFINED CMAKE_CUDA_STANDARD)
    if(CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA_STANDARD 20)
    else()
      message(STATUS "diffbio: ${CMAKE_CUDA_COMPILER} does not accept -std=c++20, CUDA code is built as C++17")
      set(CMAKE_CUDA_STANDARD 17)
    endif()
  endif()
  if(NOT DEFINED CMAKE_CUDA_STANDARD_REQUIRED)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  endif()
  if(NOT DEFINED CMAKE_CUDA_EXTENSIONS)
    set(CMAKE_CUDA_EXTENSIONS OFF)
  endif()
  message(STATUS "diffbio: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, C++${CMAKE_CUDA_STANDARD}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}")
endmacro()
