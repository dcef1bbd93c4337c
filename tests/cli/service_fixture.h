// What the service integration tests share: a federation CA with node
// certificates made by `cleave ca`, a tiny model with data for it, and the
// YAML sections that point services at them.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/cli/child_process.h"
#include "tests/cli/cli_runner.h"
#include "util/json.h"

namespace cleave::test {

constexpr auto kStartTimeout = std::chrono::milliseconds(180000);   // model load on a busy machine
constexpr auto kRunTimeout = std::chrono::milliseconds(480000);

// JSONL notes in the tiny model's vocabulary; `variant` shifts the mix so
// sites hold different data.
inline std::string write_site_data(const std::string& path, int lines, int variant) {
  const std::vector<std::string> sentences = {
      "the patient has a mild fever and a dry cough", "rest and fluids were advised",
      "the patient has a dry cough", "a mild fever and rest were advised"};
  std::ofstream out(path, std::ios::trunc);
  for (int i = 0; i < lines; ++i) {
    out << "{\"text\": \"" << sentences[static_cast<size_t>(i + variant) % sentences.size()] << " "
        << sentences[static_cast<size_t>(i * 3 + variant) % sentences.size()] << "\"}\n";
  }
  return path;
}

// `cleave ca init` in DIR/ca; returns DIR/ca.
inline std::string init_ca(const std::string& dir) {
  const CliResult init = run_cleave({"ca", "init", "--out", dir + "/ca"});
  EXPECT_EQ(init.status, 0) << init.output;
  return dir + "/ca";
}

// `cleave ca issue` into DIR/certs/NAME; returns that directory.
inline std::string issue(const std::string& dir, const std::string& role, const std::string& name) {
  const std::string out = dir + "/certs/" + name;
  const CliResult issued =
      run_cleave({"ca", "issue", "--ca", dir + "/ca", "--role", role, "--name", name, "--out", out});
  EXPECT_EQ(issued.status, 0) << issued.output;
  return out;
}

// The `secure:` section for the node whose files `issue` wrote; the CRL is
// the CA's own (as if the operator copied it over after every revocation).
inline std::string secure_section(const std::string& dir, const std::string& name) {
  const std::string certs = dir + "/certs/" + name;
  return "secure:\n  cert: " + certs + "/" + name + ".crt\n  key: " + certs + "/" + name + ".key\n  ca: " + certs +
         "/ca.crt\n  crl: " + dir + "/ca/crl.pem\n";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The `loss` of every train event in a run directory's metrics.jsonl.
inline std::vector<double> train_losses(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<double> losses;
  std::string line;
  while (std::getline(in, line)) {
    const json::Value event = json::parse(line);
    if (event.at("event").as_string() == "train") losses.push_back(event.at("loss").as_double());
  }
  return losses;
}

}  // namespace cleave::test
