// Scraping a /metrics endpoint and reading it with the reference parser of
// the Prometheus Python client (Debian: python3-prometheus-client), for the
// services' metrics integration tests.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/shell.h"

namespace cleave::test {

// Debian's python3-prometheus-client is for Debian's python3, which a
// python3 earlier on PATH (pyenv, a venv) may not see.
inline std::string python() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

inline bool have_prometheus_parser() {
  return std::system((python() + " -c 'import prometheus_client.parser' >/dev/null 2>&1").c_str()) == 0;
}

// Every sample of `exposition` as "name{label=value,...}" -> value, as
// prometheus_client.parser.text_string_to_metric_families reads it (it
// throws, and this fails, on text that is not valid exposition format).
inline std::map<std::string, double> parse_with_prometheus(const std::string& exposition) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("cleave-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << exposition;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    for s in family.samples:\n"
      "        labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        print(s.name + '{' + labels + '} ' + repr(float(s.value)))\n";
  const ShellResult parsed = run_shell(python() + " -c \"" + script + "\" " + file.string());
  const std::string& output = parsed.output;
  const int status = parsed.status;
  std::filesystem::remove(file);
  EXPECT_EQ(status, 0) << "prometheus_client could not parse:\n" << output << "\n--- exposition ---\n" << exposition;
  std::map<std::string, double> samples;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t space = line.rfind(' ');
    if (space != std::string::npos) samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

inline std::map<std::string, double> scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto response = client.Get("/metrics");
  EXPECT_TRUE(response);
  if (!response) return {};
  EXPECT_EQ(response->status, 200);
  return parse_with_prometheus(response->body);
}

}  // namespace cleave::test
