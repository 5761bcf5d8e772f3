# Every external dependency is found here, once. A missing one is a
# configure-time error: no feature is silently compiled out.

find_package(Threads REQUIRED)
find_package(Torch REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(RapidJSON REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ONNX REQUIRED)
find_package(Protobuf REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(OpenSSL REQUIRED)
# kmidi fetch-data: downloads (libcurl) and archive extraction (libarchive).
find_package(CURL REQUIRED)
find_package(LibArchive REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
# Shard chunks are deflated with libdeflate: ~2x zlib's speed, the same zlib
# format, so HDF5's own deflate filter reads them.
pkg_check_modules(LIBDEFLATE REQUIRED IMPORTED_TARGET libdeflate)
if(KMIDI_BUILD_TESTS)
  find_package(GTest REQUIRED)
  # Tests decode Ogg Vorbis a second way (libvorbisfile) to check libsndfile's decode.
  pkg_check_modules(VORBISFILE REQUIRED IMPORTED_TARGET vorbisfile)
  # Independent reference computations (NumPy, mido) run with Debian's Python.
  find_program(KMIDI_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
endif()

# c10d's Gloo process group headers include gloo's; Debian ships them in libgloo-dev.
find_path(KMIDI_GLOO_INCLUDE gloo/config.h REQUIRED)

message(STATUS "kmidi: LibTorch ${Torch_VERSION}, CUDA ${CUDA_FOUND}, compiler ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")

# onnx's CMake config names its targets onnx and onnx_proto up to 1.15
# (Debian 12) and ONNX::onnx and ONNX::onnx_proto from 1.16 (Debian 13). A
# bare name that is no target links as -lonnx and loses protobuf behind it.
foreach(_kmidi_onnx_lib onnx onnx_proto)
  if(NOT TARGET kmidi_${_kmidi_onnx_lib}_lib)
    add_library(kmidi_${_kmidi_onnx_lib}_lib INTERFACE)
    if(TARGET ONNX::${_kmidi_onnx_lib})
      target_link_libraries(kmidi_${_kmidi_onnx_lib}_lib INTERFACE ONNX::${_kmidi_onnx_lib})
    elseif(TARGET ${_kmidi_onnx_lib})
      target_link_libraries(kmidi_${_kmidi_onnx_lib}_lib INTERFACE ${_kmidi_onnx_lib})
    else()
      message(FATAL_ERROR "kmidi: the ONNX package defines neither ONNX::${_kmidi_onnx_lib} nor ${_kmidi_onnx_lib}")
    endif()
  endif()
endforeach()

# rapidjson's config exports variables, not a target.
if(NOT TARGET kmidi_rapidjson)
  add_library(kmidi_rapidjson INTERFACE)
  target_include_directories(kmidi_rapidjson SYSTEM INTERFACE ${RAPIDJSON_INCLUDE_DIRS})
endif()

# LibTorch's own config exports a list, not a target; wrap it so that its
# flags (ABI macro, include dirs) travel with the link.
if(NOT TARGET kmidi_torch)
  add_library(kmidi_torch INTERFACE)
  target_link_libraries(kmidi_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(kmidi_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS} ${KMIDI_GLOO_INCLUDE})
  separate_arguments(_kmidi_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(kmidi_torch INTERFACE ${_kmidi_torch_flags})
  # LibTorch's c10d headers hide each backend behind a macro; 1.13's CMake
  # config does not export them (2.x does; defining them again is harmless).
  target_compile_definitions(kmidi_torch INTERFACE USE_C10D_GLOO)
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
    # A CUDA LibTorch (e.g. the one inside pip torch) also has ProcessGroupNCCL.
    # Its Options embed NCCL's config struct, whose layout follows nccl.h: take
    # the nccl.h of the wheel that came with this torch (nvidia-nccl-cu12 or
    # -cu13 in site-packages/nvidia) before any system one, and say which.
    get_filename_component(_kmidi_site_packages "${Torch_DIR}/../../../.." ABSOLUTE)
    find_path(KMIDI_NCCL_INCLUDE nccl.h
      HINTS $ENV{NCCL_ROOT}/include $ENV{NCCL_INCLUDE_DIR}
            ${_kmidi_site_packages}/nvidia/nccl/include ${_kmidi_site_packages}/nvidia/cu13/include
            ${CUDAToolkit_INCLUDE_DIRS} ${CUDA_INCLUDE_DIRS}
      REQUIRED)
    file(STRINGS "${KMIDI_NCCL_INCLUDE}/nccl.h" _kmidi_nccl_defines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE "[^0-9;]" "" _kmidi_nccl_parts "${_kmidi_nccl_defines}")
    string(REPLACE ";" "." _kmidi_nccl_version "${_kmidi_nccl_parts}")
    message(STATUS "kmidi: ProcessGroupNCCL with nccl.h ${_kmidi_nccl_version} from ${KMIDI_NCCL_INCLUDE}")
    target_compile_definitions(kmidi_torch INTERFACE USE_C10D_NCCL)
    target_include_directories(kmidi_torch SYSTEM INTERFACE ${KMIDI_NCCL_INCLUDE})
  endif()
endif()
