// cleave convert --hf DIR --out FILE.gguf [--vocab FROM.gguf]: a Hugging Face
// checkpoint as a GGUF model.
#include <iostream>

#include "cli/commands.h"
#include "convert/hf_checkpoint.h"
#include "model/gguf.h"
#include "model/llama_config.h"

namespace cleave::cli {

ArgParser convert_parser() {
  return ArgParser("cleave convert", "--hf DIR --out FILE.gguf [--vocab FROM.gguf]",
                   "Writes a Hugging Face checkpoint (LlamaForCausalLM, e.g. Llama or SmolLM, or\n"
                   "Qwen2ForCausalLM) as a GGUF model, as llama.cpp's convert_hf_to_gguf.py\n"
                   "does: DIR holds config.json, model.safetensors or the shards named by\n"
                   "model.safetensors.index.json (F32, F16 or BF16; each tensor keeps its\n"
                   "dtype, norms become F32), and tokenizer.json with tokenizer_config.json.\n"
                   "Commands that take a model also take DIR itself and convert it in memory.")
      .value("--hf", "DIR", "the Hugging Face checkpoint directory")
      .value("--out", "FILE", "the GGUF file to write (atomically)")
      .value("--vocab", "FILE", "copy the tokenizer from this GGUF instead of reading tokenizer.json");
}

int run_convert(const ParsedArgs& args) {
  const std::string dir = args.require("--hf");
  const std::string out = args.require("--out");
  convert::HfImportOptions options;
  options.vocab_gguf = args.get("--vocab");
  convert::hf_to_gguf(dir, options).write(out);
  // Read back as every command will read it.
  const auto file = gguf::File::open(out);
  std::cout << "wrote " << out << " (" << config_from_gguf(*file).summary() << ", "
            << file->get_string("tokenizer.ggml.model", "no") << " tokenizer, " << file->size() / 1024
            << " KiB)\n";
  return 0;
}

}  // namespace cleave::cli
