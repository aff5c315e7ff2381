// One instantiation per translation unit: the fp32 forward, D = 128, E = 128.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward_fp32<128, 128>(const FwdKernelParams&, const Shape&, cudaStream_t);
}  // namespace lightning::detail
