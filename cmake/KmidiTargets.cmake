# Helpers that give every kmidi target the same flags, and every target that
# uses LibTorch the one shared precompiled header.

# Definitions every target carries, so that one precompiled header fits all.
add_compile_definitions(ONNX_NAMESPACE=onnx ONNX_ML=1 SPDLOG_FMT_EXTERNAL SPDLOG_COMPILED_LIB SPDLOG_SHARED_LIB)

set(KMIDI_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(KMIDI_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(KMIDI_USE_PCH)
  add_library(kmidi_torch_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch.cpp)
  target_link_libraries(kmidi_torch_pch PUBLIC kmidi_torch)
  target_include_directories(kmidi_torch_pch PUBLIC ${PROJECT_SOURCE_DIR})
  target_precompile_headers(kmidi_torch_pch PRIVATE ${CMAKE_CURRENT_LIST_DIR}/kmidi_pch.h)
endif()

# kmidi_library(NAME SOURCES... [TORCH] [DEPS ...])
function(kmidi_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${KMIDI_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  if(ARG_TORCH)
    kmidi_use_torch(${name})
  endif()
endfunction()

# Links LibTorch and reuses the shared precompiled header.
function(kmidi_use_torch target)
  target_link_libraries(${target} PUBLIC kmidi_torch)
  if(KMIDI_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM kmidi_torch_pch)
  endif()
endfunction()
