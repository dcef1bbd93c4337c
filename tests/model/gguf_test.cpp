// GGUF container: writer -> reader round trips, the real stories260K file, and
// corrupt inputs (every one must throw std::runtime_error, never crash).
#include "model/gguf.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/gguf_quant.h"
#include "tests/support/ggml_blocks.h"
#include "tests/support/shared_data.h"

namespace cleave::gguf {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <class T>
void poke(std::vector<uint8_t>& bytes, size_t pos, T value) {
  ASSERT_LE(pos + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + pos, &value, sizeof(T));
}

// Byte offset of the first occurrence of a length-prefixed string in the file.
size_t find_gguf_string(const std::vector<uint8_t>& bytes, const std::string& s) {
  const uint64_t len = s.size();
  std::vector<uint8_t> needle(reinterpret_cast<const uint8_t*>(&len),
                              reinterpret_cast<const uint8_t*>(&len) + 8);
  needle.insert(needle.end(), s.begin(), s.end());
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << "string " << s << " not found";
  return static_cast<size_t>(it - bytes.begin());
}

// Opens `path` and returns the error message; fails the test if it opens.
std::string open_error(const std::string& path) {
  try {
    File::open(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << path << " opened but should not have";
  return "";
}

void expect_same_value(const Value& a, const Value& b, const std::string& where) {
  ASSERT_EQ(a.type, b.type) << where;
  switch (a.type) {
    case ValueType::ARRAY: {
      ASSERT_EQ(a.array_type, b.array_type) << where;
      const Array& xa = a.as_array();
      const Array& xb = b.as_array();
      ASSERT_EQ(xa.size(), xb.size()) << where;
      for (size_t i = 0; i < xa.size(); ++i) {
        expect_same_value(xa[i], xb[i], where + "[" + std::to_string(i) + "]");
      }
      break;
    }
    case ValueType::FLOAT32:
    case ValueType::FLOAT64:
      EXPECT_EQ(std::get<double>(a.data), std::get<double>(b.data)) << where;
      break;
    case ValueType::BOOL:
      EXPECT_EQ(a.as_bool(), b.as_bool()) << where;
      break;
    case ValueType::STRING:
      EXPECT_EQ(a.as_string(), b.as_string()) << where;
      break;
    case ValueType::UINT64:
      EXPECT_EQ(std::get<uint64_t>(a.data), std::get<uint64_t>(b.data)) << where;
      break;
    default:
      EXPECT_EQ(a.as_int(), b.as_int()) << where;
  }
}

// Every metadata type, including arrays that are empty, of strings, and nested.
std::vector<std::pair<std::string, Value>> all_kinds_of_metadata() {
  return {
      {"test.u8", Value::u8(250)},
      {"test.i8", Value::i8(-120)},
      {"test.u16", Value::u16(65000)},
      {"test.i16", Value::i16(-32000)},
      {"test.u32", Value::u32(4000000000u)},
      {"test.i32", Value::i32(-2000000000)},
      {"test.u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"test.i64", Value::i64(std::numeric_limits<int64_t>::min())},
      {"test.f32", Value::f32(0.1f)},
      {"test.f64", Value::f64(-1.0 / 3.0)},
      {"test.bool_true", Value::boolean(true)},
      {"test.bool_false", Value::boolean(false)},
      {"test.string", Value::str("héllo \xe2\x96\x81world")},
      {"test.empty_string", Value::str("")},
      {"test.string_with_nul", Value::str(std::string("a\0b", 3))},
      {"test.strings", Value::str_array({"<unk>", "", "\xe2\x96\x81the", "<0x0A>"})},
      {"test.floats", Value::f32_array({1.5f, -0.0f, 1e-30f, 3.4e38f})},
      {"test.ints", Value::i32_array({-1, 0, 2147483647})},
      {"test.empty_ints", Value::i32_array({})},
      {"test.empty_strings", Value::str_array({})},
      {"test.bools", Value::array(ValueType::BOOL, {Value::boolean(true), Value::boolean(false)})},
      {"test.u64s", Value::array(ValueType::UINT64, {Value::u64(1), Value::u64(1ull << 63)})},
      {"test.f64s", Value::array(ValueType::FLOAT64, {Value::f64(2.5), Value::f64(-1e300)})},
      {"test.nested",
       Value::array(ValueType::ARRAY,
                    {Value::array(ValueType::UINT8, {Value::u8(1), Value::u8(2)}),
                     Value::array(ValueType::STRING, {}),
                     Value::array(ValueType::ARRAY,
                                  {Value::str_array({"deep"}), Value::i32_array({7})})})},
      {"test.empty_nested", Value::array(ValueType::ARRAY, {})},
  };
}

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * static_cast<float>(i) + 0.1f);
  return v;
}

// A small file with metadata of every kind and tensors of every supported type.
void write_sample(const std::string& path, uint32_t alignment = kDefaultAlignment) {
  Writer w(alignment);
  for (auto& [key, value] : all_kinds_of_metadata()) w.set(key, value);
  const std::vector<float> a = ramp(64 * 3, 1.0f);
  w.add_f32("a.weight", {64, 3}, a.data());
  const std::vector<float> b = ramp(256 * 2, 0.5f);
  for (TensorType type : {TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                          TensorType::Q4_K, TensorType::Q6_K}) {
    std::vector<uint8_t> bytes(row_bytes(type, 256) * 2);
    quantize(type, b.data(), bytes.data(), 512);
    w.add_tensor(std::string("b.") + type_name(type), type, {256, 2}, bytes.data(), bytes.size());
  }
  const float one = 1.0f;
  w.add_f32("scalar", {1}, &one);
  w.write(path);
}

class GgufTest : public ::testing::Test {
 protected:
  std::string dir = ::cleave::test::scratch_dir(
      ::testing::UnitTest::GetInstance()->current_test_info()->name());
};

// ---------------------------------------------------------------- round trips

TEST_F(GgufTest, MetadataOfEveryTypeRoundTrips) {
  const std::string path = dir + "/meta.gguf";
  Writer w;
  const auto expected = all_kinds_of_metadata();
  for (auto& [key, value] : expected) w.set(key, value);
  w.write(path);

  auto file = File::open(path);
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), kDefaultAlignment);
  EXPECT_TRUE(file->tensors().empty());
  ASSERT_EQ(file->metadata().size(), expected.size());
  for (auto& [key, value] : expected) {
    const Value* got = file->find(key);
    ASSERT_NE(got, nullptr) << key;
    expect_same_value(*got, value, key);
  }
  EXPECT_EQ(file->get("test.strings").as_strings(),
            (std::vector<std::string>{"<unk>", "", "\xe2\x96\x81the", "<0x0A>"}));
  EXPECT_EQ(file->get("test.ints").as_ints(), (std::vector<int32_t>{-1, 0, 2147483647}));
  EXPECT_EQ(file->get("test.floats").as_floats()[3], 3.4e38f);
  EXPECT_TRUE(file->get("test.empty_strings").as_strings().empty());
  EXPECT_EQ(file->get("test.empty_strings").array_type, ValueType::STRING);
  EXPECT_EQ(file->get("test.empty_nested").array_type, ValueType::ARRAY);
  EXPECT_EQ(file->get("test.string_with_nul").as_string(), std::string("a\0b", 3));
  EXPECT_EQ(file->get("test.i8").as_int(), -120);
  EXPECT_EQ(file->get("test.u32").as_int(), 4000000000ll);
  EXPECT_FLOAT_EQ(static_cast<float>(file->get("test.f32").as_float()), 0.1f);
  EXPECT_TRUE(file->get("test.bool_true").as_bool());
  const Array& nested = file->get("test.nested").as_array();
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[2].as_array()[0].as_strings(), std::vector<std::string>{"deep"});
}

