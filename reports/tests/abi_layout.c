/* Prints the size and field offsets of every struct of the C ABI (lightning/lightning.h), one
 * "sizeof T N" or "offsetof T.field N" per line, as a C compiler lays them out. The test
 * reports_ctypes_layout_matches_c holds compare_peers.py's ctypes mirrors against these lines. */
#include <stddef.h>
#include <stdio.h>

#include <lightning/lightning.h>

#define SIZE(T) printf("sizeof %s %zu\n", #T, sizeof(T))
#define OFF(T, f) printf("offsetof %s.%s %zu\n", #T, #f, offsetof(T, f))

int main(void) {
  SIZE(lightning_dtype_t);
  SIZE(lightning_status_t);
  SIZE(lightning_stream_t);

  SIZE(lightning_tensor_t);
  OFF(lightning_tensor_t, data);
  OFF(lightning_tensor_t, dtype);
  OFF(lightning_tensor_t, rank);
  OFF(lightning_tensor_t, shape);
  OFF(lightning_tensor_t, stride);

  SIZE(lightning_fwd_params_t);
  OFF(lightning_fwd_params_t, q);
  OFF(lightning_fwd_params_t, k);
  OFF(lightning_fwd_params_t, v);
  OFF(lightning_fwd_params_t, o);
  OFF(lightning_fwd_params_t, s);
  OFF(lightning_fwd_params_t, scale);
  OFF(lightning_fwd_params_t, initial_state);
  OFF(lightning_fwd_params_t, final_state);
  OFF(lightning_fwd_params_t, workspace);
  OFF(lightning_fwd_params_t, workspace_bytes);
  OFF(lightning_fwd_params_t, flags);

  SIZE(lightning_bwd_params_t);
  OFF(lightning_bwd_params_t, q);
  OFF(lightning_bwd_params_t, k);
  OFF(lightning_bwd_params_t, v);
  OFF(lightning_bwd_params_t, dout);
  OFF(lightning_bwd_params_t, s);
  OFF(lightning_bwd_params_t, scale);
  OFF(lightning_bwd_params_t, initial_state);
  OFF(lightning_bwd_params_t, dfinal_state);
  OFF(lightning_bwd_params_t, dq);
  OFF(lightning_bwd_params_t, dk);
  OFF(lightning_bwd_params_t, dv);
  OFF(lightning_bwd_params_t, dinitial_state);
  OFF(lightning_bwd_params_t, workspace);
  OFF(lightning_bwd_params_t, workspace_bytes);
  OFF(lightning_bwd_params_t, flags);
  return 0;
}
