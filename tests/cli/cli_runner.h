// Running the `cleave` binary from tests, and small models to point it at.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "model/model_writer.h"
#include "model/vocab_builder.h"
#include "tests/support/expect.h"
#include "tests/support/shell.h"
#include "tests/support/tiny_model.h"

namespace cleave::test {

using CliResult = ShellResult;

// Runs `cleave args...` and collects its output and exit status; standard
// input comes from `stdin_path` when one is given.
inline CliResult run_cleave(const std::vector<std::string>& args, const std::string& stdin_path = "") {
  std::string command = shell_quote(CLEAVE_CLI_BINARY);
  for (const std::string& a : args) command += " " + shell_quote(a);
  if (!stdin_path.empty()) command += " < " + shell_quote(stdin_path);
  return run_shell(command);
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A tiny random Llama with a tokenizer built for `words`, so the commands can
// load it; returns its path.
inline std::string write_tiny_model_with_tokenizer(const std::string& dir, uint64_t seed = 7,
                                                   int64_t ffn_dim = 48) {
  const Vocabulary vocab = build_vocabulary(
      {"the patient has a mild fever and a dry cough", "rest and fluids were advised"});
  LlamaConfig c = tiny_config();
  c.vocab_size = static_cast<int64_t>(vocab.tokens.size());
  c.ffn_dim = ffn_dim;
  const std::string path = dir + "/tiny-" + std::to_string(seed) + "-" + std::to_string(ffn_dim) + ".gguf";
  write_llama_gguf(path, c, random_llama_weights(c, seed), &vocab);
  return path;
}

}  // namespace cleave::test
