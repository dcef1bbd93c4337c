// `cleave eval --generate`: greedy generation from each distinct prompt of a
// prompt/completion JSONL, scored against all completions of that prompt
// with the E2E NLG Challenge's metrics (client/generation_metrics.h).
#pragma once

#include "util/args.h"
#include "cli/model_flags.h"

namespace cleave::cli {

// Its flags, declared on `cleave eval`'s parser.
ArgParser &add_generation_eval_flags(ArgParser &parser);

// Runs it for `cleave eval --generate`; the last lines of stdout are
// `bleu: X`, `nist: X` and `rouge_l: X`.
int run_generation_eval(const ParsedArgs &args, const ModelFlags &model_flags);

} // namespace cleave::cli
