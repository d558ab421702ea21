# Package test: builds and runs examples/cmake-consumer against diffbio.
#
#   cmake -DMODE=install|subdirectory
#         -DDIFFBIO_SOURCE_DIR=<repo root> -DDIFFBIO_BINARY_DIR=<configured diffbio build>
#         -DWORK_DIR=<scratch dir, wiped first> -DEXPECTED_VERSION=<x.y.z>
#         [-DINSTALL_PREFIX=<install prefix, wiped first; default WORK_DIR/prefix>]
#         [-DGENERATOR=... -DGENERATOR_PLATFORM=... -DGENERATOR_TOOLSET=...]
#         [-DMAKE_PROGRAM=... -DCXX_COMPILER=... -DCONFIG=<build config>]
#         -P test_install_consumer.cmake
#
# MODE=install      : `cmake --install` the diffbio build into INSTALL_PREFIX, then configure
#                     the consumer with -DCMAKE_PREFIX_PATH=INSTALL_PREFIX (find_package).
# MODE=subdirectory : configure the consumer with -DDIFFBIO_CONSUMER_SOURCE_DIR=<repo root>
#                     (add_subdirectory).
# Either way the consumer is built with the same generator and compiler, run, and must exit 0
# and print EXPECTED_VERSION.

cmake_minimum_required(VERSION 3.20)

foreach(_var MODE DIFFBIO_SOURCE_DIR WORK_DIR EXPECTED_VERSION)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "test_install_consumer: -D${_var}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(install|subdirectory)$")
  message(FATAL_ERROR "test_install_consumer: MODE must be install or subdirectory, not '${MODE}'")
endif()
if(NOT DEFINED CONFIG OR CONFIG STREQUAL "")
  set(CONFIG Release)
endif()

