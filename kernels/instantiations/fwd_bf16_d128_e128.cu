// One translation unit per instantiation: the forward and the backward's fused pass,
// bf16, D = 128, E = 128.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward<__nv_bfloat16, 128, 128>(const FwdKernelParams&,
                                                   const Shape&,
                                                   cudaStream_t);
template void run_backward_dual<__nv_bfloat16, 128, 128>(const FwdKernelParams&,
                                                         const Shape&,
                                                         cudaStream_t);
}  // namespace lightning::detail
