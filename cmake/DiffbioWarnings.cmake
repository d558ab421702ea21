# diffbio_target_warnings(<target>)
#
# Strict warnings for diffbio's own targets (tests, examples, benchmarks). Never applied
# to the diffbio library target, so consumers keep their own warning settings.
# Warnings are errors unless DIFFBIO_WARNINGS_AS_ERRORS is OFF.
#
#   C++  : -Wall -Wextra -Wpedantic [-Werror]            (MSVC: /W4 [/WX])
#   CUDA : -Xcompiler=-Wall,-Wextra [-Werror=all-warnings]
#          (-Werror=all-warnings makes both nvcc's front-end and host-compiler warnings
#           errors; -Wpedantic is left out because nvcc's generated host code trips it)
#
# GCC 12 and 13 emit false positives of their flow-based buffer-access warnings
# (-Wstringop-overflow, -Warray-bounds, -Wstringop-overread, -Wrestrict) from libstdc++ code
# inlined at -O2/-O3, e.g. for `std::vector<double> v(n)`; known GCC issues.
# The same holds for -Wmaybe-uninitialized inside Eigen's SVD/QR and AVX-512 code (GCC's own
# intrinsic headers, -march=native). With those compilers these warnings are still shown but do not
# fail the build.

include_guard(GLOBAL)

set(_diffbio_gcc12_not_errors
  -Wno-error=stringop-overflow -Wno-error=array-bounds -Wno-error=stringop-overread -Wno-error=restrict
  -Wno-error=maybe-uninitialized)

function(diffbio_target_warnings target)
  set(_werror OFF)
  if(DIFFBIO_WARNINGS_AS_ERRORS)
    set(_werror ON)
  endif()

  set(_gcc12 OFF)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
     AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 14)
    set(_gcc12 ON)
  endif()

  if(CMAKE_CXX_COMPILER_ID STREQUAL "MSVC")
    set(_cxx /W4 /permissive-)
    if(_werror)
      list(APPEND _cxx /WX)
    endif()
  else()
    set(_cxx -Wall -Wextra -Wpedantic)
    if(_werror)
      list(APPEND _cxx -Werror)
      if(_gcc12)
        list(APPEND _cxx ${_diffbio_gcc12_not_errors})
      endif()
    endif()
  endif()

  set(_cuda -Xcompiler=-Wall,-Wextra)
  if(_werror)
    list(APPEND _cuda -Werror=all-warnings)
    # nvcc's host compiler defaults to the system g++; relax it like the C++ compiler above
    # unless a different host compiler was chosen.
    if(_gcc12 AND (NOT CMAKE_CUDA_HOST_COMPILER OR CMAKE_CUDA_HOST_COMPILER STREQUAL CMAKE_CXX_COMPILER))
      string(REPLACE ";" "," _relaxed "${_diffbio_gcc12_not_errors}")
      list(APPEND _cuda "-Xcompiler=${_relaxed}")
    endif()
  endif()

  target_compile_options(${target} PRIVATE
    "$<$<COMPILE_LANGUAGE:CXX>:${_cxx}>"
    "$<$<COMPILE_LANGUAGE:CUDA>:${_cuda}>")
endfunction()
