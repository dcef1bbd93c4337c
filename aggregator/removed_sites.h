// The operator's list of sites kept out of the federation without revoking
// their certificates: a text file, `removed_sites` in the aggregator's
// checkpoint_dir, one site name per line; `#` starts a comment, blank lines
// are ignored. The aggregator re-reads it whenever it changes (it looks on
// every tick), so removing a site is
//
//   echo site-b >> /var/lib/cleave-aggregator/removed_sites
//
// and deleting the line lets the site register again. The file is its own
// persistence: a restarted aggregator reads it before its first round.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cleave::aggregator {

struct RemovedSitesList {
  std::set<std::string> sites;
  // "removed_sites line 3: 'site b' is not a site name ...", one per bad line.
  std::vector<std::string> problems;
};

// Parses the file's text. A last line without its newline is left out: it is
// still being written (the change that completes it is read again).
RemovedSitesList parse_removed_sites(const std::string& text, const std::string& path);

class RemovedSitesFile {
 public:
  explicit RemovedSitesFile(std::string path) : path_(std::move(path)) {}

  // The list when the file changed since the last call (the first call reads
  // it; a missing file is an empty list), nullopt when it did not. Throws
  // std::runtime_error naming the file when it exists but cannot be read.
  std::optional<RemovedSitesList> read_if_changed();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool read_once_ = false;
  bool existed_ = false;
  struct stat seen_ {};
};

}  // namespace cleave::aggregator