TEST_F(GgufTest, MetadataKeepsInsertionOrderOnDiskAndSetReplaces) {
  const std::string path = dir + "/order.gguf";
  Writer w;
  w.set("z.first", Value::u32(1));
  w.set("a.second", Value::u32(2));
  w.set("z.first", Value::u32(3));  // replaces in place
  w.write(path);
  const auto bytes = read_bytes(path);
  EXPECT_LT(find_gguf_string(bytes, "z.first"), find_gguf_string(bytes, "a.second"));
  auto file = File::open(path);
  EXPECT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->get("z.first").as_int(), 3);
}

TEST_F(GgufTest, TensorsOfEverySupportedTypeRoundTripWithAlignment) {
  for (uint32_t alignment : {32u, 64u, 1u, 256u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    const std::string path = dir + "/tensors" + std::to_string(alignment) + ".gguf";
    std::vector<std::pair<std::string, std::vector<uint8_t>>> expected;
    Writer w(alignment);
    w.set("general.architecture", Value::str("llama"));
    const std::vector<float> values = ramp(256 * 3, 2.0f);
    for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                            TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
      std::vector<uint8_t> bytes(row_bytes(type, 256) * 3);
      quantize(type, values.data(), bytes.data(), 256 * 3);
      const std::string name = std::string("t.") + type_name(type);
      w.add_tensor(name, type, {256, 3}, bytes.data(), bytes.size());
      expected.emplace_back(name, bytes);
    }
    // An odd-sized tensor so the next one needs padding.
    const std::vector<float> odd = ramp(5, 1.0f);
    w.add_f32("odd", {5}, odd.data());
    w.add_f32("after_odd", {3, 1, 1, 2}, ramp(6, 3.0f).data());
    w.write(path);
    EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "temporary file left behind";

    auto file = File::open(path);
    EXPECT_EQ(file->alignment(), alignment);
    EXPECT_EQ(file->data_offset() % alignment, 0u);
    if (alignment != kDefaultAlignment) {
      EXPECT_EQ(file->get("general.alignment").as_int(), alignment);
    }
    ASSERT_EQ(file->tensors().size(), expected.size() + 2);
    for (size_t i = 0; i < expected.size(); ++i) {
      const TensorInfo& t = file->tensors()[i];
      EXPECT_EQ(t.name, expected[i].first);
      EXPECT_EQ(t.ne, (std::vector<int64_t>{256, 3}));
      EXPECT_EQ(t.n_elements(), 768);
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, expected[i].second.size());
      EXPECT_EQ(std::memcmp(t.data, expected[i].second.data(), t.nbytes), 0) << t.name;
      // The data section sits at a file offset that is a multiple of the alignment.
      EXPECT_EQ((file->data_offset() + t.offset) % alignment, 0u);
    }
    const TensorInfo& after = file->tensor("after_odd");
    EXPECT_EQ(after.ne, (std::vector<int64_t>{3, 1, 1, 2}));
    EXPECT_EQ(after.offset % alignment, 0u);
    float got[6];
    std::memcpy(got, after.data, sizeof got);
    const std::vector<float> want = ramp(6, 3.0f);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(got[i], want[i]);
    EXPECT_EQ(file->find_tensor("missing"), nullptr);
    EXPECT_THROW(file->tensor("missing"), std::runtime_error);
  }
}

