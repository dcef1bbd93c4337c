// runtime.device / runtime.precision / runtime.matmul in the files of `cleave train`/`client`
// (RunConfig) and `cleave split-server`: parsed, written back, and bad values
// reported with their key.
#include <gtest/gtest.h>

#include <string>

#include "cli/config.h"
#include "cli/config_services.h"

namespace cleave::cli {
namespace {

const std::string kRequired = "model: m.gguf\ndata: {train: t.jsonl}\n";

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "x.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RuntimeConfig, DefaultsToCpuFloat32) {
  const RunConfig c = parse_config(kRequired, "x.yaml");
  EXPECT_EQ(c.compute.device, "cpu");
  EXPECT_EQ(c.compute.precision, Precision::float32);
  EXPECT_EQ(c.compute.matmul, "auto");  // training picks bf16 matmuls where the CPU has them
}

TEST(RuntimeConfig, MatmulIsReadWrittenBackAndChecked) {
  const RunConfig c = parse_config(kRequired + "runtime: {matmul: float32}\n", "x.yaml");
  EXPECT_EQ(c.compute.matmul, "float32");
  EXPECT_EQ(parse_config(to_yaml(c), "resolved").compute.matmul, "float32");
  const RunConfig overridden = parse_config(kRequired, "x.yaml", {parse_override("runtime.matmul=bf16")});
  EXPECT_EQ(overridden.compute.matmul, "bf16");
  const std::string error = error_of(kRequired + "runtime: {matmul: fast}\n");
  EXPECT_NE(error.find("x.yaml"), std::string::npos) << error;
  EXPECT_NE(error.find("runtime.matmul"), std::string::npos) << error;
  EXPECT_NE(error.find("auto, float32, bf16"), std::string::npos) << error;
  const std::string insecure = "model: m.gguf\nsecure: {insecure: true}\n";
  EXPECT_EQ(parse_split_server_config(insecure + "runtime: {matmul: bf16}\n", "s.yaml").compute.matmul,
            "bf16");
  EXPECT_THROW(parse_split_server_config(insecure + "runtime: {matmul: int4}\n", "s.yaml"), ConfigError);
}

TEST(RuntimeConfig, DeviceAndPrecisionAreReadAndWrittenBack) {
  const RunConfig c =
      parse_config(kRequired + "runtime: {threads: 2, device: 'cuda:1', precision: bf16}\n", "x.yaml");
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.compute.device, "cuda:1");
  EXPECT_EQ(c.compute.precision, Precision::bf16);
  const RunConfig again = parse_config(to_yaml(c), "resolved");
  EXPECT_EQ(again.compute.device, "cuda:1");
  EXPECT_EQ(again.compute.precision, Precision::bf16);
  // --set works on the new keys like on any other
  const RunConfig overridden = parse_config(
      kRequired, "x.yaml", {parse_override("runtime.precision=fp16"), parse_override("runtime.device=cuda")});
  EXPECT_EQ(overridden.compute.precision, Precision::fp16);
}

TEST(RuntimeConfig, BadValuesNameTheirKey) {
  EXPECT_NE(error_of(kRequired + "runtime: {device: gpu}\n").find("runtime.device"), std::string::npos);
  EXPECT_NE(error_of(kRequired + "runtime: {precision: fp8}\n").find("runtime.precision"), std::string::npos);
  EXPECT_NE(error_of(kRequired + "runtime: {precision: fp16}\n").find("fp16 needs a CUDA device"),
            std::string::npos);
}

TEST(RuntimeConfig, SplitServerHasTheSameKeys) {
  const std::string insecure = "model: m.gguf\nsecure: {insecure: true}\n";
  const SplitServerFile c =
      parse_split_server_config(insecure + "runtime: {device: cuda, precision: bf16}\n", "s.yaml");
  EXPECT_EQ(c.compute.device, "cuda");
  EXPECT_EQ(c.compute.precision, Precision::bf16);
  EXPECT_EQ(to_yaml(parse_split_server_config(to_yaml(c), "resolved")), to_yaml(c));
  EXPECT_THROW(parse_split_server_config(insecure + "runtime: {device: 'cuda:'}\n", "s.yaml"), ConfigError);
}

}  // namespace
}  // namespace cleave::cli
