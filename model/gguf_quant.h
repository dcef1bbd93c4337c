// Block formats of ggml: conversion between float32 and the tensor types a
// GGUF file may hold. Pure functions over bytes; no tensors library.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/gguf.h"

namespace cleave::gguf {

// Converts n elements (a multiple of block_size(type)) of `type` at `src` to float.
// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K; throws std::runtime_error otherwise.
void dequantize(TensorType type, const void* src, float* dst, int64_t n);

// Converts n floats to `type` (writes row_bytes(type, n) bytes), using ggml's
// reference rounding so that quantize -> dequantize matches ggml's.
// Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
void quantize(TensorType type, const float* src, void* dst, int64_t n);

float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);   // round to nearest even
float bf16_to_float(uint16_t h);
uint16_t float_to_bf16(float f);   // round to nearest even, NaN preserved

}  // namespace cleave::gguf
