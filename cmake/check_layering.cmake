# Layering check for diffbio's headers.
#
#   cmake -DDIFFBIO_INCLUDE_ROOT=<dir that contains diffbio/> -P check_layering.cmake
#
# The layer of a header is the first folder below diffbio/. config.hpp and the umbrella
# diffbio.hpp are special. A header may include diffbio headers only from these layers:
#
#   config.hpp   : none
#   core         : config core
#   ad           : config core ad
#   exec         : config core exec
#   soft         : config core ad exec soft
#   nn           : config core ad exec soft nn
#   io           : config core io
#   metrics      : config core ad exec soft metrics
#   ops          : config core ad exec soft nn metrics ops            (all but io and pipelines)
#   pipelines    : config core ad exec soft nn metrics ops pipelines  (all but io)
#   diffbio.hpp  : every layer
#
# No header includes the umbrella diffbio.hpp. A header that is not a .cuh file must not
# include a .cuh file nor a CUDA toolkit header (<cuda_runtime.h>, <cuda.h>, ...): those are
# for nvcc only. Both `#include <diffbio/...>` and `#include "..."` lines are checked; a
# quoted include is resolved against the including file's folder, then the include root.
# Every violation is printed as `file:line: what`; the script fails when there is any.

cmake_minimum_required(VERSION 3.20)

if(NOT DEFINED DIFFBIO_INCLUDE_ROOT OR DIFFBIO_INCLUDE_ROOT STREQUAL "")
  message(FATAL_ERROR "check_layering: pass -DDIFFBIO_INCLUDE_ROOT=<dir that contains diffbio/>")
endif()
get_filename_component(_root "${DIFFBIO_INCLUDE_ROOT}" ABSOLUTE)
set(_lib "${_root}/diffbio")
if(NOT IS_DIRECTORY "${_lib}")
  message(FATAL_ERROR "check_layering: ${_lib} is not a directory")
endif()

set(_layers core ad exec soft nn io metrics ops pipelines)
set(_allowed_config "")
set(_allowed_core config core)
set(_allowed_ad config core ad)
set(_allowed_exec config core exec)
set(_allowed_soft config core ad exec soft)
set(_allowed_nn config core ad exec soft nn)
set(_allowed_io config core io)
set(_allowed_metrics config core ad exec soft metrics)
set(_allowed_ops config core ad exec soft nn metrics ops)
set(_allowed_pipelines config core ad exec soft nn metrics ops pipelines)
set(_allowed_umbrella config ${_layers})
list(JOIN _layers " " _layers_text)

# CUDA toolkit headers that only nvcc-compiled (.cuh) headers may include.
set(_cuda_header_regex
  "^(cuda\\.h|cuda_runtime\\.h|cuda_runtime_api\\.h|cuda_fp16\\.h|cuda_bf16\\.h|device_launch_parameters\\.h|curand[A-Za-z0-9_]*\\.h|cublas[A-Za-z0-9_]*\\.h|(cuda|thrust|cub)/.*)$")

# _diffbio_classify(<path relative to diffbio/> <out-var>)
#   -> config | umbrella | <layer> | unknown
function(_diffbio_classify rel out_var)
  if(rel STREQUAL "config.hpp")
    set(${out_var} config PARENT_SCOPE)
  elseif(rel STREQUAL "diffbio.hpp")
    set(${out_var} umbrella PARENT_SCOPE)
  elseif(rel MATCHES "^([^/]+)/")
    set(_first "${CMAKE_MATCH_1}")
    if(_first IN_LIST _layers)
      set(${out_var} "${_first}" PARENT_SCOPE)
    else()
      set(${out_var} unknown PARENT_SCOPE)
    endif()
  else()
    set(${out_var} unknown PARENT_SCOPE)
  endif()
endfunction()

set(_violations 0)
macro(_diffbio_violation where what)
  message("${where}: ${what}")
  math(EXPR _violations "${_violations} + 1")
endmacro()

file(GLOB_RECURSE _files LIST_DIRECTORIES false "${_lib}/*")
list(SORT _files)
list(LENGTH _files _nfiles)
if(_nfiles EQUAL 0)
  message(FATAL_ERROR "check_layering: no files below ${_lib}")
endif()

