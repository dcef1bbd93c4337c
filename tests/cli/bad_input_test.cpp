// Bad input to the `cleave` binary: each case must end with a clear message
// and a non-zero exit status (2 for usage and configuration, 1 otherwise),
// never a crash. Runs the real binary.
#include <gtest/gtest.h>

#include <filesystem>

#include "lora/adapter_gguf.h"
#include "model/gguf.h"
#include "model/model_loader.h"
#include "tests/cli/cli_runner.h"

namespace cleave {
namespace {

using test::run_cleave;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("cli_bad_input_") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = test::write_tiny_model_with_tokenizer(dir_);
    data_ = dir_ + "/ok.jsonl";
    test::write_file(data_, "{\"text\": \"the patient has a mild fever\"}\n"
                            "{\"text\": \"rest and fluids were advised\"}\n");
  }
  // A crash would show as 128 + signal; every refusal here is a plain 1 or 2.
  void expect_refused(const test::CliResult& r, int status, const std::string& message) {
    EXPECT_EQ(r.status, status) << r.output;
    EXPECT_CONTAINS(r.output, message);
  }
  std::string dir_, model_, data_;
};

TEST_F(BadInput, MissingGguf) {
  const auto r = run_cleave({"eval", "--model", dir_ + "/absent.gguf", "--data", data_});
  expect_refused(r, 1, "cleave eval: error: " + dir_ + "/absent.gguf: no such model file");
}

TEST_F(BadInput, TruncatedGguf) {
  const auto size = std::filesystem::file_size(model_);
  std::filesystem::resize_file(model_, size / 2);
  expect_refused(run_cleave({"eval", "--model", model_, "--data", data_}), 1, "truncated");
  std::filesystem::resize_file(model_, 10);  // not even a whole header
  expect_refused(run_cleave({"generate", "--model", model_, "--prompt", "the"}), 1,
                 "cleave generate: error: " + model_);
}

TEST_F(BadInput, NotAGgufAtAll) {
  test::write_file(dir_ + "/text.gguf", "this is not a GGUF file, just some text to read\n");
  expect_refused(run_cleave({"eval", "--model", dir_ + "/text.gguf", "--data", data_}), 1,
                 dir_ + "/text.gguf");
}

TEST_F(BadInput, UnsupportedTensorType) {
  // The tiny model again, with one projection stored as IQ2_XXS, which cleave
  // does not read. IQ2_XXS blocks are 256 wide, so the model is 256 wide.
  LlamaConfig c = test::tiny_config();
  c.dim = 256;
  c.head_dim = 64;
  c.rope_dims = 64;
  c.n_layers = 1;
  const std::string float_path = dir_ + "/wide.gguf";
  write_llama_gguf(float_path, c, random_llama_weights(c, 1), nullptr);
  auto file = gguf::File::open(float_path);
  gguf::Writer writer;
  for (const auto& [key, value] : file->metadata()) writer.set(key, value);
  for (const gguf::TensorInfo& t : file->tensors()) {
    if (t.name == "blk.0.attn_q.weight") {
      std::vector<uint8_t> blocks(gguf::row_bytes(gguf::TensorType::IQ2_XXS, t.n_elements()), 0);
      writer.add_tensor(t.name, gguf::TensorType::IQ2_XXS, t.ne, blocks.data(), blocks.size());
    } else {
      writer.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
    }
  }
  const std::string path = dir_ + "/iq2xxs.gguf";
  writer.write(path);
  const auto r = run_cleave({"eval", "--model", path, "--data", data_});
  expect_refused(r, 1, "blk.0.attn_q.weight");
  EXPECT_CONTAINS(r.output, "IQ2_XXS");
  EXPECT_CONTAINS(r.output, path);
}

TEST_F(BadInput, MalformedJsonlLineNamesFileAndLine) {
  const std::string bad = dir_ + "/bad.jsonl";
  test::write_file(bad, "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\n{\"text\": \"broken\n");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", bad}), 1, bad + ":3");
  // The same file as training data.
  test::write_file(dir_ + "/run.yaml", "model: " + model_ + "\ndata:\n  train: " + bad +
                                           "\noutput:\n  dir: " + dir_ + "/run\n");
  expect_refused(run_cleave({"train", "--config", dir_ + "/run.yaml"}), 1, bad + ":3");
  // A line that is JSON but not a record.
  test::write_file(bad, "{\"text\": \"fine\"}\n{\"txet\": \"typo\"}\n");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", bad}), 1, bad + ":2");
}

TEST_F(BadInput, UnknownOrMistypedYamlKey) {
  const std::string config = dir_ + "/run.yaml";
  test::write_file(config, "model: " + model_ + "\ndata:\n  train: " + data_ +
                               "\ntrain:\n  learnig_rate: 0.1\n");
  expect_refused(run_cleave({"train", "--config", config}), 2,
                 config + ":5: unknown key 'train.learnig_rate' (did you mean 'train.lr'?)");
  test::write_file(config, "model: " + model_ + "\ndata:\n  train: " + data_ +
                               "\ntrain:\n  steps: ten\n");
  expect_refused(run_cleave({"train", "--config", config}), 2,
                 config + ":5: train.steps: expected an integer, got 'ten'");
  test::write_file(config, "model: " + model_ + "\ndata:\n  train: " + data_ + "\n");
  expect_refused(run_cleave({"train", "--config", config, "--set", "lora.rnak=2"}), 2,
                 "unknown key 'lora.rnak' (did you mean 'lora.rank'?)");
}

