#include "cli/train_run.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>

#include "cli/base_model.h"
#include "cli/metrics.h"
#include "cli/service_runtime.h"
#include "cli/split_session.h"
#include "client/batching.h"
#include "client/dataset.h"
#include "client/evaluate.h"
#include "client/train_step.h"
#include "lora/adapter_gguf.h"
#include "lora/adapter_set.h"
#include "model/chat_template.h"
#include "split/split_client.h"

namespace fs = std::filesystem;

namespace cleave::cli {
namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error(path + ": cannot write (is the run directory writable?)");
}

json::Value event(const char* name, int64_t step) {
  json::Value e = json::Value::object();
  e.set("event", name);
  e.set("step", step);
  return e;
}

int64_t count_tokens(const std::vector<data::Example>& examples) {
  int64_t n = 0;
  for (const data::Example& e : examples) n += static_cast<int64_t>(e.tokens.size());
  return n;
}

std::string format_ppl(double ppl) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", ppl);
  return buf;
}

}  // namespace

std::vector<data::Record> split_off_eval(std::vector<data::Record>& records, double fraction,
                                         uint64_t seed) {
  if (fraction <= 0 || records.size() < 2) return {};
  const size_t n = records.size();
  size_t n_eval = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  n_eval = std::clamp<size_t>(n_eval, 1, n - 1);
  // Epoch -1 keeps this shuffle apart from the training epochs' shuffles.
  std::vector<size_t> order = data::epoch_order(n, seed, -1);
  std::vector<bool> held_out(n, false);
  for (size_t i = 0; i < n_eval; ++i) held_out[order[i]] = true;
  std::vector<data::Record> train, eval;
  for (size_t i = 0; i < n; ++i) (held_out[i] ? eval : train).push_back(std::move(records[i]));
  records = std::move(train);
  return eval;
}