TEST_F(GgufTest, AccessorsThrowOnWrongTypeAndMissingKeys) {
  const std::string path = dir + "/acc.gguf";
  write_sample(path);
  auto file = File::open(path);
  EXPECT_EQ(file->get_int("test.i16", 0), -32000);
  EXPECT_EQ(file->get_int("absent", 42), 42);
  EXPECT_DOUBLE_EQ(file->get_float("absent", 1e-5), 1e-5);
  EXPECT_DOUBLE_EQ(file->get_float("test.u8", 0), 250.0);
  EXPECT_EQ(file->get_string("absent", "x"), "x");
  try {
    file->get("absent.key");
    FAIL() << "missing key did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing metadata key absent.key"), std::string::npos);
  }
  try {
    file->get_string("test.u32", "");
    FAIL() << "wrong type did not throw";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test.u32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("UINT32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("STRING"), std::string::npos) << msg;
  }
  EXPECT_THROW(file->get("test.u64").as_int(), std::runtime_error);  // > INT64_MAX
  EXPECT_THROW(file->get("test.strings").as_ints(), std::runtime_error);
  EXPECT_THROW(file->get("test.string").as_bool(), std::runtime_error);
}

TEST_F(GgufTest, WriterRejectsInconsistentInput) {
  Writer w;
  std::vector<uint8_t> bytes(row_bytes(TensorType::Q8_0, 64));
  EXPECT_THROW(w.add_tensor("x", TensorType::Q8_0, {64}, bytes.data(), bytes.size() - 1),
               std::runtime_error);
  EXPECT_THROW(w.add_tensor("x", TensorType::Q8_0, {48}, bytes.data(), bytes.size()),
               std::runtime_error);  // not a whole number of blocks
  EXPECT_THROW(w.add_tensor("x", TensorType::Q8_0, {64, 1, 1, 1, 1}, bytes.data(), bytes.size()),
               std::runtime_error);
  EXPECT_THROW(w.add_tensor("x", static_cast<TensorType>(99), {64}, bytes.data(), bytes.size()),
               std::runtime_error);
  w.add_tensor("x", TensorType::Q8_0, {64}, bytes.data(), bytes.size());
  EXPECT_THROW(w.add_tensor("x", TensorType::Q8_0, {64}, bytes.data(), bytes.size()),
               std::runtime_error);
  EXPECT_THROW(w.set("bad", Value::array(ValueType::INT32, {Value::u32(1)})), std::runtime_error);
  Value bad_u8 = Value::u8(0);
  bad_u8.data = uint64_t{300};
  EXPECT_THROW(w.set("bad", bad_u8), std::runtime_error);
  EXPECT_THROW(w.set("general.alignment", Value::u32(64)), std::runtime_error);
  EXPECT_THROW(Writer(24), std::runtime_error);
  EXPECT_THROW(Writer(0), std::runtime_error);
  EXPECT_THROW(w.write(dir + "/no/such/dir/x.gguf"), std::runtime_error);
}

