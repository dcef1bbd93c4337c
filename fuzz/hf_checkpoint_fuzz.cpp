// libFuzzer target: bytes as the files of a Hugging Face checkpoint directory,
// converted as `cleave convert` and `--model DIR` do: config.json
// (read_hf_config), the safetensors file or shards and their index
// (hf_to_gguf, with the vocabulary copied from a tiny GGUF so the tensors are
// reached without a valid tokenizer.json), and tokenizer.json with
// tokenizer_config.json (Tokenizer::from_tokenizer_json,
// add_tokenizer_json_metadata). A bad checkpoint must be refused with
// std::runtime_error naming the file; a crash, a sanitizer report, another
// exception, a hang or an allocation beyond -rss_limit_mb is a finding. What
// the converter accepts must be a GGUF image its reader opens.
//
// Input: files glued together, each "CLHF", one byte choosing its name
// (kFiles[byte % 7]), then its contents; bytes before the first "CLHF" are
// ignored. A later file of the same name replaces an earlier one.
#include <ATen/Parallel.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "convert/hf_checkpoint.h"
#include "convert/hf_tokenizer.h"
#include "fuzz/fuzz_support.h"
#include "model/gguf.h"
#include "model/model_writer.h"
#include "model/tokenizer.h"

namespace {

using namespace cleave;
namespace fs = std::filesystem;

const char* const kFiles[] = {"config.json",
                              "model.safetensors",
                              "tokenizer.json",
                              "tokenizer_config.json",
                              "model.safetensors.index.json",
                              "model-00001-of-00002.safetensors",
                              "model-00002-of-00002.safetensors"};
constexpr size_t kFileCount = sizeof(kFiles) / sizeof(kFiles[0]);

// Eight SentencePiece pieces: fewer than any vocab_size the seeds give.
Vocabulary tiny_vocabulary() {
  Vocabulary vocab;
  vocab.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81the", "\xE2\x96\x81" "a", "e", "t", "h"};
  vocab.scores = {0, 0, 0, -1, -2, -3, -4, -5};
  vocab.kinds = {TokenKind::UNKNOWN, TokenKind::CONTROL, TokenKind::CONTROL, TokenKind::NORMAL,
                 TokenKind::NORMAL,  TokenKind::NORMAL,  TokenKind::NORMAL,  TokenKind::NORMAL};
  return vocab;
}

struct Scratch {
  std::string dir;        // the checkpoint, rewritten for every input
  std::string vocab_gguf; // a GGUF with only a tokenizer, for --vocab
};

const Scratch& scratch() {
  static const Scratch s = [] {
    Scratch s;
    const std::string root = fuzz::temporary_directory("cleave-hf-fuzz");
    s.dir = root + "/checkpoint";
    fs::create_directories(s.dir);
    s.vocab_gguf = root + "/vocab.gguf";
    gguf::Writer writer;
    writer.set("general.architecture", gguf::Value::str("llama"));
    set_tokenizer_metadata(writer, tiny_vocabulary());
    writer.write(s.vocab_gguf);
    return s;
  }();
  return s;
}

// Writes the input's files into the scratch directory; which were given.
std::map<std::string, bool> write_files(const uint8_t* data, size_t size) {
  const Scratch& s = scratch();
  for (const char* name : kFiles) fs::remove(s.dir + "/" + name);
  std::map<std::string, bool> given;
  for (const net::Bytes& chunk : fuzz::split_at_magic(data, size, "CLHF")) {
    if (chunk.size() < 5 || chunk[0] != 'C' || chunk[1] != 'L' || chunk[2] != 'H' || chunk[3] != 'F') continue;
    const std::string name = kFiles[chunk[4] % kFileCount];
    std::ofstream out(s.dir + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(chunk.data() + 5), static_cast<std::streamsize>(chunk.size() - 5));
    given[name] = true;
  }
  return given;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  (void)scratch();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Scratch& s = scratch();
  std::map<std::string, bool> given = write_files(data, size);
  std::vector<uint8_t> converted;
  try {
    convert::HfImportOptions options;
    options.vocab_gguf = s.vocab_gguf;
    converted = convert::hf_to_gguf(s.dir, options).to_bytes();
  } catch (const std::runtime_error&) {
  }
  if (!converted.empty()) {
    try {
      (void)gguf::File::from_bytes("converted", std::move(converted));
    } catch (const std::runtime_error&) {
      __builtin_trap();  // the converter wrote a GGUF its own reader refuses
    }
  }
  if (given["tokenizer.json"]) {
    try {
      (void)Tokenizer::from_tokenizer_json(s.dir + "/tokenizer.json");
    } catch (const std::runtime_error&) {
    }
    try {
      gguf::Writer writer;
      convert::add_tokenizer_json_metadata(writer, s.dir, 1 << 12);
    } catch (const std::runtime_error&) {
    }
  }
  return 0;
}
