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
find_package(PkgConfig REQUIRED)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)
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
  # LibTorch's c10d headers hide each backend behind a macro that LibTorch's
  # CMake config does not export; define the ones this LibTorch was built with.
  target_compile_definitions(kmidi_torch INTERFACE USE_C10D_GLOO)
  if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
    # A CUDA LibTorch (e.g. the one inside pip torch) also has ProcessGroupNCCL,
    # whose header needs nccl.h (pip: nvidia-nccl-cu12's include folder).
    find_path(KMIDI_NCCL_INCLUDE nccl.h
      HINTS $ENV{NCCL_ROOT}/include $ENV{NCCL_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS} ${CUDA_INCLUDE_DIRS}
      REQUIRED)
    target_compile_definitions(kmidi_torch INTERFACE USE_C10D_NCCL)
    target_include_directories(kmidi_torch SYSTEM INTERFACE ${KMIDI_NCCL_INCLUDE})
  endif()
endif()