TrainRunResult run_training(const RunConfig& config, std::ostream& out) {
  config.validate();
  set_threads(config.threads, out);
  fs::create_directories(config.output_dir);
  const std::string dir = config.output_dir;
  write_text(dir + "/config.resolved.yaml", to_yaml(config));

  const BaseModel base = load_base_model(config.model, config.quant, out, config.compute);
  const LlamaModel& model = *base.model;

  std::vector<data::Record> train_records = data::read_records(config.data.train);
  std::vector<data::Record> eval_records;
  if (!config.data.eval.empty()) {
    eval_records = data::read_records(config.data.eval);
  } else {
    eval_records = split_off_eval(train_records, config.data.eval_fraction, config.seed);
  }
  const std::optional<ChatFormat> chat =
      data::choose_chat_format(config.data.chat_template, *base.tokenizer, config.model);
  if (chat) {
    out << "data: prompts and completions in the " << chat_format_name(*chat) << " chat format\n";
  }
  const std::vector<data::Example> train_examples =
      data::tokenize_records(*base.tokenizer, train_records, chat);
  const std::vector<data::Example> eval_examples =
      data::tokenize_records(*base.tokenizer, eval_records, chat);
  out << "data: " << train_examples.size() << " train records (" << count_tokens(train_examples)
      << " tokens), " << eval_examples.size() << " held-out records ("
      << count_tokens(eval_examples) << " tokens)\n";

  data::BatchOptions batching;
  batching.batch_size = config.data.batch_size;
  batching.seq_len = config.data.seq_len;
  batching.mode = config.data.mode;
  batching.seed = config.seed;
  batching.pad_token = base.tokenizer->eos();
  data::BatchStream stream(train_examples, batching);
  std::vector<data::Batch> eval_set;
  if (!eval_examples.empty()) {
    eval_set = data::eval_batches(eval_examples, batching);
    if (config.data.eval_batches > 0 &&
        static_cast<int64_t>(eval_set.size()) > config.data.eval_batches) {
      eval_set.resize(static_cast<size_t>(config.data.eval_batches));
    }
  }

  // With a split: section only the client blocks train here; the split
  // server trains (and keeps) the adapters of the blocks it runs, so the
  // held-out perplexity of the whole model cannot be measured on this side.
  const bool split = config.split.enabled();
  std::optional<SplitSession> session;
  if (split) {
    const std::string id = node_id(config.split.options.client_id, config.secure, "client-0");
    session = connect_split_server(config, id, model.n_layers(), service_log("train", LogLevel::info));
    if (!eval_set.empty()) {
      out << "split training: held-out perplexity not measured (the top blocks' adapters are on the split "
             "server)\n";
      eval_set.clear();
    }
    out << "split: client " << id << ", " << describe_site_blocks(session->options, model.n_layers()) << ", "
        << wire::to_string(session->options.activation_codec) << " activations to "
        << session->channel->describe() << "\n";
  }

  at::manual_seed(config.seed);  // LoRA dropout
  lora::AdapterSet adapters =
      split ? lora::AdapterSet::create(model, config.lora, config.seed, client_blocks(session->options, model.n_layers()).keep_layer())
            : lora::AdapterSet::create(model, config.lora, config.seed);
  out << "lora: rank " << config.lora.rank << ", alpha " << config.lora.alpha << ", "
      << adapters.pairs().size() << " adapted projections, " << adapters.parameter_count()
      << " trainable parameters\n";

  MetricsLog metrics(dir + "/metrics.jsonl");
  std::unique_ptr<TrainStep> inner;
  if (split) {
    inner = std::make_unique<split::SplitTrainStep>(base.model, adapters, *session->channel, session->options);
  } else {
    inner = std::make_unique<LocalTrainStep>(base.model, adapters, config.train.recompute,
                                             config.train.micro_batch);
  }
  MetricsTrainStep step(*inner, config.train, metrics);

  auto held_out_perplexity = [&](int64_t at_step) {
    adapters.set_training(false);
    const double ppl = evaluate(model, &adapters, eval_set).perplexity();
    adapters.set_training(true);
    json::Value e = event("eval", at_step);
    e.set("perplexity", ppl);
    metrics.write(e);
    return ppl;
  };

  TrainRunResult result;
  if (!eval_set.empty()) {
    result.perplexity_before = held_out_perplexity(0);
    out << "perplexity before: " << format_ppl(*result.perplexity_before) << "\n";
  } else if (!split) {
    out << "no held-out data (set data.eval or data.eval_fraction): perplexity not measured\n";
  }

  Trainer trainer(step, config.train, &out);
  if (!eval_set.empty()) trainer.on_eval([&] { return held_out_perplexity(step.steps_done()); });
  trainer.on_checkpoint([&](int64_t at_step) {
    if (at_step >= config.train.steps) return;  // the final adapter is saved below
    const std::string path = dir + "/checkpoint-" + std::to_string(at_step) + ".gguf";
    lora::save_gguf(adapters, model, path, {{"cleave.step", std::to_string(at_step)}});
    json::Value e = event("checkpoint", at_step);
    e.set("path", path);
    metrics.write(e);
    out << "checkpoint: " << path << "\n";
  });
  out << "training: " << config.train.steps << " steps of " << config.data.batch_size << " x "
      << config.data.seq_len << " tokens (" << data::batch_mode_name(config.data.mode) << ")";
  if (config.train.micro_batch > 0 && config.train.micro_batch < config.data.batch_size) {
    out << ", forward and backward " << config.train.micro_batch << " rows at a time";
  }
  if (config.train.recompute) out << ", block activations recomputed in backward";
  out << "\n";
  adapters.set_training(true);
  result.report = trainer.run(stream);
  adapters.set_training(false);

  result.adapter_path = dir + "/adapter.gguf";
  lora::save_gguf(adapters, model, result.adapter_path,
                  {{"cleave.step", std::to_string(config.train.steps)}});
  if (!eval_set.empty()) {
    result.perplexity_after = held_out_perplexity(config.train.steps);
    out << "perplexity after: " << format_ppl(*result.perplexity_after) << "\n";
  }

  const TrainReport& report = result.report;
  const double tokens_per_s = report.tokens / std::max(report.seconds, 1e-9);
  json::Value summary = event("summary", config.train.steps);
  summary.set("seconds", report.seconds);
  summary.set("tokens", report.tokens);
  summary.set("tokens_per_s", tokens_per_s);
  summary.set("mean_loss", report.mean_loss());
  summary.set("final_loss", report.losses.empty() ? 0.0 : report.losses.back());
  if (result.perplexity_before) summary.set("perplexity_before", *result.perplexity_before);
  if (result.perplexity_after) summary.set("perplexity_after", *result.perplexity_after);
  summary.set("adapter", result.adapter_path);
  const auto* split_step = dynamic_cast<const split::SplitTrainStep*>(inner.get());
  if (split_step) {
    summary.set("split_mode", split_step->options().mode == split::SplitMode::u_shaped ? "u_shaped" : "vanilla");
    summary.set("label_bytes_sent", split_step->label_bytes());
  }
  metrics.write(summary);

  out << "summary: ";
  if (result.perplexity_before && result.perplexity_after) {
    const double change = 100.0 * (*result.perplexity_after / *result.perplexity_before - 1.0);
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%+.1f%%)", change);
    out << "held-out perplexity " << format_ppl(*result.perplexity_before) << " -> "
        << format_ppl(*result.perplexity_after) << buf << ", ";
  } else {
    out << "final train loss " << (report.losses.empty() ? 0.0 : report.losses.back()) << ", ";
  }
  out << config.train.steps << " steps in " << format_duration(report.seconds) << " ("
      << static_cast<int64_t>(tokens_per_s) << " tok/s), adapter " << result.adapter_path << "\n";
  if (split_step) {
    out << "split: " << split_step->label_bytes() << " label bytes sent to the split server"
        << (split_step->label_bytes() == 0 ? " (u_shaped: the labels stayed here)" : " (vanilla)") << "\n";
  }
  return result;
}

}  // namespace cleave::cli
