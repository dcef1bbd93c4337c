// cleave plot: one chart of a metrics.csv column over the rounds of several
// runs (`cleave simulate` run directories), to compare methods side by side.
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "simulate/line_chart.h"
#include "simulate/png_image.h"

namespace cleave::cli {
namespace {

// A CSV line's cells; a CRLF line end (Python's csv.writer writes one) is not part of the last cell.
std::vector<std::string> cells_of(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> cells;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.push_back("");
  return cells;
}

// The run's (x_column, column) points; rows with either cell empty are skipped.
simulate::Series read_series(const std::string& name, const std::string& run, const std::string& x_column,
                             const std::string& column) {
  const std::string path = run.size() > 4 && run.substr(run.size() - 4) == ".csv" ? run : run + "/metrics.csv";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path + ": give a `cleave simulate` run directory or its metrics.csv");
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path + " is empty");
  const std::vector<std::string> header = cells_of(line);
  size_t round_at = header.size(), value_at = header.size();
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == x_column) round_at = i;
    if (header[i] == column) value_at = i;
  }
  auto missing = [&](const std::string& flag, const std::string& name) {
    std::string known;
    for (const std::string& h : header) known += (known.empty() ? "" : ", ") + h;
    return UsageError(flag + " " + name + " is not a column of " + path + " (" + known + ")");
  };
  if (round_at == header.size()) {
    if (x_column == "round") throw std::runtime_error(path + " has no `round` column: not a metrics.csv");
    throw missing("--x", x_column);
  }
  if (value_at == header.size()) throw missing("--column", column);
  simulate::Series series;
  series.name = name;
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = cells_of(line);
    if (cells.size() <= std::max(round_at, value_at) || cells[value_at].empty() || cells[round_at].empty()) continue;
    try {
      series.x.push_back(std::stod(cells[round_at]));
      series.y.push_back(std::stod(cells[value_at]));
    } catch (const std::exception&) {
      throw std::runtime_error(path + ": a row has a non-number in `" + x_column + "` or `" + column + "`: " + line);
    }
  }
  return series;
}

}  // namespace

ArgParser plot_parser() {
  return ArgParser("cleave plot", "--run NAME=DIR [--run NAME=DIR ...] --out PLOT.png [--column C] [--x C ...] [--title T]",
                   "Draws one metrics.csv column over the rounds of several `cleave simulate` runs\n"
                   "in one chart (a line per run, named NAME in the legend), e.g. the held-out\n"
                   "perplexity of a fleet with and without DP; with --x, over other columns\n"
                   "(e.g. cumulative_train_tokens, cumulative_bytes), a panel per --x.")
      .value("--run", "NAME=DIR", "a run directory (or its metrics.csv) and its legend name; repeat for each")
      .value("--column", "C", "the metrics.csv column to plot").defaults_to("eval_perplexity")
      .value("--x", "C", "the column on the x axis; repeat for a panel per column").defaults_to("round")
      .value("--out", "PLOT.png", "where to write the PNG")
      .value("--title", "T", "the chart's title (default: the column)")
      .value("--log-y", "BOOL", "plot log10 of the values: true or false").defaults_to("false");
}

int run_plot(const ParsedArgs& args) {
  const std::vector<std::string> runs = args.all("--run");
  if (runs.empty()) throw UsageError("--run: give at least one NAME=DIR");
  const std::string out = args.require("--out");
  const std::string column = args.require("--column");
  const std::string log_y = args.require("--log-y");
  if (log_y != "true" && log_y != "false") throw UsageError("--log-y must be true or false, got " + log_y);
  const std::vector<std::string> x_columns = args.all("--x");
  std::vector<simulate::Panel> panels;
  for (const std::string& x_column : x_columns) {
    simulate::Panel panel;
    panel.title = args.get("--title").value_or(column);
    panel.x_label = x_column;
    panel.y_label = log_y == "true" ? "log10 " + column : column;
    for (size_t i = 0; i < runs.size(); ++i) {
      const size_t eq = runs[i].find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == runs[i].size()) {
        throw UsageError("--run " + runs[i] + ": expected NAME=DIR");
      }
      simulate::Series series = read_series(runs[i].substr(0, eq), runs[i].substr(eq + 1), x_column, column);
      series.color = simulate::series_color(i);
      if (log_y == "true") {
        for (double& y : series.y) {
          if (!(y > 0)) throw std::runtime_error("--log-y: " + series.name + " has a value <= 0 in " + column);
          y = std::log10(y);
        }
      }
      if (x_column == x_columns.front()) {
        std::cout << series.name << ": " << series.x.size() << (x_column == "round" ? " rounds\n" : " points\n");
      }
      panel.series.push_back(std::move(series));
    }
    panels.push_back(std::move(panel));
  }
  simulate::write_png(simulate::render_chart(panels), out);
  std::cout << "wrote " << out << "\n";
  return 0;
}

}  // namespace cleave::cli