# _diffbio_run(<step name> <command...>): run, echo the output, fail on non-zero exit.
function(_diffbio_run step)
  string(REPLACE ";" " " _shown "${ARGN}")
  message(STATUS "[${MODE}] ${step}: ${_shown}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE _rc
    OUTPUT_VARIABLE _out
    ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    message("${_out}")
    message(FATAL_ERROR "[${MODE}] ${step} failed (exit ${_rc})")
  endif()
  set(_diffbio_last_output "${_out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_consumer_src "${DIFFBIO_SOURCE_DIR}/examples/cmake-consumer")
set(_consumer_bin "${WORK_DIR}/build")

set(_configure_args -S "${_consumer_src}" -B "${_consumer_bin}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(DEFINED GENERATOR AND NOT GENERATOR STREQUAL "")
  list(APPEND _configure_args -G "${GENERATOR}")
endif()
if(DEFINED GENERATOR_PLATFORM AND NOT GENERATOR_PLATFORM STREQUAL "")
  list(APPEND _configure_args -A "${GENERATOR_PLATFORM}")
endif()
if(DEFINED GENERATOR_TOOLSET AND NOT GENERATOR_TOOLSET STREQUAL "")
  list(APPEND _configure_args -T "${GENERATOR_TOOLSET}")
endif()
if(DEFINED MAKE_PROGRAM AND NOT MAKE_PROGRAM STREQUAL "")
  list(APPEND _configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(DEFINED CXX_COMPILER AND NOT CXX_COMPILER STREQUAL "")
  list(APPEND _configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

if(MODE STREQUAL "install")
  if(NOT DEFINED DIFFBIO_BINARY_DIR OR DIFFBIO_BINARY_DIR STREQUAL "")
    message(FATAL_ERROR "test_install_consumer: MODE=install needs -DDIFFBIO_BINARY_DIR=...")
  endif()
  if(DEFINED INSTALL_PREFIX AND NOT INSTALL_PREFIX STREQUAL "")
    set(_prefix "${INSTALL_PREFIX}")
  else()
    set(_prefix "${WORK_DIR}/prefix")
  endif()
  # Wipe the prefix of the previous run, but never a directory this script did not create.
  if(EXISTS "${_prefix}")
    file(GLOB _prefix_entries "${_prefix}/*")
    if(_prefix_entries AND NOT EXISTS "${_prefix}/.diffbio_install_test_prefix")
      message(FATAL_ERROR "[install] refusing to wipe ${_prefix}: not a prefix made by this test")
    endif()
    file(REMOVE_RECURSE "${_prefix}")
  endif()
  file(MAKE_DIRECTORY "${_prefix}")
  file(WRITE "${_prefix}/.diffbio_install_test_prefix" "scratch install prefix of diffbio's install_consumer test\n")
  _diffbio_run("install" "${CMAKE_COMMAND}" --install "${DIFFBIO_BINARY_DIR}"
    --prefix "${_prefix}" --config "${CONFIG}")
  if(NOT EXISTS "${_prefix}/include/diffbio/config.hpp")
    message(FATAL_ERROR "[install] ${_prefix}/include/diffbio/config.hpp was not installed")
  endif()
  file(GLOB_RECURSE _config_files "${_prefix}/*.cmake")
  list(FILTER _config_files INCLUDE REGEX "/diffbioConfig\\.cmake$")
  if(NOT _config_files)
    message(FATAL_ERROR "[install] no diffbioConfig.cmake below ${_prefix}")
  endif()
  list(APPEND _configure_args "-DCMAKE_PREFIX_PATH=${_prefix}")
else()
  list(APPEND _configure_args "-DDIFFBIO_CONSUMER_SOURCE_DIR=${DIFFBIO_SOURCE_DIR}")
endif()

_diffbio_run("configure consumer" "${CMAKE_COMMAND}" ${_configure_args})

if(MODE STREQUAL "install")
  # The consumer must have found the freshly installed package, not some other copy.
  file(STRINGS "${_consumer_bin}/CMakeCache.txt" _dir_line REGEX "^diffbio_DIR:")
  string(REGEX REPLACE "^diffbio_DIR:[A-Z]+=" "" _found_dir "${_dir_line}")
  string(FIND "${_found_dir}" "${_prefix}/" _pos)
  if(NOT _pos EQUAL 0)
    message(FATAL_ERROR "[install] consumer found diffbio in '${_found_dir}', expected below ${_prefix}")
  endif()
else()
  # Under add_subdirectory() diffbio must not build its tests, benchmarks or examples.
  foreach(_sub tests benchmarks examples)
    if(EXISTS "${_consumer_bin}/diffbio_build/${_sub}")
      message(FATAL_ERROR "[subdirectory] diffbio configured its ${_sub} under add_subdirectory()")
    endif()
  endforeach()
endif()

_diffbio_run("build consumer" "${CMAKE_COMMAND}" --build "${_consumer_bin}" --config "${CONFIG}")

set(_exe "")
foreach(_candidate "${_consumer_bin}/consumer" "${_consumer_bin}/consumer.exe"
                   "${_consumer_bin}/${CONFIG}/consumer" "${_consumer_bin}/${CONFIG}/consumer.exe")
  if(EXISTS "${_candidate}" AND NOT IS_DIRECTORY "${_candidate}")
    set(_exe "${_candidate}")
    break()
  endif()
endforeach()
if(_exe STREQUAL "")
  message(FATAL_ERROR "[${MODE}] the consumer executable was not found below ${_consumer_bin}")
endif()

_diffbio_run("run consumer" "${_exe}")
message(STATUS "[${MODE}] consumer output: ${_diffbio_last_output}")
string(FIND "${_diffbio_last_output}" "${EXPECTED_VERSION}" _pos)
if(_pos EQUAL -1)
  message(FATAL_ERROR "[${MODE}] consumer output does not contain the version ${EXPECTED_VERSION}")
endif()
message(STATUS "[${MODE}] consumer test passed")
