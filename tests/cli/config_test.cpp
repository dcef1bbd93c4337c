// The YAML run configuration: defaults, every section, unknown keys with
// their path and a suggestion, wrong types with their line, --set overrides,
// validation, and the resolved config reading back to the same values.
#include "cli/config.h"
#include "cli/config_fields.h"

#include <gtest/gtest.h>

#include "tests/cli/cli_runner.h"

namespace cleave::cli {
namespace {

const std::string kRequired = "model: m.gguf\ndata:\n  train: t.jsonl\n";

std::string error_of(const std::string& yaml, const std::vector<Override>& overrides = {}) {
  try {
    parse_config(yaml, "configs/x.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
  return "";
}

TEST(Config, MissingKeysKeepTheirDefaults) {
  const RunConfig c = parse_config(kRequired, "x.yaml");
  const RunConfig defaults;
  EXPECT_EQ(c.model, "m.gguf");
  EXPECT_EQ(c.data.train, "t.jsonl");
  EXPECT_EQ(c.quant, BaseQuant::native);
  EXPECT_EQ(c.lora.rank, defaults.lora.rank);
  EXPECT_EQ(c.lora.targets, defaults.lora.targets);
  EXPECT_EQ(c.data.seq_len, 256);
  EXPECT_EQ(c.data.mode, data::BatchMode::packing);
  EXPECT_EQ(c.train.steps, defaults.train.steps);
  EXPECT_DOUBLE_EQ(c.train.lr, defaults.train.lr);
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.output_dir, "runs/train");
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.source, "x.yaml");
}

TEST(Config, EverySectionIsRead) {
  const RunConfig c = parse_config(R"(
model: models/base.gguf
base:
  quant: q4
lora:
  rank: 4
  alpha: 8.5
  dropout: 0.1
  targets: [q, v]
  layers: [0, 2]
data:
  train: a.jsonl
  eval: b.jsonl
  seq_len: 128
  batch_size: 2
  mode: padding
  eval_batches: 3
train:
  steps: 50
  lr: 1.0e-3
  min_lr_ratio: 0.2
  warmup_steps: 5
  weight_decay: 0.01
  grad_clip: 0.5
  eval_every: 10
  checkpoint_every: 25
  log_every: 5
  recompute: true
  micro_batch: 2
  seed: 17
output:
  dir: runs/x
runtime:
  threads: 3
)", "full.yaml");
  EXPECT_EQ(c.model, "models/base.gguf");
  EXPECT_EQ(c.quant, BaseQuant::q4);
  EXPECT_EQ(c.lora.rank, 4);
  EXPECT_DOUBLE_EQ(c.lora.alpha, 8.5);
  EXPECT_DOUBLE_EQ(c.lora.dropout, 0.1);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q", "v"}));
  EXPECT_EQ(c.lora.layers, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(c.data.train, "a.jsonl");
  EXPECT_EQ(c.data.eval, "b.jsonl");
  EXPECT_EQ(c.data.seq_len, 128);
  EXPECT_EQ(c.data.batch_size, 2);
  EXPECT_EQ(c.data.mode, data::BatchMode::padding);
  EXPECT_EQ(c.data.eval_batches, 3);
  EXPECT_EQ(c.train.steps, 50);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.train.min_lr_ratio, 0.2);
  EXPECT_EQ(c.train.warmup_steps, 5);
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(c.train.grad_clip, 0.5);
  EXPECT_EQ(c.train.eval_every, 10);
  EXPECT_EQ(c.train.checkpoint_every, 25);
  EXPECT_EQ(c.train.log_every, 5);
  EXPECT_TRUE(c.train.recompute);
  EXPECT_EQ(c.train.micro_batch, 2);
  EXPECT_EQ(c.seed, 17u);
  EXPECT_EQ(c.output_dir, "runs/x");
  EXPECT_EQ(c.threads, 3);
}

TEST(Config, UnknownKeyNamesFilePathAndSuggestion) {
  const std::string e = error_of(kRequired + "train:\n  learnig_rate: 0.1\n");
  EXPECT_CONTAINS(e, "configs/x.yaml");
  EXPECT_CONTAINS(e, "unknown key 'train.learnig_rate' (did you mean 'train.lr'?)");
  EXPECT_CONTAINS(error_of(kRequired + "lora:\n  rnak: 4\n"), "did you mean 'lora.rank'?");
  EXPECT_CONTAINS(error_of("model: m\ndata:\n  train: t.jsonl\n  seqlen: 4\n"),
                  "unknown key 'data.seqlen' (did you mean 'data.seq_len'?)");
  // Nothing close: the valid keys are listed instead.
  const std::string far = error_of(kRequired + "runtime:\n  gpu: true\n");
  EXPECT_CONTAINS(far, "unknown key 'runtime.gpu'");
  EXPECT_CONTAINS(far, "threads");
}

TEST(Config, UnknownTopLevelSectionIsAnError) {
  const std::string e = error_of(kRequired + "federation:\n  rounds: 3\n");
  EXPECT_CONTAINS(e, "configs/x.yaml:4");
  EXPECT_CONTAINS(e, "unknown key 'federation'");
  EXPECT_CONTAINS(error_of(kRequired + "lorra:\n  rank: 3\n"), "did you mean 'lora'?");
}

TEST(Config, WrongTypeNamesPathLineAndExpectedType) {
  const std::string e = error_of(kRequired + "train:\n  steps: many\n");
  EXPECT_CONTAINS(e, "configs/x.yaml:5: train.steps: expected an integer, got 'many'");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  lr: fast\n"), "train.lr: expected a number");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  steps: 2.5\n"), "expected an integer, got '2.5'");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  lr: \"0.1\"\n"),
                  "expected a number, got the quoted string \"0.1\"");
  EXPECT_CONTAINS(error_of(kRequired + "lora:\n  targets: q\n"),
                  "lora.targets: expected a list of strings, got 'q'");
  EXPECT_CONTAINS(error_of(kRequired + "lora:\n  layers: [0, x]\n"),
                  "configs/x.yaml:5: lora.layers[1]: expected a list of integers, got 'x'");
  EXPECT_CONTAINS(error_of(kRequired + "base:\n  quant: q5\n"),
                  "base.quant: expected one of native, none, int8, q4, got 'q5'");
  EXPECT_CONTAINS(error_of(kRequired + "lora: 8\n"), "lora: expected a mapping of keys, got '8'");
  EXPECT_CONTAINS(error_of("model: m\ndata:\n  train: t.jsonl\n  mode: [packing]\n"),
                  "data.mode: expected one of packing, padding, got a list");
}