foreach(_file IN LISTS _files)
  file(RELATIVE_PATH _rel "${_lib}" "${_file}")
  _diffbio_classify("${_rel}" _from)
  if(_from STREQUAL "unknown")
    _diffbio_violation("${_file}:1"
      "not in a known layer (${_layers_text}) and not config.hpp/diffbio.hpp; add the layer to cmake/check_layering.cmake")
    continue()
  endif()
  set(_allowed ${_allowed_${_from}})
  set(_is_cuh OFF)
  if(_file MATCHES "\\.cuh$")
    set(_is_cuh ON)
  endif()
  get_filename_component(_file_dir "${_file}" DIRECTORY)

  # Split into lines; protect the characters that CMake lists treat specially.
  file(READ "${_file}" _content)
  string(REPLACE "\r" "" _content "${_content}")
  string(REPLACE "\\" "<BSL>" _content "${_content}")
  string(REPLACE ";" "<SEMI>" _content "${_content}")
  string(REPLACE "[" "<LB>" _content "${_content}")
  string(REPLACE "]" "<RB>" _content "${_content}")
  string(REPLACE "\n" ";" _lines "${_content}")

  set(_lineno 0)
  foreach(_line IN LISTS _lines)
    math(EXPR _lineno "${_lineno} + 1")
    if(NOT _line MATCHES "^[ \t]*#[ \t]*include")
      continue()
    endif()
    set(_where "${_file}:${_lineno}")
    if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*<([^>]+)>")
      set(_inc "${CMAKE_MATCH_1}")
      set(_shown "<${_inc}>")
      set(_target_rel "")
      if(_inc MATCHES "^diffbio/(.+)$")
        set(_target_rel "${CMAKE_MATCH_1}")
      endif()
    elseif(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(_inc "${CMAKE_MATCH_1}")
      set(_shown "\"${_inc}\"")
      set(_target_rel "")
      get_filename_component(_resolved "${_inc}" ABSOLUTE BASE_DIR "${_file_dir}")
      if(NOT EXISTS "${_resolved}")
        get_filename_component(_resolved "${_inc}" ABSOLUTE BASE_DIR "${_root}")
      endif()
      if(NOT EXISTS "${_resolved}")
        _diffbio_violation("${_where}"
          "${_shown} is neither relative to the including file nor to ${_root}; use <...> for headers outside diffbio")
        continue()
      endif()
      string(FIND "${_resolved}" "${_lib}/" _pos)
      if(NOT _pos EQUAL 0)
        _diffbio_violation("${_where}" "${_shown} resolves outside ${_lib}: ${_resolved}")
        continue()
      endif()
      file(RELATIVE_PATH _target_rel "${_lib}" "${_resolved}")
    else()
      _diffbio_violation("${_where}" "computed or malformed #include cannot be checked")
      continue()
    endif()

    # nvcc-only headers stay out of headers that a plain C++ compiler sees.
    if(NOT _is_cuh)
      if(_inc MATCHES "\\.cuh$")
        _diffbio_violation("${_where}"
          "${_shown} is a CUDA header (.cuh); only .cuh headers may include it")
      elseif(_inc MATCHES "${_cuda_header_regex}")
        _diffbio_violation("${_where}"
          "${_shown} is a CUDA toolkit header; only .cuh headers may include it")
      endif()
    endif()

    if(_target_rel STREQUAL "")
      continue()  # not a diffbio header
    endif()
    _diffbio_classify("${_target_rel}" _to)
    if(_to STREQUAL "umbrella")
      _diffbio_violation("${_where}"
        "${_shown}: the umbrella header diffbio.hpp is for users; include the specific headers")
    elseif(_to STREQUAL "unknown")
      _diffbio_violation("${_where}" "${_shown} is not in a known layer (${_layers_text})")
    elseif(NOT _to IN_LIST _allowed)
      if(_from STREQUAL "config")
        set(_may "nothing from diffbio")
      else()
        list(JOIN _allowed " " _may)
      endif()
      _diffbio_violation("${_where}"
        "${_from} must not include ${_shown} (layer ${_to}); ${_from} may include: ${_may}")
    endif()
  endforeach()
endforeach()

if(_violations GREATER 0)
  message(FATAL_ERROR "layering check failed: ${_violations} violation(s) below ${_lib}")
endif()
message(STATUS "layering check passed: ${_nfiles} file(s) below ${_lib}")
