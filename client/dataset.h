// Training and evaluation data: records read from JSONL or plain text, and
// examples (token ids plus a loss mask) made from them.
//
// JSONL: one JSON object per line, either {"text": ...} (loss on every token)
// or {"prompt": ..., "completion": ...} (loss on the completion only); other
// keys are ignored, blank lines skipped. Any other file is plain text: its
// documents are separated by blank lines (lines of only whitespace), each
// document keeping its inner newlines, so paragraphs or stories become
// separate examples. For llama.cpp-style perplexity over a whole text file use
// read_text_file() and tokenize it once instead (see batching.h).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cleave {
class Tokenizer;
enum class ChatFormat;
}

namespace cleave::data {

// Unreadable or malformed data; the message names the file (and line).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One document as read from disk, before tokenization.
struct Record {
  std::string prompt;       // context without loss; meaningful when has_prompt
  std::string text;         // the text, or the completion of the prompt
  bool has_prompt = false;
  std::string source;       // the file it came from
  int64_t line = 0;         // its line in a JSONL file (1-based); 0 for plain text
  std::string label;        // the ReadOptions::label_field value, if asked for
};

struct ReadOptions {
  // A JSONL field copied into Record::label (a string, or an integer written
  // in decimal), e.g. "source" for a Dirichlet partition over sources. Empty:
  // none. When set, a line without it is an error. Plain text has no fields.
  std::string label_field;
};

// Reads one file: JSONL when the name ends in ".jsonl", else plain text.
// Throws DataError for a missing or empty file, a malformed line, a line without "text" or
// "prompt"+"completion", or a value that is not a string is an error naming
// the file and line: "data/x.jsonl:17: expected a JSON object with \"text\" or
// \"prompt\"+\"completion\": column 3: ...". A UTF-8 byte order mark and
// Windows line ends are accepted.
std::vector<Record> read_records(const std::string& path, const ReadOptions& options = {});
// The same for `contents` already read from `path` (which only names it and
// chooses JSONL or plain text).
std::vector<Record> records_from_text(std::string_view contents, const std::string& path,
                                      const ReadOptions& options = {});
// Several files, concatenated in the order given.
std::vector<Record> read_records(const std::vector<std::string>& paths,
                                 const ReadOptions& options = {});

bool is_jsonl_path(const std::string& path);
// A whole file as bytes; the error names the file if it cannot be read.
std::string read_text_file(const std::string& path);
// Plain-text documents: runs of lines separated by blank lines, trimmed of
// leading and trailing blank lines. Empty text gives no documents.
std::vector<std::string> split_documents(std::string_view text);

// One tokenized example. loss_mask has one entry per target position:
// loss_mask[i] == 1 when tokens[i + 1] is trained on as the prediction from
// tokens[0..i], so loss_mask.size() == tokens.size() - 1.
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;

  int64_t n_targets() const;  // positions with loss_mask 1
};

// BOS + text + EOS, every target trained on.
Example make_text_example(const std::vector<int32_t>& text_tokens, int32_t bos, int32_t eos);
// BOS + prompt + completion + EOS with no loss on predicting prompt tokens:
// the first trained target is the first completion token (predicted from the
// last prompt token), the last is EOS.
Example make_prompt_example(const std::vector<int32_t>& prompt_tokens,
                            const std::vector<int32_t>& completion_tokens, int32_t bos,
                            int32_t eos);

// Tokenizes records (prompt and completion separately, each encoded without
// BOS) into examples as above. Defined in dataset_tokenize.cpp.
//
// With a chat format (model/chat_template.h) a prompt/completion record is
// instead one exchange in that format: user turn, assistant turn, tokenized
// as one text in which only the format's own markers become special tokens,
// with no BOS or EOS but the format's. The targets from the completion's first
// token through the end of the assistant's turn (<|eot_id|>, <|im_end|>,
// </s>) are trained, nothing before. Text records are unchanged.
Example tokenize_record(const Tokenizer& tokenizer, const Record& record,
                        std::optional<ChatFormat> chat = std::nullopt);
std::vector<Example> tokenize_records(const Tokenizer& tokenizer,
                                      const std::vector<Record>& records,
                                      std::optional<ChatFormat> chat = std::nullopt);

// data.chat_template: "none", "auto" or a chat format's name.
std::vector<std::string> chat_template_settings();
// The chat format for a setting: none -> nullopt (records as they are); auto
// -> the format of the model's chat template, or nullopt when the model has
// none; a name -> that format. Throws DataError, naming `model_path`, for a
// template auto does not recognise (quoting its start) or a format whose
// special tokens the model's vocabulary lacks.
std::optional<ChatFormat> choose_chat_format(const std::string& setting,
                                             const Tokenizer& tokenizer,
                                             const std::string& model_path);

}  // namespace cleave::data
