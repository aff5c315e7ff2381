add_library(lightning_warnings INTERFACE)
target_compile_options(lightning_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter --expt-relaxed-constexpr
                              -Xptxas=-warn-spills,-warn-lmem-usage>)
