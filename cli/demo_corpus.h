// The built-in demo's training data: short clinical-style notes from a small
// seeded grammar. Conditions come with their own symptoms, drugs and tests,
// so there is structure for a model to learn beyond word frequencies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/vocab_builder.h"

namespace cleave::cli {

// `n_notes` notes of two to four sentences each; the same for the same seed
// on every platform (own index draws, no std:: distributions).
std::vector<std::string> clinical_notes(size_t n_notes, uint64_t seed);

// The condition a note is about (every note says "The <test> confirmed <condition>.").
std::string note_condition(const std::string& note);

// The demo's base model, written as GGUF with `vocab`: a random Llama of dim
// 128, 4 blocks, 4 heads (2 kv), ffn 344 (about 0.7M parameters in the
// blocks: a few hundred training steps take a minute on 2 cores).
void write_demo_model(const std::string& path, const Vocabulary& vocab, uint64_t seed);

}  // namespace cleave::cli
