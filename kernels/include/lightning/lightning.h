/* lightning: the C ABI.
 *
 * Plain structs and status codes over the same code as the C++ API (lightning/api.h), so any
 * language can call the kernels on its own device pointers and stream. Every function catches
 * everything at this boundary: it never throws, never aborts, and returns a status; the detail of
 * the last failure on the calling thread is in lightning_last_error_message().
 *
 * The math (DESIGN.md section 1), per batch b and head h, with lambda = exp(-s[h]):
 *   S_t = lambda * S_{t-1} + k_t^T v_t   (S_{-1} = initial state or 0),   o_t = scale * q_t S_t.
 */
#ifndef LIGHTNING_LIGHTNING_H_
#define LIGHTNING_LIGHTNING_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lightning_status {
  LIGHTNING_SUCCESS = 0,
  LIGHTNING_ERROR_NULL_POINTER = 1,            /* a required pointer is NULL */
  LIGHTNING_ERROR_INVALID_RANK = 2,            /* a tensor's rank is not 4 */
  LIGHTNING_ERROR_SHAPE_MISMATCH = 3,          /* shapes of q, k, v, o, states, grads disagree */
  LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM = 4,    /* D or E not in {64, 128} */
  LIGHTNING_ERROR_UNSUPPORTED_DTYPE = 5,       /* unknown dtype, mixed dtypes, non-fp32 state */
  LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS = 6, /* stride[3] != 1 */
  LIGHTNING_ERROR_INVALID_SLOPE = 7,           /* s[h] < 0, NaN or infinite */
  LIGHTNING_ERROR_MISALIGNED = 8,              /* data or a row stride not 16-byte aligned */
  LIGHTNING_ERROR_INVALID_VALUE = 9,  /* other bad values: sizes < 1, negative strides, NaN scale */
  LIGHTNING_ERROR_WORKSPACE = 10,     /* workspace missing or smaller than required */
  LIGHTNING_ERROR_CUDA = 11,          /* a CUDA call or launch failed */
  LIGHTNING_ERROR_OUT_OF_MEMORY = 12, /* a device allocation failed */
  LIGHTNING_ERROR_NOT_BUILT = 13,     /* this build has no CUDA support */
  LIGHTNING_ERROR_INTERNAL = 14       /* a bug: please report it */
} lightning_status_t;

typedef enum lightning_dtype {
  LIGHTNING_BF16 = 0,
  LIGHTNING_FP16 = 1,
  LIGHTNING_FP32 = 2
} lightning_dtype_t;

/* A strided view. Activations: logical shape [B, H, N, D]; states: [B, H, D, E]. Strides are in
 * elements for each logical axis; the last axis must be contiguous (stride[3] == 1). The memory
 * layouts [B,H,N,D] and [B,N,H,D] are both just strides. data == NULL marks an absent optional
 * tensor. */
typedef struct lightning_tensor {
  void* data;
  lightning_dtype_t dtype;
  int32_t rank;
  int64_t shape[4];
  int64_t stride[4];
} lightning_tensor_t;

/* Same type as cudaStream_t (NULL is the legacy default stream); declared here so this header
 * needs no CUDA headers. */
typedef struct CUstream_st* lightning_stream_t;

/* Skip the host-side check of s (it copies H floats from the device and synchronizes the stream):
 * for callers that checked s once themselves, and for CUDA graph capture. */
#define LIGHTNING_FLAG_SKIP_SLOPE_CHECK 1u

typedef struct lightning_fwd_params {
  lightning_tensor_t q;             /* [B, H, N, D] */
  lightning_tensor_t k;             /* [B, H, N, D] */
  lightning_tensor_t v;             /* [B, H, N, E] */
  lightning_tensor_t o;             /* [B, H, N, E], output, same dtype as q */
  const float* s;                   /* [H], device memory, s[h] >= 0 */
  float scale;                      /* 1.0 after lightning_fwd_params_init */
  lightning_tensor_t initial_state; /* optional [B, H, D, E] fp32 input */
  lightning_tensor_t final_state;   /* optional [B, H, D, E] fp32 output */
  void* workspace;                  /* device memory, lightning_forward_workspace_size() bytes */
  size_t workspace_bytes;
  uint32_t flags; /* LIGHTNING_FLAG_* */
} lightning_fwd_params_t;

typedef struct lightning_bwd_params {
  lightning_tensor_t q;    /* [B, H, N, D] */
  lightning_tensor_t k;    /* [B, H, N, D] */
  lightning_tensor_t v;    /* [B, H, N, E] */
  lightning_tensor_t dout; /* [B, H, N, E], gradient of o */
  const float* s;          /* [H], device memory */
  float scale;
  lightning_tensor_t initial_state;  /* optional [B, H, D, E] fp32 input */
  lightning_tensor_t dfinal_state;   /* optional [B, H, D, E] fp32, gradient of the final state */
  lightning_tensor_t dq;             /* [B, H, N, D], output */
  lightning_tensor_t dk;             /* [B, H, N, D], output */
  lightning_tensor_t dv;             /* [B, H, N, E], output */
  lightning_tensor_t dinitial_state; /* optional [B, H, D, E] fp32 output */
  void* workspace;
  size_t workspace_bytes;
  uint32_t flags;
} lightning_bwd_params_t;

/* A short constant name for the status ("LIGHTNING_ERROR_SHAPE_MISMATCH"); never NULL. */
const char* lightning_status_string(lightning_status_t status);
/* The message of the last failure on this thread ("" when none); valid until the next call. */
const char* lightning_last_error_message(void);
const char* lightning_version(void);

/* Zero everything, set rank 4 on every tensor and scale = 1. */
lightning_status_t lightning_fwd_params_init(lightning_fwd_params_t* params);
lightning_status_t lightning_bwd_params_init(lightning_bwd_params_t* params);

/* Check everything but the values of s; with s_host != NULL (H floats in host memory) those too.
 * Touches no device memory; usable without a GPU. */
lightning_status_t lightning_forward_validate(const lightning_fwd_params_t* params,
                                              const float* s_host);
lightning_status_t lightning_backward_validate(const lightning_bwd_params_t* params,
                                               const float* s_host);

/* Workspace (device bytes) the call needs for these shapes; may be 0. */
lightning_status_t lightning_forward_workspace_size(const lightning_fwd_params_t* params,
                                                    size_t* bytes);
lightning_status_t lightning_backward_workspace_size(const lightning_bwd_params_t* params,
                                                     size_t* bytes);

/* Enqueue the pass on the stream. Asynchronous, except for the check of s (see the flag). */
lightning_status_t lightning_forward(const lightning_fwd_params_t* params,
                                     lightning_stream_t stream);
lightning_status_t lightning_backward(const lightning_bwd_params_t* params,
                                      lightning_stream_t stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LIGHTNING_LIGHTNING_H_ */