TEST(Config, ChatTemplateIsNoneUnlessAskedFor) {
  EXPECT_EQ(parse_config(kRequired, "x.yaml").data.chat_template, "none");
  for (const std::string setting : {"auto", "llama3", "chatml", "llama2"}) {
    EXPECT_EQ(parse_config(kRequired, "x.yaml", {parse_override("data.chat_template=" + setting)})
                  .data.chat_template,
              setting);
  }
  EXPECT_CONTAINS(error_of(kRequired, {parse_override("data.chat_template=vicuna")}),
                  "data.chat_template");
}

TEST(Config, RepeatedKeyIsAnError) {
  EXPECT_CONTAINS(error_of(kRequired + "data:\n  train: u.jsonl\n"),
                  "configs/x.yaml:4: key 'data' appears twice");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  lr: 1\n  lr: 2\n"), "key 'train.lr' appears twice");
}

TEST(Config, SetOverridesScalarsNestedKeysAndLists) {
  const RunConfig c = parse_config(kRequired + "train:\n  lr: 0.1\n", "x.yaml",
                                   {parse_override("train.lr=1e-4"),
                                    parse_override("lora.targets=[q, v, down]"),
                                    parse_override("lora.layers=[1]"),
                                    parse_override("runtime.threads=2"),
                                    parse_override("data.mode=padding"),
                                    parse_override("model=other.gguf"),
                                    parse_override("output={dir: runs/y}")});
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-4);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q", "v", "down"}));
  EXPECT_EQ(c.lora.layers, (std::vector<int64_t>{1}));
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.data.mode, data::BatchMode::padding);
  EXPECT_EQ(c.model, "other.gguf");
  EXPECT_EQ(c.output_dir, "runs/y");
  EXPECT_EQ(c.data.train, "t.jsonl") << "untouched keys stay";
  // Later overrides win.
  EXPECT_EQ(parse_config(kRequired, "x.yaml",
                         {parse_override("train.steps=3"), parse_override("train.steps=4")})
                .train.steps,
            4);
}

