// The C ABI: every function catches everything here and turns it into a status plus a message.
#include <exception>
#include <new>
#include <string>

#include <lightning/api.h>
#include <lightning/lightning.h>

namespace {

thread_local std::string g_last_error;

template <class F>
lightning_status_t guarded(F&& f) noexcept {
  try {
    f();
    g_last_error.clear();
    return LIGHTNING_SUCCESS;
  } catch (const lightning::InvalidArgument& e) {
    g_last_error = e.what();
    return e.status();
  } catch (const lightning::OutOfMemory& e) {
    g_last_error = e.what();
    return LIGHTNING_ERROR_OUT_OF_MEMORY;
  } catch (const lightning::CudaError& e) {
    g_last_error = e.what();
    return LIGHTNING_ERROR_CUDA;
  } catch (const lightning::NotBuilt& e) {
    g_last_error = e.what();
    return LIGHTNING_ERROR_NOT_BUILT;
  } catch (const std::bad_alloc&) {
    g_last_error = "lightning: host allocation failed";
    return LIGHTNING_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("lightning: internal error: ") + e.what();
    return LIGHTNING_ERROR_INTERNAL;
  } catch (...) {
    g_last_error = "lightning: internal error: unknown exception";
    return LIGHTNING_ERROR_INTERNAL;
  }
}

template <class T>
void require(const T* p, const char* name) {
  if (p == nullptr) {
    throw lightning::InvalidArgument(LIGHTNING_ERROR_NULL_POINTER,
                                     std::string("lightning: ") + name + " is null");
  }
}

template <class... Tensors>
void set_rank4(Tensors*... t) {
  ((t->rank = 4), ...);
}

}  // namespace

extern "C" {

const char* lightning_status_string(lightning_status_t status) {
  switch (status) {
    case LIGHTNING_SUCCESS:
      return "LIGHTNING_SUCCESS";
    case LIGHTNING_ERROR_NULL_POINTER:
      return "LIGHTNING_ERROR_NULL_POINTER";
    case LIGHTNING_ERROR_INVALID_RANK:
      return "LIGHTNING_ERROR_INVALID_RANK";
    case LIGHTNING_ERROR_SHAPE_MISMATCH:
      return "LIGHTNING_ERROR_SHAPE_MISMATCH";
    case LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM:
      return "LIGHTNING_ERROR_UNSUPPORTED_HEAD_DIM";
    case LIGHTNING_ERROR_UNSUPPORTED_DTYPE:
      return "LIGHTNING_ERROR_UNSUPPORTED_DTYPE";
    case LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS:
      return "LIGHTNING_ERROR_NONCONTIGUOUS_LAST_AXIS";
    case LIGHTNING_ERROR_INVALID_SLOPE:
      return "LIGHTNING_ERROR_INVALID_SLOPE";
    case LIGHTNING_ERROR_MISALIGNED:
      return "LIGHTNING_ERROR_MISALIGNED";
    case LIGHTNING_ERROR_INVALID_VALUE:
      return "LIGHTNING_ERROR_INVALID_VALUE";
    case LIGHTNING_ERROR_WORKSPACE:
      return "LIGHTNING_ERROR_WORKSPACE";
    case LIGHTNING_ERROR_CUDA:
      return "LIGHTNING_ERROR_CUDA";
    case LIGHTNING_ERROR_OUT_OF_MEMORY:
      return "LIGHTNING_ERROR_OUT_OF_MEMORY";
    case LIGHTNING_ERROR_NOT_BUILT:
      return "LIGHTNING_ERROR_NOT_BUILT";
    case LIGHTNING_ERROR_INTERNAL:
      return "LIGHTNING_ERROR_INTERNAL";
  }
  return "LIGHTNING_STATUS_UNKNOWN";
}

const char* lightning_last_error_message(void) {
  return g_last_error.c_str();
}

const char* lightning_version(void) {
  return lightning::version();
}

lightning_status_t lightning_fwd_params_init(lightning_fwd_params_t* params) {
  return guarded([&] {
    require(params, "params");
    *params = lightning_fwd_params_t{};
    auto& p = *params;
    set_rank4(&p.q, &p.k, &p.v, &p.o, &p.initial_state, &p.final_state);
    params->scale = 1.0f;
  });
}

lightning_status_t lightning_bwd_params_init(lightning_bwd_params_t* params) {
  return guarded([&] {
    require(params, "params");
    *params = lightning_bwd_params_t{};
    auto& p = *params;
    set_rank4(&p.q, &p.k, &p.v, &p.dout, &p.initial_state, &p.dfinal_state, &p.dq, &p.dk, &p.dv,
              &p.dinitial_state);
    params->scale = 1.0f;
  });
}

lightning_status_t lightning_forward_validate(const lightning_fwd_params_t* params,
                                              const float* s_host) {
  return guarded([&] {
    require(params, "params");
    lightning::validate(*params, s_host);
  });
}

lightning_status_t lightning_backward_validate(const lightning_bwd_params_t* params,
                                               const float* s_host) {
  return guarded([&] {
    require(params, "params");
    lightning::validate(*params, s_host);
  });
}

lightning_status_t lightning_forward_workspace_size(const lightning_fwd_params_t* params,
                                                    size_t* bytes) {
  return guarded([&] {
    require(params, "params");
    require(bytes, "bytes");
    *bytes = lightning::forward_workspace_size(*params);
  });
}

lightning_status_t lightning_backward_workspace_size(const lightning_bwd_params_t* params,
                                                     size_t* bytes) {
  return guarded([&] {
    require(params, "params");
    require(bytes, "bytes");
    *bytes = lightning::backward_workspace_size(*params);
  });
}

lightning_status_t lightning_forward(const lightning_fwd_params_t* params,
                                     lightning_stream_t stream) {
  return guarded([&] {
    require(params, "params");
    lightning::forward(*params, stream);
  });
}

lightning_status_t lightning_backward(const lightning_bwd_params_t* params,
                                      lightning_stream_t stream) {
  return guarded([&] {
    require(params, "params");
    lightning::backward(*params, stream);
  });
}

}  // extern "C"