// ---------------------------------------------------------------- stories260K

TEST_F(GgufTest, ReadsStories260K) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto file = File::open(path);
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->size(), 1185376u);
  EXPECT_EQ(file->get_string("general.architecture", ""), "llama");
  EXPECT_EQ(file->get("llama.embedding_length").as_int(), 64);
  EXPECT_EQ(file->get("llama.block_count").as_int(), 5);
  EXPECT_EQ(file->get("llama.feed_forward_length").as_int(), 172);
  EXPECT_EQ(file->get("llama.attention.head_count").as_int(), 8);
  EXPECT_EQ(file->get("llama.attention.head_count_kv").as_int(), 4);
  EXPECT_FLOAT_EQ(static_cast<float>(file->get("llama.attention.layer_norm_rms_epsilon").as_float()),
                  1e-5f);
  EXPECT_EQ(file->get("tokenizer.ggml.bos_token_id").as_int(), 1);
  EXPECT_EQ(file->find("llama.rope.freq_base"), nullptr);

  const std::vector<std::string> tokens = file->get("tokenizer.ggml.tokens").as_strings();
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[3 + 255], "<0xFF>");
  EXPECT_EQ(file->get("tokenizer.ggml.scores").as_floats().size(), 512u);
  EXPECT_EQ(file->get("tokenizer.ggml.token_type").as_ints().size(), 512u);

  const TensorInfo& embd = file->tensor("token_embd.weight");
  EXPECT_EQ(embd.ne, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd.type, TensorType::F32);
  EXPECT_EQ(embd.nbytes, 64u * 512u * 4u);
  const TensorInfo& output = file->tensor("output.weight");
  EXPECT_EQ(std::memcmp(output.data, embd.data, embd.nbytes), 0) << "output.weight is a copy";
  EXPECT_EQ(file->tensor("output_norm.weight").ne, std::vector<int64_t>{64});

  const std::vector<std::pair<std::string, std::vector<int64_t>>> block_tensors = {
      {"attn_q", {64, 64}},    {"attn_k", {64, 32}},   {"attn_v", {64, 32}},
      {"attn_output", {64, 64}}, {"ffn_gate", {64, 172}}, {"ffn_up", {64, 172}},
      {"ffn_down", {172, 64}}, {"attn_norm", {64}},    {"ffn_norm", {64}},
  };
  for (int b = 0; b < 5; ++b) {
    for (const auto& [name, ne] : block_tensors) {
      const std::string full = "blk." + std::to_string(b) + "." + name + ".weight";
      const TensorInfo* t = file->find_tensor(full);
      ASSERT_NE(t, nullptr) << full;
      EXPECT_EQ(t->ne, ne) << full;
      EXPECT_EQ(t->type, TensorType::F32) << full;
      std::vector<float> values(static_cast<size_t>(t->n_elements()));
      dequantize(t->type, t->data, values.data(), t->n_elements());
      for (float v : values) ASSERT_TRUE(std::isfinite(v)) << full;
    }
  }
  EXPECT_EQ(file->tensors().size(), 3u + 5u * block_tensors.size());
}

