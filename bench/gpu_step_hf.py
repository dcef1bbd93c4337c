#!/usr/bin/env python3
"""The peer of bench/gpu_step_bench.cpp: one LoRA fine-tuning step with HF
transformers + PEFT (r=16, alpha 32, no dropout, on q/k/v/o/gate/up/down),
bf16 frozen base, AdamW, on randomly initialised SmolLM-135M- and
TinyLlama-1.1B-shaped models. Prints one JSON object per shape with the same
fields as gpu_step_bench: tokens/s and peak GPU memory
(torch.cuda.max_memory_allocated since the model was built).
Nothing is downloaded: the models come from configs written here.

python3 bench/gpu_step_hf.py [--shape smollm|tinyllama|all] [--batch B]
    [--seq T] [--steps N] [--warmup N] [--precision bf16|fp16|float32]
    [--recompute] [--attn sdpa|eager]
"""
import argparse
import json
import sys
import time

SHAPES = {
    "smollm-135m": dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                        tie_word_embeddings=True, batch=16),
    "tinyllama-1.1b": dict(vocab_size=32000, hidden_size=2048, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, intermediate_size=5632,
                           tie_word_embeddings=False, batch=8),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="all")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "float32"])
    parser.add_argument("--recompute", action="store_true")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = parser.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("gpu_step_hf: needs a CUDA device; nothing measured")
        return 0
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "float32": torch.float32}[args.precision]
    device = torch.device("cuda")
    for name, shape in SHAPES.items():
        if args.shape != "all" and not name.startswith(args.shape):
            continue
        shape = dict(shape)
        batch = args.batch or shape.pop("batch")
        shape.pop("batch", None)
        torch.manual_seed(1)
        config = LlamaConfig(max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                             head_dim=shape["hidden_size"] // shape["num_attention_heads"],
                             attn_implementation=args.attn, **shape)
        model = LlamaForCausalLM(config).to(device=device, dtype=dtype)
        if args.recompute:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                 target_modules=TARGETS, bias="none",
                                                 task_type="CAUSAL_LM"))
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        generator = torch.Generator().manual_seed(3)
        ids = torch.randint(0, shape["vocab_size"], (batch, args.seq), generator=generator).to(device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

        def one_step():
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

        for _ in range(args.warmup):
            one_step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = one_step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(json.dumps({
            "impl": "hf+peft", "shape": name, "batch": batch, "seq": args.seq,
            "precision": args.precision, "recompute": args.recompute, "attn": args.attn,
            "steps": args.steps, "seconds": round(seconds, 4),
            "tokens_per_s": round(batch * args.seq * args.steps / seconds, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "final_loss": round(loss, 4), "trainable": sum(p.numel() for p in trainable),
            "adapter_dtype": str(trainable[0].dtype),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "gpu": torch.cuda.get_device_name(0),
        }), flush=True)
        del model, optimizer
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
