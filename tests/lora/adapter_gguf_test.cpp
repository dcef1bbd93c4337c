#include "lora/adapter_gguf.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "model/base_fingerprint.h"
#include "model/gguf.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"

namespace cleave::lora {
namespace {

TEST(AdapterGguf, SaveLoadRoundTripIsExact) {
  const std::string model_path = test::write_tiny_model("adapter_rt");
  auto model = load_llama(model_path, BaseQuant::none);
  LoraOptions options;
  options.rank = 3;
  options.alpha = 6;
  options.targets = {"q", "v", "down"};
  AdapterSet set = AdapterSet::create(*model, options, 2);
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, pair] : set.pairs()) pair.b.uniform_(-1, 1);
  }
  const std::string path = test::scratch_dir("adapter_rt_out") + "/adapter.gguf";
  save_gguf(set, *model, path);

  AdapterSet loaded = load_gguf(path, *model);
  EXPECT_EQ(loaded.options().rank, 3);
  EXPECT_DOUBLE_EQ(loaded.options().alpha, 6.0);
  EXPECT_EQ(loaded.options().targets, (std::vector<std::string>{"down", "q", "v"}));
  ASSERT_EQ(loaded.pairs().size(), set.pairs().size());
  for (const auto& [name, pair] : set.pairs()) {
    EXPECT_TRUE(at::equal(loaded.pairs().at(name).a, pair.a)) << name;
    EXPECT_TRUE(at::equal(loaded.pairs().at(name).b, pair.b)) << name;
  }
  // llama.cpp's convention on disk.
  auto file = gguf::File::open(path);
  EXPECT_EQ(file->get("general.type").as_string(), "adapter");
  EXPECT_EQ(file->get("adapter.type").as_string(), "lora");
  EXPECT_EQ(file->get("adapter.lora.alpha").type, gguf::ValueType::FLOAT32);
  const gguf::TensorInfo& a = file->tensor("blk.0.attn_q.weight.lora_a");
  EXPECT_EQ(a.ne, (std::vector<int64_t>{32, 3}));   // [in, r]
  const gguf::TensorInfo& b = file->tensor("blk.0.attn_q.weight.lora_b");
  EXPECT_EQ(b.ne, (std::vector<int64_t>{3, 32}));   // [r, out]
}

TEST(AdapterGguf, AdapterForADifferentBaseIsRefused) {
  auto model = load_llama(test::write_tiny_model("adapter_base_a"), BaseQuant::none);
  AdapterSet set = AdapterSet::create(*model, LoraOptions{}, 2);
  const std::string path = test::scratch_dir("adapter_base_out") + "/adapter.gguf";
  save_gguf(set, *model, path);

  LlamaConfig other = test::tiny_config();
  other.ffn_dim = 40;
  auto other_model = load_llama(test::write_tiny_model("adapter_base_b", 7, other), BaseQuant::none);
  try {
    load_gguf(path, *other_model);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("different base model"), std::string::npos) << e.what();
  }
}

TEST(AdapterGguf, LlamaCppStyleAdapterWithoutCleaveMetadataLoadsAndShapesAreChecked) {
  auto model = load_llama(test::write_tiny_model("adapter_llamacpp"), BaseQuant::none);
  const std::string dir = test::scratch_dir("adapter_llamacpp_out");
  // An adapter written the way llama.cpp's convert_lora_to_gguf.py writes one (F16 tensors).
  auto write = [&](const std::string& path, int64_t in) {
    gguf::Writer writer;
    writer.set("general.architecture", gguf::Value::str("llama"));
    writer.set("general.type", gguf::Value::str("adapter"));
    writer.set("adapter.type", gguf::Value::str("lora"));
    writer.set("adapter.lora.alpha", gguf::Value::f32(8.0f));
    std::vector<uint16_t> a(in * 2, 0x3C00);   // 1.0 in fp16
    std::vector<uint16_t> b(2 * 32, 0x3800);   // 0.5
    writer.add_tensor("blk.1.attn_k.weight.lora_a", gguf::TensorType::F16, {in, 2}, a.data(),
                      a.size() * 2);
    writer.add_tensor("blk.1.attn_k.weight.lora_b", gguf::TensorType::F16, {2, 16}, b.data(),
                      32 * 2);
    writer.write(path);
  };
  write(dir + "/good.gguf", 32);
  AdapterSet set = load_gguf(dir + "/good.gguf", *model);
  EXPECT_EQ(set.options().rank, 2);
  EXPECT_DOUBLE_EQ(set.scale(), 4.0);
  EXPECT_FLOAT_EQ(set.pairs().at("blk.1.attn_k.weight").b[3][1].item<float>(), 0.5f);

  write(dir + "/bad.gguf", 24);
  try {
    load_gguf(dir + "/bad.gguf", *model);
    FAIL() << "expected a shape error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is this the base model"), std::string::npos) << e.what();
  }
}

