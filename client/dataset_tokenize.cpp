// The only part of the data pipeline that needs the tokenizer, kept apart so
// that reading and batching link without it.
#include <algorithm>

#include "client/dataset.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace cleave::data {

namespace {

Example tokenize_exchange(const Tokenizer& tokenizer, const Record& record, ChatFormat format) {
  const ChatExchange exchange = format_exchange(format, record.prompt, record.text);
  std::vector<TextPart> conversation = exchange.context;
  conversation.insert(conversation.end(), exchange.reply.begin(), exchange.reply.end());
  const std::vector<TokenId> context = tokenizer.encode(exchange.context, /*add_bos=*/false);
  Example example;
  example.tokens = tokenizer.encode(conversation, /*add_bos=*/false);
  // Tokenized whole, the conversation begins with the context's tokens unless
  // a token spans the boundary (Llama 2's "]" and " answer" never merge, but
  // a vocabulary could): such a token is trained, with the reply.
  const size_t n_context = static_cast<size_t>(
      std::mismatch(context.begin(), context.end(), example.tokens.begin(), example.tokens.end())
          .first -
      context.begin());
  // Target i predicts tokens[i + 1].
  example.loss_mask.assign(example.tokens.size() - 1, 0);
  for (size_t i = 0; i < example.loss_mask.size(); ++i) example.loss_mask[i] = i + 1 >= n_context;
  return example;
}

// The template's start on one line, for an error message.
std::string quote_start(const std::string& text, size_t length) {
  std::string quoted;
  for (size_t i = 0; i < text.size() && i < length; ++i) {
    if (text[i] == '\n') {
      quoted += "\\n";
    } else {
      quoted += text[i];
    }
  }
  return "\"" + quoted + (text.size() > length ? "...\"" : "\"");
}

std::string format_names() {
  std::string names;
  for (const auto& [name, format] : chat_formats()) names += (names.empty() ? "" : " | ") + name;
  return names;
}

void check_special_tokens(const Tokenizer& tokenizer, ChatFormat format,
                          const std::string& model_path) {
  for (const std::string& marker : chat_format_special_tokens(format)) {
    const std::vector<TokenId> ids = tokenizer.encode(marker, false, /*parse_special=*/true);
    if (ids.size() == 1 && tokenizer.vocab().kinds[ids[0]] != TokenKind::NORMAL) continue;
    throw DataError(model_path + ": data.chat_template " + chat_format_name(format) +
                    ": the model's vocabulary has no special token " + marker + ", which the " +
                    chat_format_name(format) + " format writes: is the model of that family? " +
                    "data.chat_template: auto reads the model's own template");
  }
}

}  // namespace

Example tokenize_record(const Tokenizer& tokenizer, const Record& record,
                        std::optional<ChatFormat> chat) {
  if (chat && record.has_prompt) return tokenize_exchange(tokenizer, record, *chat);
  const std::vector<TokenId> text = tokenizer.encode(record.text, /*add_bos=*/false);
  if (!record.has_prompt) return make_text_example(text, tokenizer.bos(), tokenizer.eos());
  const std::vector<TokenId> prompt = tokenizer.encode(record.prompt, /*add_bos=*/false);
  return make_prompt_example(prompt, text, tokenizer.bos(), tokenizer.eos());
}

std::vector<Example> tokenize_records(const Tokenizer& tokenizer,
                                      const std::vector<Record>& records,
                                      std::optional<ChatFormat> chat) {
  std::vector<Example> examples;
  examples.reserve(records.size());
  for (const Record& record : records) examples.push_back(tokenize_record(tokenizer, record, chat));
  return examples;
}

std::vector<std::string> chat_template_settings() {
  std::vector<std::string> settings = {"none", "auto"};
  for (const auto& [name, format] : chat_formats()) settings.push_back(name);
  return settings;
}

std::optional<ChatFormat> choose_chat_format(const std::string& setting,
                                             const Tokenizer& tokenizer,
                                             const std::string& model_path) {
  if (setting == "none") return std::nullopt;
  std::optional<ChatFormat> format;
  if (setting == "auto") {
    const std::string& chat_template = tokenizer.vocab().chat_template;
    if (chat_template.empty()) return std::nullopt;
    format = detect_chat_format(chat_template);
    if (!format) {
      throw DataError(model_path + ": data.chat_template auto: the model's chat template is none "
                      "cleave recognises (it knows " + format_names() + "): " +
                      quote_start(chat_template, 160) +
                      "; set data.chat_template: none to train on prompt and completion as they "
                      "are, or name the format it is written in");
    }
  } else {
    for (const auto& [name, known] : chat_formats()) {
      if (name == setting) format = known;
    }
    if (!format) {
      throw DataError("data.chat_template " + setting + ": expected none | auto | " +
                      format_names());
    }
  }
  check_special_tokens(tokenizer, *format, model_path);
  return format;
}

}  // namespace cleave::data