// ---------------------------------------------------------------- corrupt inputs

TEST_F(GgufTest, EmptyFileIsRejected) {
  const std::string path = dir + "/empty.gguf";
  write_bytes(path, {});
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST_F(GgufTest, MissingFileIsRejected) {
  const std::string msg = open_error(dir + "/does_not_exist.gguf");
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST_F(GgufTest, WrongMagicIsRejected) {
  const std::string path = dir + "/magic.gguf";
  write_sample(path);
  auto bytes = read_bytes(path);
  std::memcpy(bytes.data(), "PK\x03\x04", 4);
  write_bytes(path, bytes);
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find("not a GGUF file (magic 0x04034b50, expected 0x46554747 \"GGUF\")"),
            std::string::npos)
      << msg;
}

TEST_F(GgufTest, UnsupportedVersionsAreRejected) {
  const std::string path = dir + "/version.gguf";
  write_sample(path);
  const auto original = read_bytes(path);
  for (uint32_t version : {0u, 1u, 4u, 0x03000000u}) {
    auto bytes = original;
    poke<uint32_t>(bytes, 4, version);
    write_bytes(path, bytes);
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find("unsupported GGUF version " + std::to_string(version) + " (supported: 2, 3)"),
              std::string::npos)
        << msg;
  }
  // Version 2 has the same layout on little-endian machines and is accepted.
  auto bytes = original;
  poke<uint32_t>(bytes, 4, 2);
  write_bytes(path, bytes);
  EXPECT_EQ(File::open(path)->version(), 2u);
}

// Cuts `bytes` at every length in [0, size) chosen by `cuts` and expects each to throw.
void expect_every_cut_throws(const std::string& path, const std::vector<uint8_t>& bytes,
                             const std::vector<size_t>& cuts) {
  write_bytes(path, bytes);
  // Shrinking the same file keeps this fast even for a megabyte of data.
  for (auto it = cuts.rbegin(); it != cuts.rend(); ++it) {
    ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(*it)), 0);
    try {
      File::open(path);
      ADD_FAILURE() << "file cut to " << *it << " bytes opened";
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      const bool explained = msg.find("truncated") != std::string::npos ||
                             (*it == 0 && msg.find("empty") != std::string::npos);
      EXPECT_TRUE(explained) << "cut at " << *it << ": " << msg;
    }
  }
}

// An image built in memory (a converted model) is the file's bytes, and reads as the file does.
TEST_F(GgufTest, InMemoryImageIsTheFilesBytes) {
  const std::string path = dir + "/sample.gguf";
  Writer w(64);
  w.set("general.architecture", Value::str("llama"));
  const std::vector<float> values = {1.5f, -2.0f, 3.25f};
  w.add_f32("t.a", {3}, values.data());
  w.add_f32("t.b", {1}, values.data());
  w.write(path);
  const std::vector<uint8_t> image = w.to_bytes();
  EXPECT_EQ(image, read_bytes(path));

  const auto file = File::from_bytes("converted model", image);
  EXPECT_EQ(file->path(), "converted model");
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->get("general.architecture").as_string(), "llama");
  const TensorInfo& a = file->tensor("t.a");
  EXPECT_EQ(std::vector<float>(reinterpret_cast<const float*>(a.data), reinterpret_cast<const float*>(a.data) + 3),
            values);
  try {
    File::from_bytes("converted model", std::vector<uint8_t>(image.begin(), image.begin() + 10));
    FAIL() << "a truncated image was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("converted model: truncated"), std::string::npos) << e.what();
  }
}

