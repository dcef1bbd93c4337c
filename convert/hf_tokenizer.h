// The tokenizer.* metadata of a converted Hugging Face checkpoint: copied
// from a GGUF model (`cleave convert --vocab`), or read from the checkpoint's
// tokenizer.json and tokenizer_config.json.
#pragma once

#include <cstdint>
#include <string>

#include "model/gguf.h"

namespace cleave::convert {

// Every tokenizer.* key of `from`. A vocabulary with more tokens than the
// model embeds (`vocab_size`) is refused, naming both.
void copy_tokenizer_metadata(gguf::Writer& writer, const gguf::File& from, int64_t vocab_size);

// `dir`/tokenizer.json as GGUF metadata, as llama.cpp's converter writes it:
//  - model type BPE with a ByteLevel pre-tokenizer (GPT-2, Llama 3, Qwen2,
//    SmolLM): tokenizer.ggml.model `gpt2` with tokens, token types, merges and
//    the llama.cpp pre-tokenizer (tokenizer.ggml.pre) that cuts a probe text
//    exactly as the tokenizer.json does (read by Tokenizer::from_tokenizer_json);
//  - model type BPE with byte_fallback (Llama 2, SentencePiece converted):
//    model `llama`, each merged token scored minus the rank of the merge that
//    makes it, <0xNN> tokens BYTE, special added tokens CONTROL.
// BOS/EOS and add_bos_token come from tokenizer_config.json, and its
// chat_template (when a string) becomes tokenizer.chat_template. Anything
// else (another model type, a normalizer cleave would not apply) is refused
// naming the file and the field.
void add_tokenizer_json_metadata(gguf::Writer& writer, const std::string& dir, int64_t vocab_size);

}  // namespace cleave::convert
