#include "aggregator/removed_sites.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace cleave::aggregator {
namespace {

bool same_file_state(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

std::string trimmed(const std::string& text) {
  const char* space = " \t\r";
  const size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

// What a Register's client id may be (and a certificate's node name is).
bool site_name(const std::string& name) {
  return !name.empty() && name.size() <= 128 &&
         std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

RemovedSitesList parse_removed_sites(const std::string& text, const std::string& path) {
  RemovedSitesList list;
  size_t start = 0;
  int line_number = 0;
  size_t end;
  while ((end = text.find('\n', start)) != std::string::npos) {
    ++line_number;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t comment = line.find('#');
    if (comment != std::string::npos) line.erase(comment);
    line = trimmed(line);
    if (line.empty()) continue;
    if (!site_name(line)) {
      list.problems.push_back(path + " line " + std::to_string(line_number) + ": '" + line.substr(0, 80) +
                              "' is not a site name (1..128 printable characters without spaces, one per line); "
                              "ignored");
      continue;
    }
    list.sites.insert(line);
  }
  const std::string unfinished = trimmed(text.substr(start));
  if (!unfinished.empty()) {
    list.problems.push_back(path + " line " + std::to_string(line_number + 1) + ": '" + unfinished.substr(0, 80) +
                            "' has no newline yet; it is read once the line is finished (echo NAME >> FILE "
                            "writes one)");
  }
  return list;
}

std::optional<RemovedSitesList> RemovedSitesFile::read_if_changed() {
  struct stat now {};
  const bool exists = ::stat(path_.c_str(), &now) == 0;
  if (!exists && errno != ENOENT) {
    throw std::runtime_error("cannot look at " + path_ + ": " + std::strerror(errno));
  }
  if (read_once_ && exists == existed_ && (!exists || same_file_state(now, seen_))) return std::nullopt;
  read_once_ = true;
  existed_ = exists;
  seen_ = now;
  if (!exists) return RemovedSitesList{};
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path_ + ": check its permissions");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_removed_sites(text, path_);
}

}  // namespace cleave::aggregator
