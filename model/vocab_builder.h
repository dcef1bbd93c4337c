// Building a SentencePiece-style (`llama`) vocabulary for a corpus, for the
// built-in demo and tests that need a tokenizer matched to generated text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace cleave {

struct VocabBuildOptions {
  // The most frequent words that get whole-word pieces; 0 keeps every word.
  int64_t max_words = 0;
};

// The vocabulary, in llama's order: <unk> (0), <s> (1), </s> (2), the byte
// fallback tokens <0x00>..<0xFF> (3..258), then every character of the corpus
// and, for each word that follows a space, "▁word" and all its prefixes
// ("▁w", "▁wo", ...). Scores are log relative frequencies. Because only
// "▁"-prefixed pieces are longer than one character, the SentencePiece merge
// can only grow a word from its "▁" rightwards, through the prefixes, so a
// known word always ends as one token; anything else falls back to characters
// and bytes, so every text round-trips. A word is a run of characters other
// than whitespace and ASCII punctuation. Deterministic for the same texts.
Vocabulary build_vocabulary(const std::vector<std::string>& texts,
                            const VocabBuildOptions& options = {});

}  // namespace cleave