TEST_F(GgufTest, EveryTruncationOfAWrittenFileThrows) {
  const std::string path = dir + "/sample.gguf";
  write_sample(path, 64);
  const auto bytes = read_bytes(path);
  auto file = File::open(path);
  // The last tensor is padded to the alignment; cutting only padding keeps the file valid.
  uint64_t end = 0;
  for (const auto& t : file->tensors()) end = std::max(end, file->data_offset() + t.offset + t.nbytes);
  file.reset();
  std::vector<size_t> cuts;
  for (size_t n = 0; n < end; ++n) cuts.push_back(n);
  expect_every_cut_throws(dir + "/cut.gguf", bytes, cuts);
  for (size_t n = end; n < bytes.size(); ++n) {
    write_bytes(dir + "/pad.gguf", std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    EXPECT_NO_THROW(File::open(dir + "/pad.gguf")) << "cut in trailing padding at " << n;
  }
}

TEST_F(GgufTest, TruncationsOfStories260KThrowWithWhereTheyHappened) {
  CLEAVE_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const auto bytes = read_bytes(path);
  const uint64_t data_offset = File::open(path)->data_offset();
  std::vector<size_t> cuts;
  for (size_t n = 0; n < data_offset + 64; ++n) cuts.push_back(n);  // every byte of the header
  for (size_t n = data_offset + 64; n < bytes.size(); n += 4093) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  expect_every_cut_throws(dir + "/cut.gguf", bytes, cuts);

  // The message names the place: a cut inside the token list names that key.
  const size_t tokens_at = find_gguf_string(bytes, "tokenizer.ggml.tokens");
  write_bytes(dir + "/tok.gguf", std::vector<uint8_t>(bytes.begin(), bytes.begin() + tokens_at + 300));
  const std::string msg = open_error(dir + "/tok.gguf");
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.ggml.tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the file has " + std::to_string(tokens_at + 300) + " bytes"),
            std::string::npos)
      << msg;
  // A cut in the data section names the tensor whose data is missing.
  write_bytes(dir + "/data.gguf", std::vector<uint8_t>(bytes.begin(), bytes.end() - 100));
  const std::string data_msg = open_error(dir + "/data.gguf");
  EXPECT_NE(data_msg.find("blk.4.ffn_norm.weight"), std::string::npos) << data_msg;
}

struct TensorFields {
  size_t n_dims, ne0, type, offset;
};

// Positions of a tensor directory entry's fields in the written file.
TensorFields locate_tensor(const std::vector<uint8_t>& bytes, const std::string& name) {
  const size_t at = find_gguf_string(bytes, name) + 8 + name.size();
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at, 4);
  return {at, at + 4, at + 4 + 8 * n_dims, at + 4 + 8 * n_dims + 4};
}

class GgufCorruptSample : public GgufTest {
 protected:
  void SetUp() override {
    write_sample(path);
    original = read_bytes(path);
  }
  // Writes the patched bytes and returns the open error.
  std::string error_after(const std::vector<uint8_t>& bytes) {
    write_bytes(path, bytes);
    return open_error(path);
  }
  std::string path = dir + "/corrupt.gguf";
  std::vector<uint8_t> original;
};

TEST_F(GgufCorruptSample, TensorOffsetBeyondTheEnd) {
  auto bytes = original;
  const auto f = locate_tensor(bytes, "b.Q4_K");
  poke<uint64_t>(bytes, f.offset, uint64_t{1} << 40);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("b.Q4_K"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated or corrupt"), std::string::npos) << msg;

  bytes = original;
  poke<uint64_t>(bytes, f.offset, std::numeric_limits<uint64_t>::max() - 31);
  EXPECT_NE(error_after(bytes).find("b.Q4_K"), std::string::npos);
}

TEST_F(GgufCorruptSample, MisalignedTensorOffset) {
  auto bytes = original;
  const auto f = locate_tensor(bytes, "b.F16");
  uint64_t offset;
  std::memcpy(&offset, bytes.data() + f.offset, 8);
  poke<uint64_t>(bytes, f.offset, offset + 2);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("not a multiple of the alignment 32"), std::string::npos) << msg;
}

TEST_F(GgufCorruptSample, UnknownTensorType) {
  auto bytes = original;
  poke<uint32_t>(bytes, locate_tensor(bytes, "b.Q8_0").type, 99);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("unknown tensor type 99"), std::string::npos) << msg;
  EXPECT_NE(msg.find("b.Q8_0"), std::string::npos) << msg;
}

