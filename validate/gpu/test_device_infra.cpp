// The device infrastructure: device queries, the tracking allocator and buffers (with the typed
// out-of-memory path), the seeded fill, the strided host <-> device copies and the host storage
// conversions they rely on.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>

#include <gtest/gtest.h>

#include <lightning/api.h>
#include <lightning/cuda_check.h>
#include <lightning/errors.h>
#include <lightning/reference/device.h>
#include <lightning/reference/tolerance.h>

#include "gpu_test_util.h"

namespace lightning::test_util {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// Queries.

class DeviceQuery : public GpuTest {};

TEST_F(DeviceQuery, ReportsTheDeviceProperties) {
  const gpu::DeviceInfo info = gpu::device_info();
  std::cout << "[ INFO     ] " << info.name << ": " << info.sm_count << " SMs, cc " << info.cc_major
            << "." << info.cc_minor << ", L2 " << info.l2_bytes / kMiB << " MiB, memory "
            << info.total_bytes / kMiB << " MiB (" << info.free_bytes / kMiB << " free), SM clock "
            << info.sm_clock_khz / 1000 << " MHz, memory clock " << info.mem_clock_khz / 1000
            << " MHz x " << info.mem_bus_width_bits
            << " bits = " << info.peak_bandwidth_bytes_per_s / 1e12 << " TB/s, driver "
            << info.driver_version << ", runtime " << info.runtime_version << "\n";
  EXPECT_FALSE(info.name.empty());
  EXPECT_GT(info.sm_count, 0);
  EXPECT_GE(info.cc_major, 7);
  EXPECT_GT(info.l2_bytes, 0u);
  EXPECT_GT(info.total_bytes, 0u);
  EXPECT_GT(info.free_bytes, 0u);
  EXPECT_LE(info.free_bytes, info.total_bytes);
  EXPECT_GT(info.sm_clock_khz, 0);
  EXPECT_GT(info.mem_clock_khz, 0);
  EXPECT_GT(info.mem_bus_width_bits, 0);
  EXPECT_GT(info.peak_bandwidth_bytes_per_s, 1e11);
  EXPECT_GT(info.driver_version, 0);
  EXPECT_GT(info.runtime_version, 0);
  EXPECT_EQ(gpu::device_info(info.index).name, info.name);
  EXPECT_GT(gpu::device_count(), info.index);
  EXPECT_TRUE(gpu::has_device());
}

TEST_F(DeviceQuery, MeasuresTheCurrentSmClock) {
  const int max_mhz = gpu::device_info().sm_clock_khz / 1000;
  const int mhz = gpu::current_sm_clock_mhz();
  std::cout << "[ INFO     ] SM clock now " << mhz << " MHz (max " << max_mhz << " MHz)\n";
  EXPECT_GT(mhz, 100);
  EXPECT_LT(mhz, max_mhz * 11 / 10 + 50);  // the timer's granularity: a few percent at most
}

// ---------------------------------------------------------------------------------------------
// Allocator and buffers.

class TrackedMemory : public GpuTest {};

TEST_F(TrackedMemory, CountsCurrentAndPeakBytes) {
  auto& alloc = gpu::TrackingAllocator::instance();
  const std::size_t base = alloc.current_bytes();
  alloc.reset_peak();
  EXPECT_EQ(alloc.peak_bytes(), base);
  {
    gpu::DeviceBuffer a(3 * kMiB);
    EXPECT_EQ(alloc.current_bytes(), base + 3 * kMiB);
    {
      gpu::DeviceBuffer b(5 * kMiB);
      EXPECT_EQ(alloc.current_bytes(), base + 8 * kMiB);
      EXPECT_EQ(alloc.peak_bytes(), base + 8 * kMiB);
    }
    EXPECT_EQ(alloc.current_bytes(), base + 3 * kMiB);
    EXPECT_EQ(alloc.peak_bytes(), base + 8 * kMiB);
    alloc.reset_peak();
    EXPECT_EQ(alloc.peak_bytes(), base + 3 * kMiB);
    gpu::DeviceBuffer empty(0);
    EXPECT_EQ(empty.data(), nullptr);
    EXPECT_EQ(alloc.current_bytes(), base + 3 * kMiB);
  }
  EXPECT_EQ(alloc.current_bytes(), base);
  EXPECT_EQ(alloc.peak_bytes(), base + 3 * kMiB);
}

TEST_F(TrackedMemory, BuffersMoveOwnership) {
  auto& alloc = gpu::TrackingAllocator::instance();
  const std::size_t base = alloc.current_bytes();
  gpu::DeviceBuffer a(kMiB);
  void* const ptr = a.data();
  gpu::DeviceBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  EXPECT_EQ(a.bytes(), 0u);
  EXPECT_EQ(b.data(), ptr);
  EXPECT_EQ(b.bytes(), kMiB);
  gpu::DeviceBuffer c(2 * kMiB);
  c = std::move(b);  // frees c's own 2 MiB
  EXPECT_EQ(c.data(), ptr);
  EXPECT_EQ(alloc.current_bytes(), base + kMiB);
  c.zero();
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  c.reset();
  EXPECT_EQ(alloc.current_bytes(), base);
}

TEST_F(TrackedMemory, IsThreadSafe) {
  auto& alloc = gpu::TrackingAllocator::instance();
  const std::size_t base = alloc.current_bytes();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 50; ++i) {
        gpu::DeviceBuffer buf(static_cast<std::size_t>(4096 * (t + 1) + i));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(alloc.current_bytes(), base);
}

TEST_F(TrackedMemory, ThrowsTypedOutOfMemoryAndTheProcessCarriesOn) {
  auto& alloc = gpu::TrackingAllocator::instance();
  const std::size_t base = alloc.current_bytes();
  const std::size_t petabyte = std::size_t{1} << 50;
  try {
    gpu::DeviceBuffer huge(petabyte);
    ADD_FAILURE() << "a 1 PiB allocation succeeded";
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(e.requested_bytes(), petabyte);
    EXPECT_EQ(e.code(), static_cast<int>(cudaErrorMemoryAllocation));
    EXPECT_NE(std::string(e.what()).find(std::to_string(petabyte)), std::string::npos) << e.what();
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(alloc.current_bytes(), base);
  gpu::DeviceBuffer fine(64 * kMiB);
  gpu::fill_value(fine.data(), LIGHTNING_FP32, static_cast<std::int64_t>(16 * kMiB), 3.0f);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  float x = 0;
  LIGHTNING_CUDA_CHECK(cudaMemcpy(&x, fine.as<float>() + 12345, 4, cudaMemcpyDeviceToHost));
  EXPECT_EQ(x, 3.0f);
}

// ---------------------------------------------------------------------------------------------
// Fills.

class DeviceFill : public GpuTest {};

std::vector<double> read_contiguous(const gpu::DeviceBuffer& buf,
                                    lightning_dtype_t dtype,
                                    std::int64_t count) {
  const Tensor t =
      make_tensor(buf.data(), static_cast<DType>(dtype), Layout::kBHND, 1, 1, 1, count);
  return gpu::to_host_double(t);
}

TEST_F(DeviceFill, UniformDependsOnlyOnSeedAndIndex) {
  for (lightning_dtype_t dt : {LIGHTNING_BF16, LIGHTNING_FP16, LIGHTNING_FP32}) {
    const std::int64_t count = 100000, prefix = 3000;
    gpu::DeviceBuffer a(count * 4), b(count * 4), c(prefix * 4), d(count * 4);
    gpu::fill_uniform(a.data(), dt, count, 42, -1.0f, 1.0f);
    gpu::fill_uniform(b.data(), dt, count, 42, -1.0f, 1.0f);
    gpu::fill_uniform(c.data(), dt, prefix, 42, -1.0f, 1.0f);  // another grid size
    gpu::fill_uniform(d.data(), dt, count, 43, -1.0f, 1.0f);
    const auto va = read_contiguous(a, dt, count), vb = read_contiguous(b, dt, count);
    const auto vc = read_contiguous(c, dt, prefix), vd = read_contiguous(d, dt, count);
    EXPECT_EQ(va, vb) << dtype_name(dt);
    EXPECT_TRUE(std::equal(vc.begin(), vc.end(), va.begin())) << dtype_name(dt);
    std::int64_t same = 0;
    for (std::int64_t i = 0; i < count; ++i) same += va[i] == vd[i];
    EXPECT_LT(same, count / 50) << dtype_name(dt) << ": seeds 42 and 43 agree too often";
  }
}

TEST_F(DeviceFill, UniformCoversTheRangeEvenly) {
  const std::int64_t count = 1 << 20;
  gpu::DeviceBuffer buf(count * 4);
  gpu::fill_uniform(buf.data(), LIGHTNING_FP32, count, 7, -2.0f, 6.0f);
  const auto v = read_contiguous(buf, LIGHTNING_FP32, count);
  double sum = 0, lo = 1e30, hi = -1e30;
  std::vector<std::int64_t> bins(8, 0);
  for (double x : v) {
    sum += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    bins[static_cast<std::size_t>(std::min(7.0, std::floor(x + 2.0)))]++;
  }
  EXPECT_GE(lo, -2.0);
  EXPECT_LT(hi, 6.0);
  EXPECT_NEAR(sum / count, 2.0, 0.02);
  for (std::int64_t n : bins) EXPECT_NEAR(static_cast<double>(n) / count, 0.125, 0.005);
}

TEST_F(DeviceFill, ValueWritesConstantsAndNan) {
  for (lightning_dtype_t dt : {LIGHTNING_BF16, LIGHTNING_FP16, LIGHTNING_FP32}) {
    gpu::DeviceBuffer buf(1000 * 4);
    gpu::fill_value(buf.data(), dt, 1000, std::numeric_limits<float>::quiet_NaN());
    for (double x : read_contiguous(buf, dt, 1000)) ASSERT_TRUE(std::isnan(x)) << dtype_name(dt);
    gpu::fill_value(buf.data(), dt, 1000, 0.1f);
    for (double x : read_contiguous(buf, dt, 1000)) ASSERT_EQ(x, ref::round_to(dt, 0.1f));
  }
}

// ---------------------------------------------------------------------------------------------
// Strided copies.

class StridedCopy : public GpuTest {};

std::vector<double> host_values(std::size_t count, std::uint64_t seed) {
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    // Spread over magnitudes, signs, fp16 subnormals and values past fp16's range.
    const double u = std::sin(static_cast<double>(i * 7919 + seed));
    out[i] = u * std::pow(2.0, static_cast<double>(static_cast<int>(i % 48) - 30));
  }
  return out;
}

TEST_F(StridedCopy, RoundTripsEveryDtypeAndLayoutWithTheReferenceRounding) {
  const std::int64_t b = 2, h = 3, n = 5, d = 8;
  for (lightning_dtype_t dt : {LIGHTNING_BF16, LIGHTNING_FP16, LIGHTNING_FP32}) {
    for (Layout layout : {Layout::kBHND, Layout::kBNHD}) {
      gpu::DeviceBuffer buf(static_cast<std::size_t>(b * h * n * d) * 4);
      const Tensor t = make_tensor(buf.data(), static_cast<DType>(dt), layout, b, h, n, d);
      const std::vector<double> values = host_values(static_cast<std::size_t>(numel(t)), 1);
      gpu::from_host_double(t, values);
      const std::vector<double> back = gpu::to_host_double(t);
      ASSERT_EQ(back.size(), values.size());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const double want = ref::round_to(dt, values[i]);
        ASSERT_TRUE(back[i] == want || (std::isnan(back[i]) && std::isnan(want)))
            << dtype_name(dt) << " " << layout_name(layout) << " element " << i << ": " << values[i]
            << " came back as " << back[i] << ", want " << want;
      }
    }
  }
}

