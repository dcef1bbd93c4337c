// cleave tokenize (--model FILE.gguf | --tokenizer tokenizer.json) [--file TEXT]
// [--bos] [--special] [--decode]: what a model's tokenizer makes of a text.
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/base_model.h"
#include "cli/commands.h"
#include "client/dataset.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/utf8.h"

namespace cleave::cli {
namespace {

// `bytes` as a double-quoted string: \" \\ \n \r \t escaped, and \xNN for a
// control byte or a byte of a character that is split across tokens.
std::string quoted(const std::string& bytes) {
  static const char* const kHex = "0123456789abcdef";
  std::string out = "\"";
  for (size_t at = 0; at < bytes.size();) {
    const auto byte = static_cast<unsigned char>(bytes[at]);
    const char* escape = byte == '"'    ? "\\\""
                         : byte == '\\' ? "\\\\"
                         : byte == '\n' ? "\\n"
                         : byte == '\r' ? "\\r"
                         : byte == '\t' ? "\\t"
                                        : nullptr;
    if (escape != nullptr) {
      out += escape;
      ++at;
      continue;
    }
    const size_t length = valid_utf8_length(
        reinterpret_cast<const unsigned char*>(bytes.data()) + at, bytes.size() - at);
    if (length == 0 || byte < 0x20 || byte == 0x7F) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
      ++at;
      continue;
    }
    out.append(bytes, at, length);
    at += length;
  }
  return out + "\"";
}

// A token as --decode shows it: the text it decodes to, quoted; a control
// token, which decodes to nothing, by its name.
std::string shown(const Tokenizer& tokenizer, TokenId id) {
  const TokenKind kind = tokenizer.vocab().kinds[id];
  if (kind == TokenKind::CONTROL || kind == TokenKind::UNKNOWN || kind == TokenKind::UNUSED) {
    return tokenizer.vocab().tokens[id];
  }
  return quoted(tokenizer.piece(id));
}

}  // namespace

ArgParser tokenize_parser() {
  return ArgParser(
             "cleave tokenize",
             "(--model FILE.gguf | --tokenizer tokenizer.json) [--file TEXT] [--bos] [--special] "
             "[--decode]",
             "Prints the token ids of the text (standard input without --file, read to its end\n"
             "and used as it is, final newline included) on one line, separated by spaces.\n"
             "With --decode, one token per line instead: the id, a tab, and what the token\n"
             "decodes to as a quoted string (\\\" \\\\ \\n \\r \\t escaped, \\xNN for a control "
             "byte\n"
             "or a byte of a character split across tokens); a control token, which decodes\n"
             "to nothing, shows its name unquoted, e.g. <|eot_id|>.\n"
             "Tokenizers: a GGUF's `llama` (SentencePiece) or `gpt2` (byte-level BPE) vocabulary\n"
             "(only the metadata is read, not the weights), or a Hugging Face tokenizer.json\n"
             "of byte-level BPE with BOS and EOS named by the tokenizer_config.json beside it.")
      .value("--model", "FILE", "a GGUF model (or Hugging Face checkpoint directory) whose tokenizer to use")
      .value("--tokenizer", "FILE", "a Hugging Face tokenizer.json to use instead")
      .value("--file", "FILE", "the text to tokenize (default: standard input)")
      .toggle("--bos", "put the BOS token first")
      .toggle("--special", "read special tokens written in the text (<|eot_id|>) as tokens")
      .toggle("--decode", "one token per line with the text it decodes to");
}

int run_tokenize(const ParsedArgs& args) {
  const std::optional<std::string> model = args.get("--model");
  const std::optional<std::string> tokenizer_json = args.get("--tokenizer");
  if (model.has_value() == tokenizer_json.has_value()) {
    throw UsageError("give the tokenizer with either --model or --tokenizer");
  }
  const Tokenizer tokenizer = model ? Tokenizer::from_gguf(*open_model_file(*model))
                                    : Tokenizer::from_tokenizer_json(*tokenizer_json);

  std::string text;
  if (const std::optional<std::string> file = args.get("--file")) {
    text = data::read_text_file(*file);
  } else {
    std::ostringstream input;
    input << std::cin.rdbuf();
    text = input.str();
  }

  const std::vector<TokenId> ids =
      tokenizer.encode(text, args.get_switch("--bos"), args.get_switch("--special"));
  if (args.get_switch("--decode")) {
    for (const TokenId id : ids) std::cout << id << '\t' << shown(tokenizer, id) << '\n';
    return 0;
  }
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i == 0 ? "" : " ") << ids[i];
  std::cout << '\n';
  return 0;
}

}  // namespace cleave::cli