// Every type ggml writes to files, including those cleave does not convert:
// the file opens, and each tensor has its type's byte size and its own bytes,
// so a wrong size in the type table would misplace the tensors after it.
TEST_F(GgufTest, TensorsOfEveryKnownTypeOpenWithTheirSizes) {
  const std::string path = dir + "/every_type.gguf";
  std::mt19937 rng(17);
  std::vector<std::vector<uint8_t>> written;
  Writer w;
  for (const test::GgmlBlockShape& shape : test::ggml_block_shapes()) {
    std::vector<uint8_t> bytes(static_cast<size_t>(2 * 256 / shape.values * shape.bytes));
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    w.add_tensor(std::string("t.") + type_name(shape.type), shape.type, {256, 2}, bytes.data(),
                 bytes.size());
    written.push_back(std::move(bytes));
  }
  w.write(path);
  auto file = File::open(path);
  for (size_t i = 0; i < written.size(); ++i) {
    const test::GgmlBlockShape& shape = test::ggml_block_shapes()[i];
    const TensorInfo& t = file->tensor(std::string("t.") + type_name(shape.type));
    EXPECT_EQ(t.type, shape.type);
    ASSERT_EQ(t.nbytes, written[i].size()) << type_name(shape.type);
    EXPECT_EQ(std::memcmp(t.data, written[i].data(), t.nbytes), 0) << type_name(shape.type);
  }
}

TEST_F(GgufTest, RowOfPartialBlocksIsRefusedAtOpen) {
  const std::string path = dir + "/partial.gguf";
  Writer w;
  const test::GgmlBlocks blocks = test::random_ggml_blocks(TensorType::Q5_0, 64 * 3, 3);
  w.add_tensor("blk.0.ffn_down.weight", TensorType::Q5_0, {64, 3}, blocks.bytes.data(),
               blocks.bytes.size());
  w.write(path);
  auto bytes = read_bytes(path);
  poke<int64_t>(bytes, locate_tensor(bytes, "blk.0.ffn_down.weight").ne0, 48);
  write_bytes(path, bytes);
  const std::string msg = open_error(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("blk.0.ffn_down.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("row of 48 elements is not a multiple of the Q5_0 block size 32"),
            std::string::npos)
      << msg;
}

TEST_F(GgufCorruptSample, TooManyDimensions) {
  auto bytes = original;
  poke<uint32_t>(bytes, locate_tensor(bytes, "a.weight").n_dims, 5);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("5 dimensions, at most 4"), std::string::npos) << msg;
}

TEST_F(GgufCorruptSample, NegativeAndOverflowingDimensions) {
  auto bytes = original;
  const auto f = locate_tensor(bytes, "b.Q6_K");
  poke<int64_t>(bytes, f.ne0, -256);
  EXPECT_NE(error_after(bytes).find("negative"), std::string::npos);
  bytes = original;
  poke<int64_t>(bytes, f.ne0, int64_t{1} << 62);
  poke<int64_t>(bytes, f.ne0 + 8, int64_t{1} << 20);
  EXPECT_NE(error_after(bytes).find("overflows"), std::string::npos);
  bytes = original;
  poke<int64_t>(bytes, f.ne0, 100);  // not a whole number of 256-blocks
  EXPECT_NE(error_after(bytes).find("block size 256"), std::string::npos);
}

TEST_F(GgufCorruptSample, HugeStringLength) {
  auto bytes = original;
  // The first metadata key's length field follows the 24-byte header.
  poke<uint64_t>(bytes, 24, std::numeric_limits<uint64_t>::max() - 3);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("metadata entry 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("length 18446744073709551612"), std::string::npos) << msg;

  bytes = original;
  const size_t value_at = find_gguf_string(bytes, "test.string") + 8 + 11 + 4;
  poke<uint64_t>(bytes, value_at, uint64_t{1} << 40);
  const std::string value_msg = error_after(bytes);
  EXPECT_NE(value_msg.find("test.string"), std::string::npos) << value_msg;
}

TEST_F(GgufCorruptSample, HugeArrayLengthAndCounts) {
  auto bytes = original;
  const size_t count_at = find_gguf_string(bytes, "test.ints") + 8 + 9 + 4 + 4;
  poke<uint64_t>(bytes, count_at, uint64_t{1} << 61);
  const std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("test.ints"), std::string::npos) << msg;
  EXPECT_NE(msg.find("array of 2305843009213693952 INT32"), std::string::npos) << msg;

  bytes = original;
  // Counts that promise more entries than the file holds run into its end.
  poke<uint64_t>(bytes, 8, uint64_t{1} << 50);  // tensor count
  EXPECT_NE(error_after(bytes).find("truncated"), std::string::npos);
  bytes = original;
  poke<uint64_t>(bytes, 16, std::numeric_limits<uint64_t>::max());  // metadata count
  const std::string count_msg = error_after(bytes);
  EXPECT_NE(count_msg.find("truncated"), std::string::npos) << count_msg;
  EXPECT_NE(count_msg.find("metadata entry"), std::string::npos) << count_msg;
}

