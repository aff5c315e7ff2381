// One translation unit per instantiation: the forward and the backward's fused pass,
// bf16, D = 64, E = 64.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward<__nv_bfloat16, 64, 64>(const FwdKernelParams&,
                                                 const Shape&,
                                                 cudaStream_t);
template void run_backward_dual<__nv_bfloat16, 64, 64>(const FwdKernelParams&,
                                                       const Shape&,
                                                       cudaStream_t);
}  // namespace lightning::detail
