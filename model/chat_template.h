// Chat formats: how instruction-tuned Llama-family models expect a
// conversation to be written. A model names its format by the Jinja chat
// template it carries (tokenizer.chat_template in GGUF, chat_template in a
// Hugging Face tokenizer_config.json); cleave renders no Jinja but, as
// llama.cpp's llm_chat_detect_template, recognises the format by the markers
// the template contains and writes the conversation itself.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/tokenizer.h"

namespace cleave {

enum class ChatFormat {
  llama3,  // <|start_header_id|>user<|end_header_id|> ... <|eot_id|> (Llama 3, 3.1, 3.2)
  chatml,  // <|im_start|>user ... <|im_end|> (Qwen2, SmolLM)
  llama2,  // <s>[INST] ... [/INST] ... </s> (Llama 2 chat)
};

// Every format with its name (as llama.cpp names it: "llama3", "chatml", "llama2").
const std::vector<std::pair<std::string, ChatFormat>>& chat_formats();
const std::string& chat_format_name(ChatFormat format);

// The format a chat template is written for, or nullopt for a template cleave
// does not recognise (including formats that share a marker with one it
// knows, such as Mistral's [INST] templates with [AVAILABLE_TOOLS]).
std::optional<ChatFormat> detect_chat_format(const std::string& chat_template);

// The special tokens a format writes, each of which the vocabulary must have
// as one token.
std::vector<std::string> chat_format_special_tokens(ChatFormat format);

// One exchange in a format: the user's prompt and the assistant's completion.
// The format's own text is in parts with parse_special, the prompt and the
// completion in parts without, so a "<|eot_id|>" typed in them stays text.
// Trimmed of surrounding whitespace where the model's template trims them
// (llama3, llama2). The beginning of text is the format's (Llama 3's
// <|begin_of_text|>, Llama 2's <s>; ChatML has none): encode without add_bos.
struct ChatExchange {
  std::vector<TextPart> context;  // up to the assistant's first word: no loss
  std::vector<TextPart> reply;    // the completion and the end of its turn
};
ChatExchange format_exchange(ChatFormat format, const std::string& prompt,
                             const std::string& completion);

}  // namespace cleave
