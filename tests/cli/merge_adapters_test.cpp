// `cleave merge-adapters`: a split run's two adapter files become one GGUF
// LoRA whose tensors are the site's in the site's blocks and the server's in
// the server's, so that the merged model scores what the split model scores.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "client/train_step.h"
#include "lora/adapter_gguf.h"
#include "model/llama_model.h"
#include "model/loss.h"
#include "model/model_loader.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/device_fixture.h"

namespace cleave {
namespace {

// Adapters on `keep` blocks with B drawn from `seed` (trained-looking, not the identity).
lora::AdapterSet trained(const LlamaModel& model, const lora::LoraOptions& options, uint64_t seed,
                         const std::function<bool(int64_t)>& keep) {
  lora::AdapterSet set = lora::AdapterSet::create(model, options, seed, keep);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  at::NoGradGuard no_grad;
  for (const auto& [name, pair] : set.pairs()) pair.b.normal_(0.0, 0.1, gen);
  return set;
}

TEST(MergeAdapters, MergedFileScoresLikeTheSplitModel) {
  const std::string dir = test::scratch_dir("cli_merge_adapters");
  const std::string model_path = test::write_tiny_model_with_tokenizer(dir);
  const auto model = load_llama(model_path, BaseQuant::native);
  lora::LoraOptions options;
  options.rank = 2;
  options.alpha = 4;
  options.targets = {"q", "v"};
  // u_shaped at cut 1, top_cut 2: the site holds 0 and 2, the server 1 and 2 (its copy of 2 is untrained).
  const lora::AdapterSet site = trained(*model, options, 3, [](int64_t l) { return l != 1; });
  const lora::AdapterSet server = trained(*model, options, 5, [](int64_t l) { return l >= 1; });
  lora::save_gguf(site, *model, dir + "/site.gguf");
  lora::save_gguf(server, *model, dir + "/server.gguf");

  const test::CliResult merge = test::run_cleave({"merge-adapters", "--model", model_path, "--site", dir + "/site.gguf",
                                                  "--server", dir + "/server.gguf", "--out", dir + "/full.gguf"});
  ASSERT_EQ(merge.status, 0) << merge.output;
  EXPECT_CONTAINS(merge.output, "6 adapted projections (rank 2): 4 from the site, 2 from the split server, 0 untrained");
  const lora::AdapterSet full = lora::load_gguf(dir + "/full.gguf", *model);

  const data::Batch batch = test::device::random_batch(model->config().vocab_size, 2, 8, 11);
  const BatchTensors t = to_tensors(batch);
  at::NoGradGuard no_grad;
  const int64_t L = model->n_layers();
  at::Tensor h = model->run_blocks(model->embed(t.inputs), 0, 1, &site, 0);   // the site's bottom
  h = model->run_blocks(h, 1, 2, &server, 0);                                 // the split server
  h = model->run_blocks(h, 2, L, &site, 0);                                   // the site's top
  const double split_loss = model->head_loss(h, t.targets, t.weights, &site).loss.item<double>();
  const at::Tensor whole = model->run_blocks(model->embed(t.inputs), 0, L, &full, 0);
  const double merged_loss = model->head_loss(whole, t.targets, t.weights, &full).loss.item<double>();
  EXPECT_NEAR(merged_loss, split_loss, 1e-6 * split_loss);

  // `cleave eval --adapter` loads the merged file, and it changes the model's perplexity.
  const std::string data = dir + "/text.txt";
  test::write_file(data, "the patient was seen in clinic today and the notes were written up\n");
  const test::CliResult base_eval = test::run_cleave({"eval", "--model", model_path, "--data", data});
  const test::CliResult merged_eval =
      test::run_cleave({"eval", "--model", model_path, "--adapter", dir + "/full.gguf", "--data", data});
  ASSERT_EQ(base_eval.status, 0) << base_eval.output;
  ASSERT_EQ(merged_eval.status, 0) << merged_eval.output;
  EXPECT_CONTAINS(merged_eval.output, "perplexity");
  EXPECT_NE(base_eval.last_line(), merged_eval.last_line());

  const test::CliResult help = test::run_cleave({"merge-adapters", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_CONTAINS(help.output, "--server");
}

TEST(MergeAdapters, HalvesOfDifferentRunsAreRefused) {
  const std::string dir = test::scratch_dir("cli_merge_adapters_bad");
  const std::string model_path = test::write_tiny_model_with_tokenizer(dir);
  const auto model = load_llama(model_path, BaseQuant::native);
  lora::LoraOptions two, four;
  two.rank = 2;
  four.rank = 4;
  lora::save_gguf(trained(*model, two, 1, [](int64_t l) { return l != 1; }), *model, dir + "/site.gguf");
  lora::save_gguf(trained(*model, four, 2, [](int64_t l) { return l >= 1; }), *model, dir + "/server.gguf");
  const test::CliResult result = test::run_cleave({"merge-adapters", "--model", model_path, "--site", dir + "/site.gguf",
                                                   "--server", dir + "/server.gguf", "--out", dir + "/full.gguf"});
  EXPECT_NE(result.status, 0);
  EXPECT_CONTAINS(result.output, "has rank 2");
  EXPECT_CONTAINS(result.output, "has rank 4");
  EXPECT_CONTAINS(result.output, dir + "/server.gguf");

  const test::CliResult missing = test::run_cleave({"merge-adapters", "--model", model_path, "--site", dir + "/site.gguf"});
  EXPECT_NE(missing.status, 0);
  EXPECT_CONTAINS(missing.output, "--server");
}

}  // namespace
}  // namespace cleave