TEST_F(StridedCopy, PlacesBnhdElementsByTheirStrides) {
  const std::int64_t b = 2, h = 3, n = 4, d = 8;
  gpu::DeviceBuffer buf(static_cast<std::size_t>(b * h * n * d) * 4);
  const Tensor bnhd = make_tensor(buf.data(), DType::kFP32, Layout::kBNHD, b, h, n, d);
  std::vector<double> logical(static_cast<std::size_t>(numel(bnhd)));
  for (std::size_t i = 0; i < logical.size(); ++i) logical[i] = static_cast<double>(i);
  gpu::from_host_double(bnhd, logical);
  // The same memory read as a plain contiguous [B, N, H, D] array.
  const Tensor raw = make_tensor(buf.data(), DType::kFP32, Layout::kBHND, b, n, h, d);
  const std::vector<double> memory = gpu::to_host_double(raw);
  for (std::int64_t ib = 0; ib < b; ++ib) {
    for (std::int64_t ih = 0; ih < h; ++ih) {
      for (std::int64_t in = 0; in < n; ++in) {
        for (std::int64_t id = 0; id < d; ++id) {
          const double want = static_cast<double>(((ib * h + ih) * n + in) * d + id);
          ASSERT_EQ(memory[static_cast<std::size_t>(((ib * n + in) * h + ih) * d + id)], want)
              << "[" << ib << "," << ih << "," << in << "," << id << "]";
        }
      }
    }
  }
}

