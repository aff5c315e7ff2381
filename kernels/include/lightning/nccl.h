// lightning: NCCL as the engine of context parallelism's exchange (lightning/context_parallel.h).
// Header-only, so that liblightning itself needs no NCCL: include it where nccl.h is found and
// link NCCL there (the CMake target lightning::nccl does both when NCCL is found).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include <lightning/context_parallel.h>

#include <nccl.h>

namespace lightning::cp {

// A failing NCCL call: "ncclAllGather: <ncclGetErrorString> (<last error>)".
class NcclError : public std::runtime_error {
 public:
  NcclError(ncclResult_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ncclResult_t code() const noexcept { return code_; }

 private:
  ncclResult_t code_;
};

// The all-gather over a communicator the caller created (ncclCommInitRank and friends), one rank
// per GPU; it keeps no state of its own and does not own the communicator.
class NcclExchange final : public StateExchange {
 public:
  explicit NcclExchange(ncclComm_t comm) : comm_(comm) {}

  void all_gather(const float* send, float* recv, std::size_t count, Stream stream) override {
    const ncclResult_t r = ncclAllGather(send, recv, count, ncclFloat32, comm_,
                                         reinterpret_cast<cudaStream_t>(stream));
    if (r != ncclSuccess) {
      throw NcclError(r, std::string("ncclAllGather: ") + ncclGetErrorString(r) + " (" +
                             ncclGetLastError(comm_) + ")");
    }
  }

 private:
  ncclComm_t comm_;
};

}  // namespace lightning::cp
