// Split inference between processes: `cleave generate --config` with a
// split: section against `cleave split-server` over TLS on tcp://127.0.0.1
// gives, greedily, the text of local `cleave generate` with the same
// adapters (the site's and the server's in one file), in u_shaped and vanilla.
#include <gtest/gtest.h>

#include "lora/adapter_gguf.h"
#include "lora/adapter_set.h"
#include "model/model_loader.h"
#include "tests/cli/service_fixture.h"
#include "tests/split/split_fixture.h"

namespace cleave {
namespace {

using test::ChildProcess;
using test::run_cleave;

const std::string kPrompt = "the patient has";

// The line of the output that holds the generated text (it starts with the prompt).
std::string generated_line(const std::string& output) {
  const size_t at = output.find(kPrompt);
  if (at == std::string::npos) return "";
  return output.substr(at, output.find('\n', at) - at);
}

TEST(SplitGenerateIntegration, GreedyTextEqualsLocalOverTls) {
  const std::string dir = test::scratch_dir("cli_split_generate");
  const std::string model_path = test::write_tiny_model_with_tokenizer(dir);
  test::init_ca(dir);
  test::issue(dir, "split-server", "split-1");
  test::issue(dir, "client", "site-a");

  // Adapters on every block (B random, so they change the text): the server
  // resumes from those of blocks 1 and 2, the site holds block 0's (and in
  // u_shaped block 2's), and local generation applies them all from one file.
  const auto model = load_llama(model_path, BaseQuant::none);
  lora::LoraOptions lora;
  lora.rank = 4;
  lora.alpha = 8;
  lora::AdapterSet all = lora::AdapterSet::create(*model, lora, 11);
  test::randomize_b(all, 12);
  lora::save_gguf(all, *model, dir + "/all.gguf");
  lora::save_gguf(all.subset([](int64_t layer) { return layer >= 1; }), *model, dir + "/server.gguf",
                  {{"cleave.round", "3"}});
  lora::save_gguf(all.subset([](int64_t layer) { return layer != 1; }), *model, dir + "/site.gguf");

  // Float32 matmuls everywhere, as local `generate --model` computes (runtime.matmul
  // auto may pick bf16, which changes the logits).
  test::write_file(dir + "/split-server.yaml",
                   "model: " + model_path + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "runtime: {threads: 1, matmul: float32}\n"
                   "split_server: {bind: tcp://127.0.0.1:0, min_cut_layer: 1, checkpoint: " + dir +
                       "/server.gguf, generation_sessions: 4}\n" +
                       test::secure_section(dir, "split-1"));
  ChildProcess server("split-server", {"split-server", "--config", dir + "/split-server.yaml"});
  const auto endpoint = server.wait_for("listening on (tcp://127\\.0\\.0\\.1:[0-9]+)", test::kStartTimeout);
  ASSERT_TRUE(endpoint) << server.output();
  EXPECT_CONTAINS(server.output(), "resumed from " + dir + "/server.gguf at round 3");

  // The file a site trains with; generation needs no data: section.
  test::write_file(dir + "/site.yaml",
                   "model: " + model_path + "\n"
                   "lora: {rank: 4, alpha: 8.0}\n"
                   "runtime: {threads: 1, matmul: float32}\n"
                   "split: {server: '" + *endpoint + "', server_name: split-1, cut_layer: 1, top_cut: 2, "
                   "timeout_ms: 60000}\n" +
                       test::secure_section(dir, "site-a"));
  const std::vector<std::string> sampling = {"--prompt", kPrompt, "-n", "12", "--temperature", "0"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), sampling.begin(), sampling.end());
    return args;
  };

  const test::CliResult local = run_cleave(with({"generate", "--model", model_path, "--adapter", dir + "/all.gguf",
                                                 "--threads", "1"}));
  ASSERT_EQ(local.status, 0) << local.output;
  const std::string expected = generated_line(local.output);
  ASSERT_GT(expected.size(), kPrompt.size()) << local.output;
  // Without the server's adapters the text differs: the comparison below sees them.
  const test::CliResult site_only = run_cleave(
      with({"generate", "--model", model_path, "--adapter", dir + "/site.gguf", "--threads", "1"}));
  ASSERT_EQ(site_only.status, 0) << site_only.output;
  ASSERT_NE(generated_line(site_only.output), expected);

  const test::CliResult u_shaped =
      run_cleave(with({"generate", "--config", dir + "/site.yaml", "--adapter", dir + "/site.gguf"}));
  ASSERT_EQ(u_shaped.status, 0) << u_shaped.output << "\n--- split server ---\n" << server.output();
  EXPECT_EQ(generated_line(u_shaped.output), expected) << u_shaped.output;
  EXPECT_CONTAINS(u_shaped.output, "split: site-a, blocks [0, 1) and [2, 3) and the head here");
  EXPECT_CONTAINS(u_shaped.output, "server adapters of round 3");
  EXPECT_CONTAINS(u_shaped.output, "12 tokens, 14 requests");   // open, one prefill, 11 steps, close
  EXPECT_CONTAINS(u_shaped.output, " us per generated token over 12 tokens), wall ");
  // The split server's share, per session, when the site closes it.
  EXPECT_TRUE(server.wait_for("generation session of site-a closed: [0-9]+ positions served, 12 tokens generated; "
                              "CPU [0-9.]+ s \\([0-9]+ us per generated token\\)",
                              test::kStartTimeout))
      << server.output();

  const test::CliResult vanilla = run_cleave(with({"generate", "--config", dir + "/site.yaml", "--adapter",
                                                   dir + "/site.gguf", "--set", "split.mode=vanilla"}));
  ASSERT_EQ(vanilla.status, 0) << vanilla.output << "\n--- split server ---\n" << server.output();
  EXPECT_EQ(generated_line(vanilla.output), expected) << vanilla.output;
  EXPECT_CONTAINS(vanilla.output, "split.mode: vanilla: the split server runs the head");

  server.signal(SIGTERM);
  const auto status = server.wait_exit(test::kStartTimeout);
  ASSERT_TRUE(status) << server.output();
  EXPECT_EQ(*status, 0) << server.output();
  EXPECT_CONTAINS(server.output(), "generation session for site-a");
}

}  // namespace
}  // namespace cleave
