// The blocks a site runs and trains adapters for, and so the blocks of the
// aggregator's global client-side adapters. One struct for three layouts:
//   u_shaped: [0, cut_layer) and [top_cut, L) at the site, [cut_layer,
//             top_cut) on the split server, which sees activations and
//             gradients only;
//   vanilla:  [0, cut_layer) at the site, the rest and the labels (the
//             site's text) on the split server;
//   none:     every block at the site (federation without split learning).
// Header-only and LibTorch-free: the aggregator, the sites and the wire use it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "split/split_messages.h"

namespace cleave::split {

enum class SiteLayout : uint8_t { none = 0, vanilla = 1, u_shaped = 2 };

struct SiteBlocks {
  SiteLayout layout = SiteLayout::none;
  int32_t cut_layer = 0;   // vanilla, u_shaped
  int32_t top_cut = 0;     // u_shaped

  bool contains(int64_t layer) const {
    switch (layout) {
      case SiteLayout::none: return true;
      case SiteLayout::vanilla: return layer < cut_layer;
      case SiteLayout::u_shaped: return layer < cut_layer || layer >= top_cut;
    }
    return false;
  }
  // For lora::AdapterSet::create's keep_layer.
  auto keep_layer() const {
    return [blocks = *this](int64_t layer) { return blocks.contains(layer); };
  }
  bool operator==(const SiteBlocks& o) const {
    return layout == o.layout && cut_layer == o.cut_layer && top_cut == o.top_cut;
  }
  bool operator!=(const SiteBlocks& o) const { return !(*this == o); }

  // Throws std::invalid_argument naming `prefix` + "cut_layer" / "top_cut"
  // when the blocks do not fit a model of `n_layers` blocks.
  void validate(int64_t n_layers, const std::string& prefix) const {
    if (layout == SiteLayout::none) return;
    const std::string L = std::to_string(n_layers);
    if (cut_layer < 1 || cut_layer >= n_layers) {
      throw std::invalid_argument(prefix + "cut_layer " + std::to_string(cut_layer) + " must be in [1, " +
                                  std::to_string(n_layers - 1) + "]: the sites run blocks [0, cut_layer) and " +
                                  "the split server at least one (the model has " + L + ")");
    }
    if (layout == SiteLayout::u_shaped && (top_cut <= cut_layer || top_cut > n_layers)) {
      throw std::invalid_argument(prefix + "top_cut " + std::to_string(top_cut) + " must be in (cut_layer " +
                                  std::to_string(cut_layer) + ", " + L + "] for the model's " + L +
                                  " blocks: u_shaped leaves blocks [cut_layer, top_cut) to the split server " +
                                  "(0: the last block)");
    }
  }

  // "u_shaped, cut_layer 2, top_cut 7", "vanilla, cut_layer 2", "every block (no split)"
  std::string describe() const {
    switch (layout) {
      case SiteLayout::none: return "every block (no split)";
      case SiteLayout::vanilla: return "vanilla, cut_layer " + std::to_string(cut_layer);
      case SiteLayout::u_shaped:
        return "u_shaped, cut_layer " + std::to_string(cut_layer) + ", top_cut " + std::to_string(top_cut);
    }
    return "an unknown layout " + std::to_string(static_cast<int>(layout));
  }
};

// The site's blocks in split `mode` at `cut_layer` (and in u_shaped
// `top_cut`, where 0 means the last block, n_layers - 1).
inline SiteBlocks site_blocks(SplitMode mode, int64_t cut_layer, int64_t top_cut, int64_t n_layers) {
  if (mode == SplitMode::vanilla) return {SiteLayout::vanilla, static_cast<int32_t>(cut_layer), 0};
  return {SiteLayout::u_shaped, static_cast<int32_t>(cut_layer),
          static_cast<int32_t>(top_cut > 0 ? top_cut : n_layers - 1)};
}

// Every block at the site: federation without split learning.
inline SiteBlocks all_blocks() { return {}; }

}  // namespace cleave::split
