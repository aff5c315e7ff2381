// lightning: the C++ error types. Host-only, no CUDA headers.
#pragma once

#include <stdexcept>
#include <string>

#include <lightning/lightning.h>

namespace lightning {

// Bad input: thrown by every C++ entry point before any device work is enqueued. Carries the
// status the C ABI returns for it.
class InvalidArgument : public std::invalid_argument {
 public:
  InvalidArgument(lightning_status_t status, const std::string& what)
      : std::invalid_argument(what), status_(status) {}
  lightning_status_t status() const noexcept { return status_; }

 private:
  lightning_status_t status_;
};

// A failing CUDA runtime call or launch: "file:line: cudaErrorName: message [expr]".
class CudaError : public std::runtime_error {
 public:
  CudaError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }  // the cudaError_t value

 private:
  int code_;
};

// A device allocation that could not be satisfied; the process can carry on.
class OutOfMemory : public CudaError {
 public:
  OutOfMemory(int code, const std::string& what, std::size_t bytes)
      : CudaError(code, what), bytes_(bytes) {}
  std::size_t requested_bytes() const noexcept { return bytes_; }

 private:
  std::size_t bytes_;
};

// The library was built without CUDA (no nvcc at configure time).
class NotBuilt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lightning
