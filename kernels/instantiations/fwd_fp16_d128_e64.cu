// One translation unit per instantiation: the forward and the backward's fused pass,
// fp16, D = 128, E = 64.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward<__half, 128, 64>(const FwdKernelParams&, const Shape&, cudaStream_t);
template void run_backward_dual<__half, 128, 64>(const FwdKernelParams&,
                                                 const Shape&,
                                                 cudaStream_t);
}  // namespace lightning::detail
