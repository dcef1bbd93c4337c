// cleave demo [--out DIR] [--steps N]: a complete run that needs nothing but
// this binary: generated notes, a tokenizer built for them, a small random
// Llama written as GGUF, LoRA training on its int8 base, evaluation, samples.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <ATen/ATen.h>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "cli/demo_corpus.h"
#include "cli/train_run.h"
#include "lora/adapter_gguf.h"
#include "model/generate.h"
#include "model/model_writer.h"
#include "model/vocab_builder.h"
#include "util/json.h"
#include "util/stopwatch.h"

namespace fs = std::filesystem;

namespace cleave::cli {
namespace {

constexpr size_t kTrainNotes = 3000;
constexpr size_t kEvalNotes = 300;
constexpr uint64_t kCorpusSeed = 2024;
constexpr uint64_t kModelSeed = 7;

void write_jsonl(const std::string& path, const std::vector<std::string>& texts) {
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& text : texts) {
    json::Value record = json::Value::object();
    record.set("text", text);
    out << record.dump() << "\n";
  }
  if (!out) throw std::runtime_error(path + ": cannot write the demo data");
}

std::string sample(const BaseModel& base, const LinearAdapters* adapters, const std::string& prompt) {
  SamplingOptions options;
  options.temperature = 0.7;
  options.top_k = 40;
  options.top_p = 0.95;
  options.seed = 1;
  options.max_new_tokens = 40;
  std::vector<TokenId> ids = base.tokenizer->encode(prompt, /*add_bos=*/true);
  const std::vector<TokenId> continuation =
      generate(*base.model, adapters, ids, base.tokenizer->eos(), options);
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  return base.tokenizer->decode(ids);
}

}  // namespace

ArgParser demo_parser() {
  return ArgParser("cleave demo", "[--out DIR] [--steps N]",
                   "The built-in default run; needs no downloads. Generates clinical-style notes\n"
                   "(train.jsonl, eval.jsonl), builds a SentencePiece-style vocabulary for them,\n"
                   "writes a small random Llama (model.gguf), trains LoRA adapters on its int8\n"
                   "base with the same code as `cleave train`, and prints the held-out\n"
                   "perplexity before and after plus a sample from the adapted model.")
      .value("--out", "DIR", "run directory").defaults_to("runs/demo")
      .value("--steps", "N", "training steps").defaults_to(200)
      .value("--threads", "N", "LibTorch threads; 0: all cores").defaults_to(0);
}

int run_demo(const ParsedArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  RunConfig config;
  config.source = "cleave demo";
  config.output_dir = args.require("--out");
  config.train.steps = args.get_int("--steps");
  config.threads = args.get_int("--threads");
  if (config.train.steps <= 0) throw UsageError("--steps must be > 0");
  if (config.threads < 0) throw UsageError("--threads must be >= 0");
  const std::string dir = config.output_dir;
  fs::create_directories(dir);

  const std::vector<std::string> notes = clinical_notes(kTrainNotes + kEvalNotes, kCorpusSeed);
  const std::vector<std::string> train(notes.begin(), notes.begin() + kTrainNotes);
  const std::vector<std::string> eval(notes.begin() + kTrainNotes, notes.end());
  write_jsonl(dir + "/train.jsonl", train);
  write_jsonl(dir + "/eval.jsonl", eval);
  const Vocabulary vocab = build_vocabulary(train);
  write_demo_model(dir + "/model.gguf", vocab, kModelSeed);
  std::cout << "demo: " << train.size() << " train and " << eval.size() << " held-out notes, "
            << vocab.tokens.size() << "-token vocabulary, random model in " << dir
            << "/model.gguf\n";

  config.model = dir + "/model.gguf";
  config.quant = BaseQuant::int8;
  config.lora.rank = 8;
  config.lora.alpha = 16;
  config.data.train = dir + "/train.jsonl";
  config.data.eval = dir + "/eval.jsonl";
  config.data.seq_len = 64;
  config.data.batch_size = 8;
  config.train.lr = 1e-2;
  config.train.warmup_steps = 10;
  config.train.log_every = 20;
  const TrainRunResult result = run_training(config, std::cout);

  std::ostringstream quiet;
  const BaseModel base = load_base_model(config.model, config.quant, quiet);
  const lora::AdapterSet adapters = lora::load_gguf(result.adapter_path, *base.model);
  const std::string prompt = "The patient is a";
  std::cout << "sample (base):    " << sample(base, nullptr, prompt) << "\n";
  std::cout << "sample (adapted): " << sample(base, &adapters, prompt) << "\n";

  const double seconds = seconds_since(start);
  char line[160];
  std::snprintf(line, sizeof line, "demo: held-out perplexity %.2f -> %.2f, %.1fs in all, run in %s",
                result.perplexity_before.value_or(0), result.perplexity_after.value_or(0),
                seconds, dir.c_str());
  std::cout << line << std::endl;
  return 0;
}

}  // namespace cleave::cli
