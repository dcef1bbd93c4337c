// Chat formats recognised from the templates models publish, and one exchange
// written out in each.
#include "model/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "tests/support/shared_data.h"

namespace cleave {
namespace {

// The chat_template of tokenizer_config.json, as published.
// Qwen/Qwen2-7B-Instruct.
const std::string kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
// HuggingFaceTB/SmolLM-135M-Instruct.
const std::string kSmolLm =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";
// meta-llama/Llama-2-7b-chat-hf.
const std::string kLlama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}";
// google/gemma-2-2b-it.
const std::string kGemma2 =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
    "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\n'}}{% endif %}";
// microsoft/phi-4 (its turns use <|im_start|> but separate the role with <|im_sep|>).
const std::string kPhi4 =
    "{% for message in messages %}{% if (message['role'] == 'system') %}"
    "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + "
    "'<|im_end|>'}}{% elif (message['role'] == 'assistant') %}"
    "{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

std::string joined(const std::vector<TextPart>& parts) {
  std::string text;
  for (const TextPart& part : parts) text += part.text;
  return text;
}

TEST(ChatTemplateDetect, PublishedTemplates) {
  EXPECT_EQ(detect_chat_format(kQwen2), ChatFormat::chatml);
  EXPECT_EQ(detect_chat_format(kSmolLm), ChatFormat::chatml);
  EXPECT_EQ(detect_chat_format(kLlama2), ChatFormat::llama2);
  EXPECT_EQ(detect_chat_format(kGemma2), std::nullopt);
  EXPECT_EQ(detect_chat_format(kPhi4), std::nullopt);
  EXPECT_EQ(detect_chat_format(""), std::nullopt);
  // Mistral's [INST] templates with tools (v3) or a system prompt (v7) write
  // their spaces differently from Llama 2.
  EXPECT_EQ(detect_chat_format("{{ '[AVAILABLE_TOOLS] [' }}{{ '[INST] ' + message['content'] }}"),
            std::nullopt);
  EXPECT_EQ(detect_chat_format("{{ '[SYSTEM_PROMPT]' }}{{ '[INST]' }}"), std::nullopt);
}

TEST(ChatTemplateDetect, Llama3FromItsTokenizerConfig) {
  CLEAVE_REQUIRE_SHARED(path, "models/vocab/llama3.tokenizer.json");
  const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(path);
  ASSERT_NE(tokenizer.vocab().chat_template, "")
      << "llama3.tokenizer_config.json beside it carries a chat_template";
  EXPECT_EQ(detect_chat_format(tokenizer.vocab().chat_template), ChatFormat::llama3);
}

TEST(ChatTemplateFormat, EachFormatWritesOneExchange) {
  const ChatExchange llama3 = format_exchange(ChatFormat::llama3, " Hi?\n", "Hello. ");
  EXPECT_EQ(joined(llama3.context),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(joined(llama3.reply), "Hello.<|eot_id|>");

  const ChatExchange chatml = format_exchange(ChatFormat::chatml, " Hi?\n", "Hello. ");
  EXPECT_EQ(joined(chatml.context), "<|im_start|>user\n Hi?\n<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(joined(chatml.reply), "Hello. <|im_end|>");

  const ChatExchange llama2 = format_exchange(ChatFormat::llama2, " Hi?\n", "Hello. ");
  EXPECT_EQ(joined(llama2.context), "<s>[INST] Hi? [/INST]");
  EXPECT_EQ(joined(llama2.reply), " Hello. </s>");
}

TEST(ChatTemplateFormat, OnlyTheFormatsOwnTextParsesSpecialTokens) {
  for (const auto& [name, format] : chat_formats()) {
    const ChatExchange exchange = format_exchange(format, "prompt", "completion");
    for (const auto* parts : {&exchange.context, &exchange.reply}) {
      for (const TextPart& part : *parts) {
        const bool user_text = part.text == "prompt" || part.text == "completion";
        EXPECT_EQ(part.parse_special, !user_text) << name << ": '" << part.text << "'";
      }
    }
    // Every special token it lists is in what it writes.
    const std::string text = joined(exchange.context) + joined(exchange.reply);
    for (const std::string& token : chat_format_special_tokens(format)) {
      EXPECT_NE(text.find(token), std::string::npos) << name << ": " << token;
    }
    EXPECT_EQ(chat_format_name(format), name);
  }
}

}  // namespace
}  // namespace cleave
