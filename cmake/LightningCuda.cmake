# Decide whether the CUDA parts are built. They compile wherever nvcc exists (a GPU is only needed
# to run them); everything else builds everywhere.
include(CheckLanguage)
set(LIGHTNING_HAS_CUDA OFF)
if(NOT LIGHTNING_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(LIGHTNING_HAS_CUDA ON)
  elseif(LIGHTNING_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LIGHTNING_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
if(LIGHTNING_HAS_CUDA)
  message(STATUS "lightning: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
else()
  message(STATUS "lightning: CUDA is OFF (no nvcc found or LIGHTNING_CUDA=OFF): building the CPU "
                 "references, the API's validation, the CPU tests and the CPU-only bench; the "
                 "kernels and GPU tests are not built")
endif()
