#include "model/chat_template.h"

#include <stdexcept>

namespace cleave {
namespace {

// How a format writes one exchange:
//   before_prompt prompt after_prompt | before_completion completion end_of_turn
// with the loss from the bar on.
struct Layout {
  const char* before_prompt;
  const char* after_prompt;
  const char* before_completion;
  const char* end_of_turn;
  bool trim;  // the template trims the messages (Jinja's `| trim`, Python's strip())
};

Layout layout_of(ChatFormat format) {
  switch (format) {
    // Meta-Llama-3-8B-Instruct: bos_token, then per message
    // '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>'.
    case ChatFormat::llama3:
      return {"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
              "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "", "<|eot_id|>",
              true};
    // Qwen2-Instruct, SmolLM-Instruct: '<|im_start|>' + role + '\n' + content +
    // '<|im_end|>' + '\n'. The turn ends at <|im_end|>: the newline after it
    // belongs to the next turn's start. No default system message (Qwen2's
    // template adds one; llama.cpp's chatml does not).
    case ChatFormat::chatml:
      return {"<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", "", "<|im_end|>",
              false};
    // Llama-2-7b-chat-hf: bos_token + '[INST] ' + content.strip() + ' [/INST]'
    // for the user, ' ' + content.strip() + ' ' + eos_token for the assistant,
    // as Meta's reference chat_completion encodes it.
    case ChatFormat::llama2:
      return {"<s>[INST] ", " [/INST]", " ", " </s>", true};
  }
  throw std::invalid_argument("unknown chat format " +
                              std::to_string(static_cast<int>(format)));
}

std::string trim_whitespace(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace

const std::vector<std::pair<std::string, ChatFormat>>& chat_formats() {
  static const std::vector<std::pair<std::string, ChatFormat>> formats = {
      {"llama3", ChatFormat::llama3}, {"chatml", ChatFormat::chatml}, {"llama2", ChatFormat::llama2}};
  return formats;
}

const std::string& chat_format_name(ChatFormat format) {
  for (const auto& [name, known] : chat_formats()) {
    if (known == format) return name;
  }
  throw std::invalid_argument("unknown chat format " +
                              std::to_string(static_cast<int>(format)));
}

std::optional<ChatFormat> detect_chat_format(const std::string& chat_template) {
  const auto contains = [&](const char* marker) {
    return chat_template.find(marker) != std::string::npos;
  };
  // In llama.cpp's order, so a template is read as llama.cpp reads it.
  if (contains("<|im_start|>")) {
    // Phi-4 (<|im_sep|>) and SmolVLM (<end_of_utterance>) use the marker
    // but write turns differently.
    if (contains("<|im_sep|>") || contains("<end_of_utterance>")) return std::nullopt;
    return ChatFormat::chatml;
  }
  if (contains("[INST]")) {
    // Mistral's templates: [SYSTEM_PROMPT] (v7), [AVAILABLE_TOOLS] (v3) and
    // the v1 system message put their spaces elsewhere.
    if (contains("[SYSTEM_PROMPT]") || contains("[AVAILABLE_TOOLS]") ||
        contains("' [INST] ' + system_message")) {
      return std::nullopt;
    }
    return ChatFormat::llama2;
  }
  if (contains("<|start_header_id|>") && contains("<|end_header_id|>")) return ChatFormat::llama3;
  return std::nullopt;
}

std::vector<std::string> chat_format_special_tokens(ChatFormat format) {
  switch (format) {
    case ChatFormat::llama3:
      return {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    case ChatFormat::chatml: return {"<|im_start|>", "<|im_end|>"};
    case ChatFormat::llama2: return {"<s>", "</s>"};
  }
  throw std::invalid_argument("unknown chat format " +
                              std::to_string(static_cast<int>(format)));
}

ChatExchange format_exchange(ChatFormat format, const std::string& prompt,
                             const std::string& completion) {
  const Layout layout = layout_of(format);
  const auto content = [&](const std::string& text) {
    return layout.trim ? trim_whitespace(text) : text;
  };
  ChatExchange exchange;
  exchange.context = {{layout.before_prompt, true},
                      {content(prompt), false},
                      {layout.after_prompt, true}};
  exchange.reply = {{layout.before_completion, true},
                    {content(completion), false},
                    {layout.end_of_turn, true}};
  return exchange;
}

}  // namespace cleave
