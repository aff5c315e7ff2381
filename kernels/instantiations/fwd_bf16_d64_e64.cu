// One instantiation per translation unit: the forward for bf16, D = 64, E = 64.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward<__nv_bfloat16, 64, 64>(const FwdKernelParams&,
                                                 const Shape&,
                                                 cudaStream_t);
}  // namespace lightning::detail
