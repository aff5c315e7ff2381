// One instantiation per translation unit: the fp32 forward, D = 64, E = 64.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward_fp32<64, 64>(const FwdKernelParams&, const Shape&, cudaStream_t);
}  // namespace lightning::detail
