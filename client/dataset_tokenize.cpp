// The only part of the data pipeline that needs the tokenizer, kept apart so
// that reading and batching link without it.
#include "client/dataset.h"
#include "model/tokenizer.h"

namespace cleave::data {

Example tokenize_record(const Tokenizer& tokenizer, const Record& record) {
  const std::vector<TokenId> text = tokenizer.encode(record.text, /*add_bos=*/false);
  if (!record.has_prompt) return make_text_example(text, tokenizer.bos(), tokenizer.eos());
  const std::vector<TokenId> prompt = tokenizer.encode(record.prompt, /*add_bos=*/false);
  return make_prompt_example(prompt, text, tokenizer.bos(), tokenizer.eos());
}

std::vector<Example> tokenize_records(const Tokenizer& tokenizer,
                                      const std::vector<Record>& records) {
  std::vector<Example> examples;
  examples.reserve(records.size());
  for (const Record& record : records) examples.push_back(tokenize_record(tokenizer, record));
  return examples;
}

}  // namespace cleave::data