TEST(Config, BadOverridesNameTheSet) {
  EXPECT_CONTAINS(error_of(kRequired, {parse_override("train.stepz=3")}),
                  "--set train.stepz=3: unknown key 'train.stepz' (did you mean 'train.steps'?)");
  EXPECT_CONTAINS(error_of(kRequired, {parse_override("train.steps=abc")}),
                  "--set train.steps=abc: train.steps: expected an integer, got 'abc'");
  EXPECT_CONTAINS(error_of(kRequired, {parse_override("train.steps=[1")}), "not valid YAML");
  EXPECT_THROW(parse_override("train.steps"), ConfigError);
  EXPECT_THROW(parse_override("=3"), ConfigError);
  EXPECT_CONTAINS(error_of(kRequired, {parse_override("train..steps=3")}), "empty key");
}

TEST(Config, InvalidValuesAreConfigErrors) {
  EXPECT_CONTAINS(error_of("data:\n  train: t.jsonl\n"), "model: required");
  EXPECT_CONTAINS(error_of("model: m.gguf\n"), "data.train: required");
  EXPECT_CONTAINS(error_of(kRequired + "lora:\n  rank: 0\n"), "lora.rank must be > 0");
  EXPECT_CONTAINS(error_of(kRequired + "lora:\n  targets: [q, qq]\n"), "unknown LoRA target 'qq'");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  steps: -1\n"), "train.steps must be > 0");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  seed: -1\n"), "train.seed must be >= 0");
  EXPECT_CONTAINS(error_of(kRequired + "runtime:\n  threads: -2\n"), "runtime.threads");
  EXPECT_CONTAINS(error_of(kRequired + "train:\n  micro_batch: -1\n"), "train.micro_batch must be >= 0");
  EXPECT_CONTAINS(error_of("model: m\ndata: {train: t, eval: e, eval_fraction: 0.1}\n"),
                  "not both");
  EXPECT_CONTAINS(error_of("model: [a\n"), "configs/x.yaml:");
  EXPECT_CONTAINS(error_of("- a\n- b\n"), "expected a mapping");
}

TEST(Config, ResolvedYamlReadsBackToTheSameValues) {
  const RunConfig c = parse_config(kRequired + "lora: {rank: 3, alpha: 0.3, targets: [k]}\n"
                                                "train: {lr: 0.0007, seed: 5}\n",
                                   "x.yaml");
  const std::string resolved = to_yaml(c);
  EXPECT_CONTAINS(resolved, "lr: 0.0007");
  const RunConfig again = parse_config(resolved, "config.resolved.yaml");
  EXPECT_EQ(to_yaml(again), resolved);
  EXPECT_DOUBLE_EQ(again.lora.alpha, 0.3);
  EXPECT_EQ(again.lora.targets, (std::vector<std::string>{"k"}));
  EXPECT_EQ(again.seed, 5u);
  EXPECT_EQ(again.data.eval, "");
}

TEST(Config, CheckedInConfigsParse) {
  const std::string root = CLEAVE_SOURCE_DIR;
  // default.yaml leaves the two required paths empty; with them set it is
  // exactly the built-in defaults.
  RunConfig expected;
  expected.model = "m.gguf";
  expected.data.train = "t.jsonl";
  const RunConfig defaults =
      load_config(root + "/configs/default.yaml",
                  {parse_override("model=m.gguf"), parse_override("data.train=t.jsonl")});
  EXPECT_EQ(to_yaml(defaults), to_yaml(expected));
  const RunConfig medquad = load_config(root + "/configs/stories260k_medquad.yaml");
  EXPECT_EQ(medquad.model, "../shared/models/stories260K.gguf");
  EXPECT_GT(medquad.data.eval_fraction, 0.0);
  EXPECT_THROW(load_config(root + "/configs/no-such.yaml"), ConfigError);
}

}  // namespace
}  // namespace cleave::cli