TEST(AdapterGguf, AdapterForASameShapeBaseWithOtherWeightsIsRefused) {
  const std::string model_path = test::write_tiny_model("adapter_same_shape_a", 7);
  auto site = load_llama(model_path, BaseQuant::int8);
  AdapterSet set = AdapterSet::create(*site, LoraOptions{}, 2);
  const std::string path = test::scratch_dir("adapter_same_shape_out") + "/adapter.gguf";
  save_gguf(set, *site, path);
  EXPECT_EQ(gguf::File::open(path)->get("cleave.base.fingerprint").as_string(), site->base_fingerprint());

  // The same file held as q4 (a split server's choice) is the same base.
  EXPECT_EQ(load_gguf(path, *load_llama(model_path, BaseQuant::q4)).pairs().size(), set.pairs().size());
  // Another base of the same shape is not.
  auto other = load_llama(test::write_tiny_model("adapter_same_shape_b", 8), BaseQuant::int8);
  try {
    load_gguf(path, *other);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("different base model (" + site->base_fingerprint() + ") than the one loaded (" +
                           other->base_fingerprint() + ")"),
              std::string::npos)
        << message;
  }
}

TEST(AdapterGguf, AnAdapterWithTheOldDimensionsOnlyFingerprintIsRefusedSayingWhy) {
  auto model = load_llama(test::write_tiny_model("adapter_legacy"), BaseQuant::none);
  AdapterFile file;
  file.base_fingerprint = base_dimensions(model->config());   // what cleave wrote before hashing weights
  file.lora.rank = 2;
  file.tensors["blk.0.attn_q.weight.lora_a"] = at::zeros({2, 32});
  file.tensors["blk.0.attn_q.weight.lora_b"] = at::zeros({32, 2});
  const std::string path = test::scratch_dir("adapter_legacy_out") + "/old.gguf";
  write_adapter_gguf(file, path);
  try {
    load_gguf(path, *model);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("(dim=32 layers=3 heads=4/2 ffn=48 vocab=64) than the one loaded (sha256:"),
              std::string::npos) << message;
    EXPECT_NE(message.find("holds only the dimensions"), std::string::npos) << message;
    EXPECT_NE(message.find("remove the file's cleave.base.fingerprint"), std::string::npos) << message;
  }
  // Without the key (as llama.cpp writes adapters) it loads.
  file.base_fingerprint.clear();
  write_adapter_gguf(file, path);
  EXPECT_EQ(load_gguf(path, *model).pairs().size(), 1u);
}

TEST(AdapterGguf, AdapterFileRoundTripsWithoutAModelAndKeepsExtraMetadata) {
  AdapterFile file;
  file.architecture = "qwen2";
  file.base_fingerprint = "sha256:abc dim=1";
  file.lora.rank = 2;
  file.lora.alpha = 5;
  file.lora.targets = {"v", "q"};
  file.tensors["blk.1.attn_v.weight.lora_a"] = at::arange(6, at::kFloat).reshape({2, 3});
  file.tensors["blk.1.attn_v.weight.lora_b"] = at::arange(8, at::kFloat).reshape({4, 2});
  file.extra["cleave.round"] = gguf::Value::str("7");
  file.extra["cleave.site.cut_layer"] = gguf::Value::u32(2);
  const std::string path = test::scratch_dir("adapter_file_rt") + "/adapter.gguf";
  write_adapter_gguf(file, path);

  const AdapterFile back = read_adapter_gguf(path);
  EXPECT_EQ(back.architecture, "qwen2");
  EXPECT_EQ(back.base_fingerprint, file.base_fingerprint);
  EXPECT_EQ(back.lora.rank, 2);
  EXPECT_DOUBLE_EQ(back.lora.alpha, 5.0);
  EXPECT_EQ(back.lora.targets, file.lora.targets);   // as written
  ASSERT_EQ(back.tensors.size(), 2u);
  for (const auto& [name, tensor] : file.tensors) EXPECT_TRUE(at::equal(back.tensors.at(name), tensor)) << name;
  ASSERT_EQ(back.extra.size(), 2u);
  EXPECT_EQ(back.extra.at("cleave.round").as_string(), "7");
  EXPECT_EQ(back.extra.at("cleave.site.cut_layer").as_int(), 2);

  file.tensors["blk.1.attn_q.weight.lora_a"] = at::zeros({3, 3});   // rank 3 beside rank 2
  file.tensors["blk.1.attn_q.weight.lora_b"] = at::zeros({4, 3});
  write_adapter_gguf(file, path);
  EXPECT_THROW(read_adapter_gguf(path), std::runtime_error);
  file.tensors.erase("blk.1.attn_q.weight.lora_a");
  write_adapter_gguf(file, path);
  EXPECT_THROW(read_adapter_gguf(path), std::runtime_error);   // lora_b without its lora_a
  file.tensors["blk.1.attn_q.weight"] = at::zeros({4, 3});
  EXPECT_THROW(write_adapter_gguf(file, path), std::invalid_argument);
}

TEST(AdapterGguf, BaseModelFileIsNotAnAdapter) {
  const std::string model_path = test::write_tiny_model("adapter_not");
  auto model = load_llama(model_path, BaseQuant::none);
  EXPECT_THROW(load_gguf(model_path, *model), std::runtime_error);
}

}  // namespace
}  // namespace cleave::lora