TEST_F(GgufCorruptSample, UnknownValueTypeAndBadBool) {
  auto bytes = original;
  const size_t type_at = find_gguf_string(bytes, "test.u16") + 8 + 8;
  poke<uint32_t>(bytes, type_at, 13);
  EXPECT_NE(error_after(bytes).find("unknown value type 13"), std::string::npos);

  bytes = original;
  const size_t bool_at = find_gguf_string(bytes, "test.bool_true") + 8 + 14 + 4;
  ASSERT_EQ(bytes[bool_at], 1);
  bytes[bool_at] = 7;
  EXPECT_NE(error_after(bytes).find("BOOL value is 7"), std::string::npos);
}

TEST_F(GgufCorruptSample, DuplicateKeysAndTensorNames) {
  auto bytes = original;
  // "test.u16" -> "test.u8\0"-length-matched rename is not possible, so make
  // "test.i16" read "test.u16" (same length).
  const size_t key_at = find_gguf_string(bytes, "test.i16") + 8;
  bytes[key_at + 5] = 'u';
  std::string msg = error_after(bytes);
  EXPECT_NE(msg.find("duplicate metadata key \"test.u16\""), std::string::npos) << msg;

  bytes = original;
  const size_t name_at = find_gguf_string(bytes, "b.Q4_0") + 8;
  bytes[name_at + 3] = '8';  // "b.Q8_0", which already exists
  msg = error_after(bytes);
  EXPECT_NE(msg.find("duplicate tensor name \"b.Q8_0\""), std::string::npos) << msg;
}

TEST_F(GgufCorruptSample, BadAlignment) {
  Writer w(64);
  w.write(path);
  auto bytes = read_bytes(path);
  const size_t value_at = find_gguf_string(bytes, "general.alignment") + 8 + 17 + 4;
  poke<uint32_t>(bytes, value_at, 48);
  EXPECT_NE(error_after(bytes).find("alignment 48 is not a power of two"), std::string::npos);
}

TEST_F(GgufCorruptSample, DeeplyNestedArraysAreRejectedNotRecursedForever) {
  // A header claiming one key whose value is an array of arrays of arrays ...
  std::vector<uint8_t> bytes(24);
  poke<uint32_t>(bytes, 0, kMagic);
  poke<uint32_t>(bytes, 4, 3);
  poke<uint64_t>(bytes, 8, 0);
  poke<uint64_t>(bytes, 16, 1);
  auto append = [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  };
  const uint64_t key_len = 1;
  append(&key_len, 8);
  append("k", 1);
  const uint32_t array_type = 9;
  append(&array_type, 4);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t one = 1;
    append(&array_type, 4);
    append(&one, 8);
  }
  EXPECT_NE(error_after(bytes).find("nested"), std::string::npos);
}

TEST_F(GgufCorruptSample, RandomByteFlipsNeverCrash) {
  std::mt19937 rng(1234);
  // Only the header and directory: flips in tensor data are not structural.
  const size_t header_bytes = File::open(path)->data_offset();
  int rejected = 0;
  write_bytes(path, original);
  // Patch bytes in place (and back) rather than rewriting the file each time.
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  auto put_byte = [&](size_t pos, uint8_t value) {
    ASSERT_EQ(::pwrite(fd, &value, 1, static_cast<off_t>(pos)), 1);
  };
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<size_t> flipped;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t pos = rng() % header_bytes;
      flipped.push_back(pos);
      put_byte(pos, static_cast<uint8_t>(original[pos] ^ (1u << (rng() % 8))));
    }
    try {
      auto file = File::open(path);
      // When it opens, every tensor must lie inside the file.
      for (const auto& t : file->tensors()) {
        ASSERT_LE(file->data_offset() + t.offset + t.nbytes, file->size());
      }
    } catch (const std::runtime_error&) {
      ++rejected;
    }
    for (size_t pos : flipped) put_byte(pos, original[pos]);
  }
  ::close(fd);
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace cleave::gguf
