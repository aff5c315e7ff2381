// One instantiation per translation unit: the forward for fp16, D = 128, E = 128.
#include "forward.cuh"

namespace lightning::detail {
template void run_forward<__half, 128, 128>(const FwdKernelParams&, const Shape&, cudaStream_t);
}  // namespace lightning::detail
