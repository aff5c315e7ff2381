// Hopper warpgroup MMA (wgmma.mma_async, sm_90a): the shapes the forward kernel uses, shared-memory
// matrix descriptors for 128-byte-swizzled tiles, and the fences around them.
//
// Tiles in shared memory are stored as the 128-byte swizzle atoms wgmma reads: rows of 64 16-bit
// elements (128 bytes), 16-byte chunk c of row r at chunk c ^ (r % 8), 8 rows per 1024-byte atom,
// a tile wider than 64 elements as column halves 64 rows apart (8 KiB for 64 rows). The same tile
// serves as a K-major operand (rows are M or N, the 64 elements K) and as an MN-major one (rows are
// K, elements M or N).
//
// Accumulators are flat float arrays in the PTX order: d[4 i + c] is the i-th 8-column tile's
// (row lane / 4 + 8 (c / 2), column 2 (lane % 4) + c % 2) of the warp's 16 rows, as mma.sync's.
// A operands from registers have mma.sync's m16n8k16 A layout per warp.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace lightning::detail {

// Descriptor of a 128-byte-swizzled operand at shared address `addr` (16-byte aligned; its
// swizzle atoms 1024-byte aligned). K-major: sbo = the byte distance between 8-row groups, lbo
// unused. MN-major: lbo = between 64-element column groups, sbo = between 8-row (K) groups.
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) |
         (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Shared-memory writes by ordinary instructions (st.shared, cp.async) made visible to wgmma's
// reads.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// The compiler must not move accumulator reads or writes across the asynchronous MMAs.
template <int kN>
__device__ __forceinline__ void wgmma_fence_operand(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// D (64 x kN, f32) (+)= A (64 x 16, shared, K-major) B (16 x kN, shared, K-major).
template <class Element, int kN>
__device__ __forceinline__ void wgmma_ss(float (&d)[kN / 2], uint64_t a, uint64_t b, int acc);
// D (64 x kN, f32) (+)= A (64 x 16, shared, K-major) B (16 x kN, shared, MN-major).
template <class Element, int kN>
__device__ __forceinline__ void wgmma_ss_tb(float (&d)[kN / 2], uint64_t a, uint64_t b, int acc);
// D (64 x kN, f32) (+)= A (64 x 16, shared, MN-major) B (16 x kN, shared, MN-major).
template <class Element, int kN>
__device__ __forceinline__ void wgmma_mn(float (&d)[kN / 2], uint64_t a, uint64_t b, int acc);
// D (64 x kN, f32) (+)= A (64 x 16, registers) B (16 x kN, shared; kTransB: MN-major).
template <class Element, int kN, int kTransB>
__device__ __forceinline__ void wgmma_rs(float (&d)[kN / 2],
                                         const uint32_t (&a)[4],
                                         uint64_t b,
                                         int acc);

// The specialisations for one element type (its PTX name): P = Q K^T (SS, 64 x 64, or 64 x 32
// when two warpgroups share it), the fused backward's dK products (SS, 64 x 64, B K-major or
// MN-major), the register
// products into 64 columns (K-major B: the inter and intra products), the update's MN-major B
// with 64 or 128 columns, and the update from shared memory with both operands MN-major (the
// chained probe's sweep).
#define LIGHTNING_WGMMA_32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define LIGHTNING_WGMMA_64                                                       \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, " \
  "%17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define LIGHTNING_WGMMA_128                                                      \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, " \
  "%17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "  \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, "  \
  "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "  \
  "%62, %63}"
#define LIGHTNING_WGMMA_D16                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),    \
      "+f"(d[15])
#define LIGHTNING_WGMMA_D32                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),    \
      "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),  \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),  \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define LIGHTNING_WGMMA_D64                                                                       \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),    \
      "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),  \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),  \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),  \
      "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),  \
      "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),  \
      "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),  \
      "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define LIGHTNING_WGMMA_SPECIALISE(Element, ptx)                                                  \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_ss<Element, 32>(float(&d)[16], uint64_t a, uint64_t b,    \
                                                        int acc) {                                \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n32k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_32          \
        ", %16, %17, p, 1, 1, 0, 0;\n}\n"                                                         \
        : LIGHTNING_WGMMA_D16                                                                     \
        : "l"(a), "l"(b), "r"(acc));                                                              \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_ss<Element, 64>(float(&d)[32], uint64_t a, uint64_t b,    \
                                                        int acc) {                                \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_64          \
        ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                         \
        : LIGHTNING_WGMMA_D32                                                                     \
        : "l"(a), "l"(b), "r"(acc));                                                              \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_ss_tb<Element, 64>(float(&d)[32], uint64_t a, uint64_t b, \
                                                           int acc) {                             \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_64          \
        ", %32, %33, p, 1, 1, 0, 1;\n}\n"                                                         \
        : LIGHTNING_WGMMA_D32                                                                     \
        : "l"(a), "l"(b), "r"(acc));                                                              \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_mn<Element, 128>(float(&d)[64], uint64_t a, uint64_t b,   \
                                                         int acc) {                               \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_128        \
        ", %64, %65, p, 1, 1, 1, 1;\n}\n"                                                         \
        : LIGHTNING_WGMMA_D64                                                                     \
        : "l"(a), "l"(b), "r"(acc));                                                              \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_rs<Element, 64, 0>(float(&d)[32], const uint32_t(&a)[4],  \
                                                           uint64_t b, int acc) {                 \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_64          \
        ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"                                           \
        : LIGHTNING_WGMMA_D32                                                                     \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));                          \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_rs<Element, 64, 1>(float(&d)[32], const uint32_t(&a)[4],  \
                                                           uint64_t b, int acc) {                 \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_64          \
        ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                           \
        : LIGHTNING_WGMMA_D32                                                                     \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));                          \
  }                                                                                               \
  template <>                                                                                     \
  __device__ __forceinline__ void wgmma_rs<Element, 128, 1>(float(&d)[64], const uint32_t(&a)[4], \
                                                            uint64_t b, int acc) {                \
    asm volatile(                                                                                 \
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." ptx "." ptx " " LIGHTNING_WGMMA_128        \
        ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                           \
        : LIGHTNING_WGMMA_D64                                                                     \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc));                          \
  }

LIGHTNING_WGMMA_SPECIALISE(__nv_bfloat16, "bf16")
LIGHTNING_WGMMA_SPECIALISE(__half, "f16")
#undef LIGHTNING_WGMMA_SPECIALISE
#undef LIGHTNING_WGMMA_32
#undef LIGHTNING_WGMMA_64
#undef LIGHTNING_WGMMA_128
#undef LIGHTNING_WGMMA_D16
#undef LIGHTNING_WGMMA_D32
#undef LIGHTNING_WGMMA_D64

}  // namespace lightning::detail
