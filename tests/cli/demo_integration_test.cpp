// End to end through the binary: `cleave demo` trains and the held-out
// perplexity drops; its adapter, evaluated and used by `cleave eval` and
// `cleave generate`, beats the base; `cleave train` on the demo's files
// writes checkpoints, metrics and a resolved config that reads back.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "cli/config.h"
#include "tests/cli/cli_runner.h"
#include "util/json.h"

namespace cleave {
namespace {

namespace fs = std::filesystem;
using test::run_cleave;

double number_after(const std::string& text, const std::string& label) {
  const std::regex pattern(label + " ([0-9.]+)");
  std::smatch match;
  if (!std::regex_search(text, match, pattern)) {
    ADD_FAILURE() << "no '" << label << "' in:\n" << text;
    return 0;
  }
  return std::stod(match[1]);
}

// ctest runs every TEST in its own process, so the demo (the expensive part)
// runs once here and each check is a function of its run directory.
void check_demo_output(const std::string& dir, const test::CliResult& demo);
void check_metrics(const std::string& dir);
void check_eval_and_generate(const std::string& dir);
void check_train_command(const std::string& dir);

TEST(DemoIntegration, DemoTrainsAndEveryCommandUsesItsOutput) {
  const std::string dir = test::scratch_dir("cli_demo_integration");
  const auto demo = run_cleave({"demo", "--out", dir, "--steps", "30", "--threads", "1"});
  ASSERT_EQ(demo.status, 0) << demo.output;
  {
    SCOPED_TRACE("demo output");
    check_demo_output(dir, demo);
  }
  {
    SCOPED_TRACE("metrics.jsonl");
    check_metrics(dir);
  }
  {
    SCOPED_TRACE("eval and generate with the adapter");
    check_eval_and_generate(dir);
  }
  {
    SCOPED_TRACE("cleave train on the demo files");
    check_train_command(dir);
  }
}

void check_demo_output(const std::string& dir, const test::CliResult& demo) {
  const double before = number_after(demo.output, "perplexity before:");
  const double after = number_after(demo.output, "perplexity after:");
  std::printf("demo (30 steps): held-out perplexity %.2f -> %.2f\n", before, after);
  EXPECT_GT(before, 100.0) << "a random model should be near-uniform over its vocabulary";
  EXPECT_LT(after, before * 0.5);
  EXPECT_CONTAINS(demo.output, "threads: 1");
  EXPECT_CONTAINS(demo.output, "sample (adapted): The patient is a");
  for (const char* file : {"train.jsonl", "eval.jsonl", "model.gguf", "adapter.gguf",
                           "metrics.jsonl", "config.resolved.yaml"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + file)) << file;
  }
}

void check_metrics(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  std::vector<std::string> events;
  while (std::getline(in, line)) {
    const json::Value event = json::parse(line);
    events.push_back(event.at("event").as_string());
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.front(), "eval");
  EXPECT_EQ(events.back(), "summary");
  EXPECT_NE(std::find(events.begin(), events.end(), "train"), events.end());
}

void check_eval_and_generate(const std::string& dir) {
  const std::string model = dir + "/model.gguf";
  const std::string eval = dir + "/eval.jsonl";
  const auto base = run_cleave({"eval", "--model", model, "--data", eval, "--quant", "int8",
                                "--threads", "1", "--batch-size", "16"});
  const auto adapted = run_cleave({"eval", "--model", model, "--data", eval, "--quant", "int8",
                                   "--adapter", dir + "/adapter.gguf", "--threads", "1",
                                   "--batch-size", "16"});
  ASSERT_EQ(base.status, 0) << base.output;
  ASSERT_EQ(adapted.status, 0) << adapted.output;
  const double base_ppl = number_after(base.last_line(), "perplexity:");
  const double adapted_ppl = number_after(adapted.last_line(), "perplexity:");
  EXPECT_LT(adapted_ppl, base_ppl * 0.5) << base.output << adapted.output;

  const auto text = run_cleave({"generate", "--model", model, "--adapter", dir + "/adapter.gguf",
                                "--prompt", "The doctor prescribed", "-n", "12", "--seed", "3",
                                "--threads", "1"});
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_CONTAINS(text.last_line(), "The doctor prescribed");
}

void check_train_command(const std::string& dir) {
  const std::string run_dir = dir + "/train-run";
  const std::string config = dir + "/train.yaml";
  test::write_file(config, "model: " + dir + "/model.gguf\n"
                           "base: {quant: q4}\n"
                           "lora: {rank: 4, targets: [q, v, down]}\n"
                           "data: {train: " + dir + "/train.jsonl, eval_fraction: 0.05, "
                           "seq_len: 32, batch_size: 4, eval_batches: 2}\n"
                           "train: {steps: 6, lr: 0.01, checkpoint_every: 2, eval_every: 3, log_every: 2}\n");
  const auto r = run_cleave({"train", "--config", config, "--set", "output.dir=" + run_dir,
                             "--set", "runtime.threads=1"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "eval at step 3: perplexity");
  EXPECT_CONTAINS(r.output, "summary: held-out perplexity");
  EXPECT_TRUE(fs::exists(run_dir + "/checkpoint-2.gguf"));
  EXPECT_TRUE(fs::exists(run_dir + "/checkpoint-4.gguf"));
  EXPECT_FALSE(fs::exists(run_dir + "/checkpoint-6.gguf")) << "the last step is adapter.gguf";
  EXPECT_TRUE(fs::exists(run_dir + "/adapter.gguf"));
  const cli::RunConfig resolved = cli::load_config(run_dir + "/config.resolved.yaml");
  EXPECT_EQ(resolved.output_dir, run_dir);
  EXPECT_EQ(resolved.threads, 1);
  EXPECT_EQ(resolved.quant, BaseQuant::q4);
  EXPECT_EQ(resolved.lora.targets, (std::vector<std::string>{"q", "v", "down"}));
  EXPECT_EQ(resolved.train.checkpoint_every, 2);
}

}  // namespace
}  // namespace cleave