TEST_F(StridedCopy, LeavesTheGapsBetweenRowsUntouched) {
  // Rows of 8 bf16 values padded to 16: a view of every other half-row.
  const std::int64_t b = 1, h = 2, n = 3, d = 8, row = 16;
  gpu::DeviceBuffer buf(static_cast<std::size_t>(b * h * n * row) * 2);
  gpu::fill_value(buf.data(), LIGHTNING_BF16, b * h * n * row, 7.0f);
  Tensor t = make_tensor(buf.data(), DType::kBF16, Layout::kBHND, b, h, n, d);
  t.stride[2] = row;
  t.stride[1] = n * row;
  t.stride[0] = h * n * row;
  const std::vector<double> values(static_cast<std::size_t>(numel(t)), -1.5);
  gpu::from_host_double(t, values);
  EXPECT_EQ(gpu::to_host_double(t), values);
  const Tensor all = make_tensor(buf.data(), DType::kBF16, Layout::kBHND, 1, 1, 1, b * h * n * row);
  const std::vector<double> memory = gpu::to_host_double(all);
  for (std::size_t i = 0; i < memory.size(); ++i) {
    EXPECT_EQ(memory[i], (i % row) < static_cast<std::size_t>(d) ? -1.5 : 7.0) << "element " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Host storage conversions (no device needed).

TEST(HostConversion, RoundsToNearestEvenLikeTheReference) {
  const float cases[] = {0.0f,
                         -0.0f,
                         1.0f,
                         -1.0f,
                         0.1f,
                         65504.0f,
                         65519.0f,
                         65520.0f,
                         1e6f,
                         -1e6f,
                         0x1.0p-14f,
                         0x1.0p-24f,
                         0x1.0p-25f,
                         0x1.8p-25f,
                         0x1.4p-24f,
                         0x1.ffep-15f,
                         3.14159f,
                         1.0f + 0x1.0p-8f,
                         1.0f + 0x1.8p-8f,
                         std::numeric_limits<float>::infinity(),
                         1e-40f};
  for (float x : cases) {
    EXPECT_EQ(gpu::fp16_bits_to_float(gpu::float_to_fp16_bits(x)),
              static_cast<float>(ref::round_to(LIGHTNING_FP16, x)))
        << x;
    EXPECT_EQ(gpu::bf16_bits_to_float(gpu::float_to_bf16_bits(x)),
              static_cast<float>(ref::round_to(LIGHTNING_BF16, x)))
        << x;
  }
  EXPECT_EQ(gpu::float_to_fp16_bits(65504.0f), 0x7bffu);
  EXPECT_EQ(gpu::float_to_fp16_bits(65520.0f), 0x7c00u);
  EXPECT_EQ(gpu::float_to_fp16_bits(0x1.0p-24f), 0x0001u);
  EXPECT_EQ(gpu::float_to_fp16_bits(0x1.0p-25f), 0x0000u);  // a tie, to even
  EXPECT_EQ(gpu::float_to_fp16_bits(-2.0f), 0xc000u);
  EXPECT_EQ(gpu::float_to_bf16_bits(1.0f + 0x1.0p-8f), 0x3f80u);  // a tie, to even
  EXPECT_EQ(gpu::float_to_bf16_bits(1.0f + 0x1.8p-8f), 0x3f81u);
  EXPECT_TRUE(std::isnan(
      gpu::fp16_bits_to_float(gpu::float_to_fp16_bits(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(
      gpu::bf16_bits_to_float(gpu::float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(HostConversion, RoundTripsEveryFp16AndBf16BitPattern) {
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    const float h = gpu::fp16_bits_to_float(bits);
    const float b = gpu::bf16_bits_to_float(bits);
    if (!std::isnan(h)) {
      ASSERT_EQ(gpu::float_to_fp16_bits(h), bits) << std::hex << i;
    }
    if (!std::isnan(b)) {
      ASSERT_EQ(gpu::float_to_bf16_bits(b), bits) << std::hex << i;
    }
  }
}

TEST(HostConversion, AgreesWithTheToleranceRoundingOnAMillionValues) {
  std::uint64_t state = 12345;
  for (int i = 0; i < 1000000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;  // an LCG over float bits
    const auto u = static_cast<std::uint32_t>(state >> 32);
    float x;
    std::memcpy(&x, &u, 4);
    if (std::isnan(x)) continue;
    ASSERT_EQ(gpu::fp16_bits_to_float(gpu::float_to_fp16_bits(x)),
              static_cast<float>(ref::round_to(LIGHTNING_FP16, x)))
        << x;
    ASSERT_EQ(gpu::bf16_bits_to_float(gpu::float_to_bf16_bits(x)),
              static_cast<float>(ref::round_to(LIGHTNING_BF16, x)))
        << x;
  }
}

}  // namespace
}  // namespace lightning::test_util
