#include "simulate/round_cost.h"

#include <cstdio>
#include <sstream>

namespace cleave::simulate {
namespace {

using metrics::Phase;
using metrics::RoleCost;

struct NamedRole {
  const char* name;
  const RoleCost& cost;
};

std::vector<NamedRole> roles(const RoundCost& c) {
  return {{"site", c.site}, {"split_server", c.split_server}, {"aggregator", c.aggregator}};
}

std::string number(double value, const char* format) {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string optional_number(const std::optional<double>& value, const char* format, double scale = 1.0) {
  return value ? number(*value * scale, format) : std::string();
}

json::Value optional_json(const std::optional<double>& value, double scale = 1.0) {
  return value ? json::Value(*value * scale) : json::Value("n/a");
}

// CPU seconds of `role` per training token of the round.
std::optional<double> cpu_per_token(const RoleCost& role, int64_t tokens) {
  if (tokens <= 0) return std::nullopt;
  return role.cpu_seconds() / static_cast<double>(tokens);
}

std::optional<double> joules_per_token(const RoleCost& role, int64_t tokens) {
  const std::optional<double> joules = role.joules();
  if (!joules || tokens <= 0) return std::nullopt;
  return *joules / static_cast<double>(tokens);
}

}  // namespace

double RoundCost::attributed_cpu_seconds() const {
  return site.cpu_seconds() + split_server.cpu_seconds() + aggregator.cpu_seconds() + evaluation.cpu_seconds();
}

RoundCost& RoundCost::operator+=(const RoundCost& o) {
  site += o.site;
  split_server += o.split_server;
  aggregator += o.aggregator;
  evaluation += o.evaluation;
  process_cpu_seconds += o.process_cpu_seconds;
  machine_joules = machine_joules && o.machine_joules ? std::optional<double>(*machine_joules + *o.machine_joules)
                                                      : std::nullopt;
  return *this;
}

const std::vector<std::string>& cost_columns() {
  static const std::vector<std::string> kColumns = [] {
    std::vector<std::string> columns;
    for (const char* role : {"site", "split_server", "aggregator"}) columns.push_back(std::string(role) + "_cpu_seconds");
    columns.push_back("evaluation_cpu_seconds");
    columns.push_back("process_cpu_seconds");
    for (const char* role : {"site", "split_server", "aggregator"}) {
      columns.push_back(std::string(role) + "_cpu_us_per_token");
    }
    for (const char* role : {"site", "split_server", "aggregator"}) columns.push_back(std::string(role) + "_joules");
    for (const char* role : {"site", "split_server", "aggregator"}) {
      columns.push_back(std::string(role) + "_mj_per_token");
    }
    columns.push_back("machine_joules");
    return columns;
  }();
  return kColumns;
}

std::string cost_cells(const std::optional<RoundCost>& cost) {
  std::string cells;
  if (!cost) {
    for (size_t i = 0; i < cost_columns().size(); ++i) cells += ",";
    return cells;
  }
  const int64_t tokens = cost->tokens();
  for (const NamedRole& role : roles(*cost)) cells += "," + number(role.cost.cpu_seconds(), "%.4f");
  cells += "," + number(cost->evaluation.cpu_seconds(), "%.4f");
  cells += "," + number(cost->process_cpu_seconds, "%.4f");
  for (const NamedRole& role : roles(*cost)) cells += "," + optional_number(cpu_per_token(role.cost, tokens), "%.4f", 1e6);
  for (const NamedRole& role : roles(*cost)) cells += "," + optional_number(role.cost.joules(), "%.4f");
  for (const NamedRole& role : roles(*cost)) {
    cells += "," + optional_number(joules_per_token(role.cost, tokens), "%.6f", 1e3);
  }
  cells += "," + optional_number(cost->machine_joules, "%.4f");
  return cells;
}

json::Value cost_json(const RoundCost& cost) {
  const int64_t tokens = cost.tokens();
  auto role_json = [tokens](const RoleCost& role, bool per_token) {
    json::Value r = json::Value::object();
    r.set("cpu_seconds", role.cpu_seconds());
    r.set("wall_seconds", role.wall_seconds());
    r.set("joules", optional_json(role.joules()));
    if (per_token) {
      r.set("cpu_us_per_token", cpu_per_token(role, tokens) ? json::Value(*cpu_per_token(role, tokens) * 1e6)
                                                            : json::Value("n/a"));
      r.set("mj_per_token", optional_json(joules_per_token(role, tokens), 1e3));
    }
    r.set("shared_phases", role.shared_segments);
    json::Value phases = json::Value::object();
    for (size_t i = 0; i < metrics::kPhaseCount; ++i) {
      const metrics::PhaseCost& phase = role.phases[i];
      if (phase.wall_seconds <= 0 && phase.cpu_seconds <= 0) continue;
      json::Value p = json::Value::object();
      p.set("cpu_seconds", phase.cpu_seconds);
      p.set("wall_seconds", phase.wall_seconds);
      phases.set(metrics::phase_name(static_cast<Phase>(i)), std::move(p));
    }
    r.set("phases", std::move(phases));
    return r;
  };
  json::Value c = json::Value::object();
  c.set("train_tokens", tokens);
  for (const NamedRole& role : roles(cost)) c.set(role.name, role_json(role.cost, true));
  c.set("evaluation", role_json(cost.evaluation, false));
  c.set("process_cpu_seconds", cost.process_cpu_seconds);
  c.set("machine_joules", optional_json(cost.machine_joules));
  return c;
}

std::string cost_table(const RoundCost& total, const std::string& energy_status, int64_t workers) {
  const int64_t tokens = total.tokens();
  std::ostringstream md;
  md << "\n## Cost per token by role\n\n";
  md << "| role | CPU s | CPU us / token | wall s | energy J | mJ / token | CPU s by phase |\n";
  md << "|---|---|---|---|---|---|---|\n";
  auto row = [&](const char* name, const RoleCost& role, bool per_token) {
    std::string phases;
    for (size_t i = 0; i < metrics::kPhaseCount; ++i) {
      if (role.phases[i].cpu_seconds < 0.0005) continue;
      phases += (phases.empty() ? "" : ", ") + std::string(metrics::phase_name(static_cast<Phase>(i))) + " " +
                number(role.phases[i].cpu_seconds, "%.3f");
    }
    const std::optional<double> cpu_token = per_token ? cpu_per_token(role, tokens) : std::nullopt;
    const std::optional<double> joules = role.joules();
    const std::optional<double> joules_token = per_token ? joules_per_token(role, tokens) : std::nullopt;
    md << "| " << name << " | " << number(role.cpu_seconds(), "%.3f") << " | "
       << (cpu_token ? number(*cpu_token * 1e6, "%.2f") : "-") << " | " << number(role.wall_seconds(), "%.3f")
       << " | " << (joules ? number(*joules, "%.2f") : "n/a") << " | "
       << (joules_token ? number(*joules_token * 1e3, "%.4f") : joules ? "-" : "n/a") << " | "
       << (phases.empty() ? "-" : phases) << " |\n";
  };
  row("sites (all)", total.site, true);
  if (total.split_server.wall_seconds() > 0) row("split server", total.split_server, true);
  row("aggregator", total.aggregator, true);
  row("evaluation (the simulator's, no role)", total.evaluation, false);
  const double attributed = total.attributed_cpu_seconds();
  md << "| process total | " << number(total.process_cpu_seconds, "%.3f") << " | "
     << (tokens > 0 ? number(total.process_cpu_seconds / static_cast<double>(tokens) * 1e6, "%.2f") : "-")
     << " | | " << (total.machine_joules ? number(*total.machine_joules, "%.2f") : "n/a") << " | | not attributed "
     << number(total.process_cpu_seconds - attributed, "%.3f") << " |\n";
  md << "\nPer token: per training token of the sites (" << tokens
     << " target positions in all: steps x batch x seq_len). CPU seconds of a role's compute phases (forward, "
        "backward, optimizer, codec, aggregation) are the process's over the phase, so LibTorch's intra-op "
        "threads count for the role that called them; its wire and other phases count its own thread only "
        "(while it waits, its peer computes). Wall: time inside the role's phases. Energy: "
     << energy_status << ".";
  if (workers > 1) {
    md << " With federation.workers " << workers
       << " sites compute at once: overlapping phases count only their own thread's CPU (intra-op work is "
          "missed), so the roles' figures are lower bounds and more of the process is not attributed.";
  }
  const int64_t shared = total.site.shared_segments + total.split_server.shared_segments +
                         total.aggregator.shared_segments + total.evaluation.shared_segments;
  if (shared > 0) md << " " << shared << " phases overlapped another thread's compute.";
  md << "\n";
  return md.str();
}

}  // namespace cleave::simulate