TEST_F(BadInput, AdapterForAnotherBase) {
  // An adapter trained for a model with another feed-forward width.
  const std::string other = test::write_tiny_model_with_tokenizer(dir_, 7, 40);
  auto other_model = load_llama(other, BaseQuant::none);
  const lora::AdapterSet adapters = lora::AdapterSet::create(*other_model, lora::LoraOptions{}, 1);
  const std::string adapter = dir_ + "/other-adapter.gguf";
  lora::save_gguf(adapters, *other_model, adapter);
  expect_refused(run_cleave({"eval", "--model", model_, "--data", data_, "--adapter", adapter}), 1,
                 "different base model");
  expect_refused(
      run_cleave({"generate", "--model", model_, "--prompt", "the", "--adapter", adapter}), 1,
      "different base model");
  // A base model passed where an adapter belongs.
  expect_refused(run_cleave({"eval", "--model", model_, "--data", data_, "--adapter", model_}), 1,
                 model_);
}

TEST_F(BadInput, BadFlagsPrintTheUsage) {
  auto r = run_cleave({"eval", "--model", model_, "--dat", data_});
  expect_refused(r, 2, "cleave eval: error: unknown flag --dat");
  EXPECT_CONTAINS(r.output, "usage: cleave eval");
  expect_refused(run_cleave({"generate", "--model", model_, "--prompt", "x", "--temperature", "-1"}),
                 2, "temperature must be >= 0");
  expect_refused(run_cleave({"generate", "--model", model_, "--prompt", "x", "-n", "many"}), 2,
                 "--n-predict expects an integer, got 'many'");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", data_, "--quant", "q5"}), 2,
                 "--quant: unknown base quantization 'q5'");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", data_, "--ctx", "1"}), 2,
                 "--ctx must be at least 2");
  expect_refused(run_cleave({"nonsense"}), 2, "unknown command 'nonsense'");
  expect_refused(run_cleave({}), 2, "usage: cleave <command>");
  expect_refused(run_cleave({"train"}), 2, "missing --config");
}

TEST_F(BadInput, DataTooShortForTheContext) {
  const std::string text = dir_ + "/short.txt";
  test::write_file(text, "the patient has a fever\n");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", text, "--ctx", "64"}), 1,
                 "cleave eval: error:");
  test::write_file(dir_ + "/empty.jsonl", "");
  expect_refused(run_cleave({"eval", "--model", model_, "--data", dir_ + "/empty.jsonl"}), 1,
                 "empty.jsonl");
}

TEST(CleaveBinary, HelpForEveryCommand) {
  auto r = run_cleave({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* command : {"train", "eval", "generate", "demo"}) {
    EXPECT_CONTAINS(r.output, command);
    const auto help = run_cleave({command, "--help"});
    EXPECT_EQ(help.status, 0) << help.output;
    EXPECT_CONTAINS(help.output, std::string("usage: cleave ") + command);
  }
}

TEST(CleaveBinary, EvalAndGenerateOnATinyModel) {
  const std::string dir = test::scratch_dir("cli_tiny_eval");
  const std::string model = test::write_tiny_model_with_tokenizer(dir);
  const std::string text = dir + "/story.txt";
  std::string body;
  for (int i = 0; i < 20; ++i) body += "the patient has a mild fever and a dry cough. ";
  test::write_file(text, body);
  // llama-perplexity scheme on text; the last line is the result.
  auto r = run_cleave({"eval", "--model", model, "--data", text, "--ctx", "16", "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(r.last_line().rfind("perplexity: ", 0), 0u) << r.output;
  const double ppl = std::stod(r.last_line().substr(12));
  // A random model is close to uniform over its vocabulary.
  const double vocab = static_cast<double>(
      build_vocabulary({"the patient has a mild fever and a dry cough", "rest and fluids were advised"})
          .tokens.size());
  EXPECT_GT(ppl, vocab * 0.5);
  EXPECT_LT(ppl, vocab * 2.0);
  EXPECT_CONTAINS(r.output, "chunks of 16");

  const std::string jsonl = dir + "/d.jsonl";
  test::write_file(jsonl, "{\"prompt\": \"the patient has\", \"completion\": \"a mild fever\"}\n");
  r = run_cleave({"eval", "--model", model, "--data", jsonl, "--quant", "int8", "--threads", "1"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_CONTAINS(r.output, "scored tokens: 4");  // " a", " mild", " fever", EOS
  EXPECT_EQ(r.last_line().rfind("perplexity: ", 0), 0u);

  // Greedy generation is deterministic and starts with the prompt.
  const std::vector<std::string> gen = {"generate", "--model", model, "--prompt", "the patient",
                                        "-n", "8", "--temperature", "0", "--threads", "1"};
  const auto a = run_cleave(gen);
  const auto b = run_cleave(gen);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_CONTAINS(a.output, "the patient");
  EXPECT_EQ(a.last_line(), b.last_line());
}

}  // namespace
}  // namespace cleave
