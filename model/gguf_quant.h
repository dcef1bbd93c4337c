// Block formats of ggml: conversion between float32 and the tensor types a
// GGUF file may hold. Pure functions over bytes; no tensors library.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/gguf.h"

namespace cleave::gguf {

// Converts n elements (a multiple of block_size(type)) of `type` at `src` to float,
// as ggml's dequantize_row_* does. Every type is_supported() names (F32, F16,
// BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL,
// IQ4_XS); throws std::runtime_error naming the type otherwise.
void dequantize(TensorType type, const void* src, float* dst, int64_t n);

// Converts n floats to `type` (writes row_bytes(type, n) bytes), using ggml's
// reference rounding so that quantize -> dequantize matches ggml's.
// Written types (a subset of the read ones): F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
void quantize(TensorType type, const float* src, void* dst, int64_t n);
bool can_quantize(TensorType type);  // whether quantize() writes it

float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);   // round to nearest even
float bf16_to_float(uint16_t h);
uint16_t float_to_bf16(float f);   // round to nearest even, NaN preserved

}  // namespace cleave::gguf
