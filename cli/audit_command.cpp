// cleave audit --model FILE.gguf --data FILE [--public FILE] [--cut-layer N] ...
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "audit/audit_run.h"
#include "cli/commands.h"
#include "cli/model_flags.h"
#include "client/dataset.h"
#include "split/tensor_wire.h"

namespace cleave::cli {
namespace {

int64_t positive_flag(const ParsedArgs& args, const std::string& flag, int64_t minimum) {
  const int64_t value = args.get_int(flag);
  if (value < minimum)
    throw UsageError(flag + " must be at least " + std::to_string(minimum) + ", got " +
                     std::to_string(value));
  return value;
}

// Every flag of the channel and the attacks, checked before the model loads.
audit::AuditOptions read_audit_options(const ParsedArgs& args) {
  audit::AuditOptions options;
  audit::SmashedChannel& channel = options.channel;
  channel.cut_layer = args.get_int("--cut-layer");
  channel.protection.clip = args.get_double("--activation-clip");
  channel.protection.noise = args.get_double("--activation-noise");
  channel.protection.noise_seed = static_cast<uint64_t>(positive_flag(args, "--noise-seed", 0));
  if (channel.protection.clip < 0) throw UsageError("--activation-clip must be >= 0 (0: no clipping)");
  if (channel.protection.noise < 0 || channel.protection.noise > 1000) {
    throw UsageError("--activation-noise must be in [0, 1000] (a multiple of the clip)");
  }
  if (channel.protection.noise > 0 && channel.protection.clip == 0) {
    throw UsageError("--activation-noise needs --activation-clip > 0: the noise's std is noise x clip");
  }
  try {
    channel.codec = split::parse_codec(args.require("--codec"));
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--codec: ") + e.what());
  }
  options.white_box.candidates = positive_flag(args, "--candidates", 0);
  options.white_box.language_candidates =
      positive_flag(args, "--language-candidates", 0);
  options.white_box.max_candidates =
      positive_flag(args, "--max-candidates", 0);
  options.learned.steps = positive_flag(args, "--steps", 1);
  options.learned.hidden = positive_flag(args, "--hidden", 0);
  options.learned.seed = static_cast<uint64_t>(positive_flag(args, "--seed", 0));
  return options;
}

std::vector<audit::TokenRow> to_rows(const std::vector<data::Record>& records, const std::string& path,
                                     const Tokenizer& tokenizer, int64_t seq_len, int64_t max_tokens,
                                     const char* role) {
  const std::vector<audit::TokenRow> rows =
      audit::rows_from_examples(data::tokenize_records(tokenizer, records), seq_len, max_tokens);
  if (rows.empty())
    throw std::runtime_error(path + ": no text to audit in the " + std::string(role) + " file");
  std::cout << role << ": " << path << ": " << rows.size() << " rows of up to " << seq_len << " tokens, "
            << audit::count_scored(rows) << " tokens after BOS" << std::endl;
  return rows;
}

}  // namespace

ArgParser audit_parser() {
  const audit::AuditOptions defaults;
  ArgParser parser("cleave audit", "--model FILE.gguf --data FILE [--public FILE] [options]",
                   "Plays an honest-but-curious split server on the site's own machine, with no\n"
                   "network: it receives what the split server would (the activations at the cut,\n"
                   "after --activation-clip, --activation-noise and --codec), knows the frozen base\n"
                   "(and with --adapter the site's adapters, as a split server colluding with the\n"
                   "aggregator would), and tries to recover the site's tokens with:\n"
                   "  context-free lookup   each position's nearest vocabulary token seen alone;\n"
                   "  white-box inversion   position by position, the candidate whose activation\n"
                   "                        after the prefix recovered so far, clipped and encoded\n"
                   "                        like the site's, is nearest in L2 (maximum likelihood\n"
                   "                        under the Gaussian noise);\n"
                   "  white-box with prior  (with noise) the same search, choosing by likelihood\n"
                   "                        x the base model's probability of the token after\n"
                   "                        the prefix;\n"
                   "  learned inversion     an MLP trained on --public text put through the same\n"
                   "                        blocks and channel (skipped without --public).\n"
                   "The site's rows are its records' first --seq-len tokens, --max-tokens in all\n"
                   "(BOS not counted). Prints each attack's recovery rate; the last line is\n"
                   "`token recovery: X%` for the best attack.");
  add_model_flags(parser)
      .value("--data", "FILE", "the site's text: JSONL ({\"text\"} or prompt/completion) or plain text")
      .value("--public", "FILE", "the attacker's public text for the learned inversion (same formats)")
      .value("--cut-layer", "N", "the site runs blocks [0, N)").defaults_to(defaults.channel.cut_layer)
      .value("--activation-clip", "C", "the site's per-token L2 clip; 0: none")
      .defaults_to(defaults.channel.protection.clip)
      .value("--activation-noise", "S", "Gaussian noise std as a multiple of the clip")
      .defaults_to(defaults.channel.protection.noise)
      .value("--noise-seed", "N", "the site's noise seed; 0: from the OS's entropy").defaults_to(1)
      .value("--codec", "C", "activation codec: f32, f16, bf16, int8 or int4")
      .defaults_to(wire::to_string(defaults.channel.codec))
      .value("--max-tokens", "K", "site tokens to recover").defaults_to(256)
      .value("--seq-len", "L", "tokens per row, BOS included; the white-box cost grows as L^2").defaults_to(64)
      .value("--candidates", "K", "white-box: the K nearest tokens seen alone are verified first; 0: all")
      .defaults_to(defaults.white_box.candidates)
      .value("--language-candidates", "K", "white-box: and the base model's K likeliest next tokens")
      .defaults_to(defaults.white_box.language_candidates)
      .value("--max-candidates", "K", "white-box: widen up to K while none fits; 0: every token")
      .defaults_to(defaults.white_box.max_candidates)
      .value("--public-tokens", "N", "public tokens the learned inversion trains on").defaults_to(16384)
      .value("--steps", "N", "learned inversion: AdamW steps").defaults_to(defaults.learned.steps)
      .value("--hidden", "N", "learned inversion: hidden width; 0: linear softmax")
      .defaults_to(defaults.learned.hidden)
      .value("--seed", "N", "the attacker's seed: initialisation, batches, its noise draws")
      .defaults_to(defaults.learned.seed);
  return add_runtime_flags(parser);
}

int run_audit(const ParsedArgs& args) {
  const ModelFlags model_flags = read_model_flags(args);
  const std::string data_path = args.require("--data");
  const std::optional<std::string> public_path = args.get("--public");
  audit::AuditOptions options = read_audit_options(args);
  const int64_t max_tokens = positive_flag(args, "--max-tokens", 1);
  const int64_t seq_len = positive_flag(args, "--seq-len", 2);
  const int64_t public_tokens = positive_flag(args, "--public-tokens", 1);

  // The data first: a missing file fails before the model loads.
  const std::vector<data::Record> site_records = data::read_records(data_path);
  const std::vector<data::Record> public_records =
      public_path ? data::read_records(*public_path) : std::vector<data::Record>{};

  const AdaptedModel adapted = load_adapted_model(model_flags, std::cout);
  const BaseModel& base = adapted.base;
  const int64_t n_layers = base.model->n_layers();
  if (options.channel.cut_layer < 1 || options.channel.cut_layer >= n_layers) {
    throw UsageError("--cut-layer must be in [1, " + std::to_string(n_layers - 1) + "] for this model's " +
                     std::to_string(n_layers) + " blocks, got " + std::to_string(options.channel.cut_layer));
  }
  std::cout << "attacker knows: the base" << (adapted.adapters ? " and the site's adapters" : "")
            << ", the clip and the codec; not the noise draws" << std::endl;

  const std::vector<audit::TokenRow> site =
      to_rows(site_records, data_path, *base.tokenizer, seq_len, max_tokens, "site data");
  std::vector<audit::TokenRow> public_rows;
  if (public_path) {
    public_rows =
        to_rows(public_records, *public_path, *base.tokenizer, seq_len, public_tokens, "public text");
  }

  const audit::AuditReport report =
      audit::run_audit(*base.model, adapted.applied(), site, public_rows, options, std::cout);
  const audit::AttackResult& best = report.best();
  char line[64];
  std::snprintf(line, sizeof line, "%.1f%%", 100.0 * best.rate());
  std::cout << "best attack: " << best.name << "\n";
  std::cout << "token recovery: " << line << std::endl;
  return 0;
}

}  // namespace cleave::cli
