// runtime.device / runtime.precision: names, validation and the errors for a
// CUDA device this build or this machine does not have.
#include "model/compute.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace cleave {
namespace {

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Compute, PrecisionNames) {
  EXPECT_EQ(parse_precision("float32"), Precision::float32);
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  EXPECT_EQ(parse_precision("bfloat16"), Precision::bf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::fp16);
  EXPECT_EQ(compute_dtype(Precision::bf16), at::kBFloat16);
  EXPECT_EQ(compute_dtype(Precision::fp16), at::kHalf);
  EXPECT_EQ(compute_dtype(Precision::float32), at::kFloat);
  EXPECT_STREQ(to_string(parse_precision(to_string(Precision::fp16))), "fp16");
  EXPECT_NE(error_of([] { parse_precision("fp8"); }).find("float32, bf16, fp16"), std::string::npos);
}

TEST(Compute, DeviceNamesAreCheckedWithoutTouchingADevice) {
  for (const char* good : {"cpu", "cuda", "cuda:0", "cuda:12"}) {
    ComputeOptions options;
    options.device = good;
    options.precision = Precision::bf16;
    EXPECT_NO_THROW(options.validate()) << good;
  }
  for (const char* bad : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda0", ""}) {
    ComputeOptions options;
    options.device = bad;
    const std::string message = error_of([&] { options.validate(); });
    EXPECT_NE(message.find("runtime.device"), std::string::npos) << bad << ": " << message;
    EXPECT_NE(message.find("cpu, cuda or cuda:N"), std::string::npos) << bad << ": " << message;
  }
}

TEST(Compute, Fp16IsRefusedOnTheCpu) {
  ComputeOptions options;
  options.precision = Precision::fp16;
  EXPECT_NE(error_of([&] { options.validate(); }).find("fp16 needs a CUDA device"), std::string::npos);
  options.device = "cuda:1";
  EXPECT_NO_THROW(options.validate());
}

TEST(Compute, CpuResolves) {
  EXPECT_EQ(resolve_device("cpu"), c10::Device(c10::DeviceType::CPU));
  EXPECT_THROW(resolve_device("tpu"), std::invalid_argument);
}

TEST(Compute, CudaOnThisBuildFailsClearly) {
  if (!torch_has_cuda()) {
    // Debian's CPU LibTorch: the message says how to get a CUDA build.
    const std::string message = error_of([] { resolve_device("cuda"); });
    EXPECT_NE(message.find("built against a LibTorch without CUDA"), std::string::npos) << message;
    EXPECT_NE(message.find("-DCMAKE_PREFIX_PATH=<CUDA LibTorch>"), std::string::npos) << message;
    EXPECT_FALSE(at::hasCUDA());
    return;
  }
  // A CUDA LibTorch: a device index past the machine's devices is refused.
  const std::string message = error_of([] { resolve_device("cuda:999"); });
  EXPECT_NE(message.find("no CUDA device 999"), std::string::npos) << message;
  if (at::hasCUDA()) {
    EXPECT_EQ(resolve_device("cuda").type(), c10::DeviceType::CUDA);
  } else {
    EXPECT_NE(error_of([] { resolve_device("cuda"); }).find("no CUDA device 0"), std::string::npos);
  }
}

}  // namespace
}  // namespace cleave
