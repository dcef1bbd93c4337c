// Writing a tokenizer's GGUF metadata to a scratch file and reading it back,
// for the tokenizer tests.
#pragma once

#include <stdexcept>
#include <string>

#include "model/gguf.h"
#include "model/tokenizer.h"
#include "tests/support/shared_data.h"

namespace cleave::test {

// `writer` as <scratch dir `scratch`>/<name>.gguf; returns the path.
inline std::string write_scratch_gguf(const gguf::Writer& writer, const std::string& scratch,
                                      const std::string& name) {
  const std::string path = scratch_dir(scratch) + "/" + name + ".gguf";
  writer.write(path);
  return path;
}

// The message Tokenizer::from_gguf throws for the file, or "no error".
inline std::string from_gguf_error(const std::string& path) {
  try {
    Tokenizer::from_gguf(*gguf::File::open(path));
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "no error";
}

}  // namespace cleave::test
