// LoRA adapters in Hugging Face PEFT's layout, so transformers + PEFT can load
// what cleave trained: DIR/adapter_model.safetensors with keys
// "base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight" (A [r, in],
// B [out, r]) and DIR/adapter_config.json.
//
// GGUF llama files store q and k rows permuted for adjacent-pair RoPE, while HF
// Llama uses rotate-half RoPE, so the lora_B of a q or k adapter (its rows are
// output dimensions) is permuted on export and un-permuted on import; lora_A
// and the other projections are unchanged. See shared models/README.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "lora/adapter_set.h"

namespace cleave {
class LlamaModel;
struct LlamaConfig;
}  // namespace cleave

namespace cleave::lora {

constexpr const char* kPeftWeightsFile = "adapter_model.safetensors";
constexpr const char* kPeftConfigFile = "adapter_config.json";

// Writes DIR/adapter_model.safetensors (F32) and DIR/adapter_config.json,
// creating DIR if needed; each file is written atomically. The adapter must fit
// `model` (names and shapes are checked). `base_model_name_or_path` goes into
// the config (null when empty), e.g. a Hugging Face model id.
void export_peft(const AdapterSet& adapters, const LlamaModel& model, const std::string& dir,
                 const std::string& base_model_name_or_path = "");

// Reads a PEFT LoRA adapter directory for `model` (F32, F16 or BF16 tensors).
// Refuses, naming the file and what to do: malformed safetensors, a config
// that is not plain LoRA (DoRA, per-module ranks, fan_in_fan_out, biases),
// keys that are not LoRA A/B of a known module, and shapes that do not fit
// the base. use_rslora is honoured by folding sqrt(r) into alpha.
AdapterSet import_peft(const std::string& dir, const LlamaModel& model);

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj", "output.weight" ->
// "lm_head"; throws for a tensor PEFT has no module for.
std::string peft_module_of(const std::string& base_name);
// The inverse; empty if `module` is not one cleave adapts.
std::string base_name_of_peft_module(const std::string& module);

// Heads whose rows a GGUF->HF conversion permutes for `base_name`: n_heads for
// attn_q, n_kv_heads for attn_k, 0 for everything else (and for architectures
// whose GGUF already uses rotate-half RoPE, e.g. qwen2).
int64_t permuted_heads(const std::string& base_name, const LlamaConfig& config);

// rows: [n_head * head_dim, ...]. GGUF -> HF views the rows as
// [n_head, head_dim/2, 2] and swaps the last two axes; HF -> GGUF undoes it.
at::Tensor gguf_rows_to_hf(const at::Tensor& rows, int64_t n_head);
at::Tensor hf_rows_to_gguf(const at::Tensor& rows, int64_t n_head);

}  // namespace cleave::lora
