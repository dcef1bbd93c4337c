// The aggregator's adapters on disk without a base model, and its round
// checkpoint (GGUF + safetensors + state.json).
#include "aggregator/global_adapters.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "aggregator/aggregator_checkpoint.h"
#include "lora/adapter_gguf.h"
#include "lora/adapter_set.h"
#include "model/model_loader.h"
#include "tests/support/tiny_model.h"

namespace cleave::aggregator {
namespace {

class GlobalAdaptersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("global_adapters");
    model_path_ = test::write_tiny_model("global_adapters_model", 4);
    model_ = load_llama(model_path_, BaseQuant::int8);
    lora_.rank = 3;
    lora_.alpha = 6;
    lora_.targets = {"q", "k", "up"};
  }
  std::string dir_, model_path_;
  std::shared_ptr<LlamaModel> model_;
  lora::LoraOptions lora_;
};

TEST_F(GlobalAdaptersTest, FromTheModelCoversOnlyTheClientBlocks) {
  const split::SiteBlocks vanilla{split::SiteLayout::vanilla, 2, 0};
  const GlobalAdapters global = global_adapters_for_model(*model_, lora_, 5, vanilla);
  EXPECT_EQ(global.base_fingerprint, model_->base_fingerprint());
  EXPECT_EQ(global.tensors.size(), 2u * 3 * 2);   // blocks 0, 1 x q, k, up x a, b
  for (const auto& [name, tensor] : global.tensors) EXPECT_LT(lora::layer_of(name), 2) << name;
  // The same values AdapterSet::create gives, restricted to the client blocks.
  const lora::NamedTensors full = lora::AdapterSet::create(*model_, lora_, 5).to_named();
  for (const auto& [name, tensor] : global.tensors) EXPECT_TRUE(at::equal(tensor, full.at(name))) << name;
  EXPECT_EQ(global_adapters_for_model(*model_, lora_, 5, split::all_blocks()).tensors.size(), 3u * 3 * 2);
  EXPECT_THROW(global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::vanilla, 3, 0}), std::invalid_argument);
}

TEST_F(GlobalAdaptersTest, UShapedCoversTheBottomAndTopBlocks) {
  // 3 blocks: the sites run 0 and 2, the split server 1.
  const GlobalAdapters global = global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::u_shaped, 1, 2});
  EXPECT_EQ(global.tensors.size(), 2u * 3 * 2);   // blocks 0, 2 x q, k, up x a, b
  for (const auto& [name, tensor] : global.tensors) EXPECT_NE(lora::layer_of(name), 1) << name;
  ASSERT_TRUE(global.blocks.has_value());
  EXPECT_EQ(global.blocks->describe(), "u_shaped, cut_layer 1, top_cut 2");
  // top_cut must lie above cut_layer and within the model.
  EXPECT_THROW(global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::u_shaped, 1, 1}), std::invalid_argument);
  EXPECT_THROW(global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::u_shaped, 1, 4}), std::invalid_argument);

  // The layout travels with the file, so an aggregator started from it checks sites the same way.
  const std::string path = dir_ + "/u_shaped.gguf";
  save_global_adapters(global, path);
  const GlobalAdapters back = load_global_adapters(path);
  ASSERT_TRUE(back.blocks.has_value());
  EXPECT_EQ(*back.blocks, *global.blocks);
  // A file without the layout (a plain adapter) loads with none.
  lora::save_gguf(lora::AdapterSet::create(*model_, lora_, 1), *model_, dir_ + "/plain-layout.gguf");
  EXPECT_FALSE(load_global_adapters(dir_ + "/plain-layout.gguf").blocks.has_value());
}

TEST_F(GlobalAdaptersTest, SavedFileLoadsWithAndWithoutTheModel) {
  GlobalAdapters global = global_adapters_for_model(*model_, lora_, 5, split::all_blocks());
  for (auto& [name, tensor] : global.tensors) tensor = tensor + 0.25;   // B is no longer zero
  const std::string path = dir_ + "/global.gguf";
  save_global_adapters(global, path, {{"cleave.round", "4"}});

  const GlobalAdapters back = load_global_adapters(path);
  EXPECT_EQ(back.base_fingerprint, global.base_fingerprint);
  EXPECT_EQ(back.architecture, "llama");
  EXPECT_EQ(back.lora.rank, 3);
  EXPECT_EQ(back.lora.alpha, 6);
  EXPECT_EQ(back.lora.targets, lora_.targets);
  ASSERT_EQ(back.tensors.size(), global.tensors.size());
  for (const auto& [name, tensor] : global.tensors) EXPECT_TRUE(at::equal(back.tensors.at(name), tensor)) << name;

  // The same file is a LoRA adapter for the model (lora::load_gguf, llama.cpp's layout).
  const lora::NamedTensors with_model = lora::load_gguf(path, *model_).to_named();
  for (const auto& [name, tensor] : global.tensors) EXPECT_TRUE(at::equal(with_model.at(name), tensor)) << name;
}

TEST_F(GlobalAdaptersTest, RefusesFilesThatAreNotCleaveAdapters) {
  EXPECT_THROW(load_global_adapters(model_path_), std::runtime_error);   // a base model, not an adapter
  const lora::AdapterSet set = lora::AdapterSet::create(*model_, lora_, 1);
  const std::string path = dir_ + "/plain.gguf";
  lora::save_gguf(set, *model_, path);
  EXPECT_EQ(load_global_adapters(path).tensors.size(), set.to_named().size());
}

TEST_F(GlobalAdaptersTest, CheckpointRoundTripsAndNamesFilesAfterTheRoundAsLogged) {
  AggregatorCheckpoint checkpoint;
  checkpoint.completed_rounds = 2;
  checkpoint.strategy = "fedadam";
  checkpoint.seed = 18446744073709551557ull;   // above int64: stored as a string
  checkpoint.global = global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::vanilla, 1, 0});
  checkpoint.strategy_state = {{"m/x", at::randn({2, 3})}, {"step", at::scalar_tensor(2, at::kLong)}};
  checkpoint.registered = {{"site-a", 10}, {"site-b", 20}};
  save_checkpoint(dir_, checkpoint);
  checkpoint.completed_rounds = 3;
  checkpoint.strategy_state["step"] = at::scalar_tensor(3, at::kLong);
  save_checkpoint(dir_, checkpoint);

  const std::optional<AggregatorCheckpoint> back = load_checkpoint(dir_);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->completed_rounds, 3u);
  EXPECT_EQ(back->strategy, "fedadam");
  EXPECT_EQ(back->seed, checkpoint.seed);
  EXPECT_EQ(back->registered, checkpoint.registered);
  EXPECT_TRUE(at::equal(back->strategy_state.at("m/x"), checkpoint.strategy_state.at("m/x")));
  EXPECT_EQ(back->strategy_state.at("step").scalar_type(), at::kLong);
  EXPECT_EQ(back->strategy_state.at("step").item<int64_t>(), 3);
  for (const auto& [name, tensor] : checkpoint.global.tensors) {
    EXPECT_TRUE(at::equal(back->global.tensors.at(name), tensor)) << name;
  }
  // Named as the logs name rounds (from 0): 3 completed rounds end with round 2.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"adapters-round-000001.gguf", "adapters-round-000002.gguf",
                                             "state.json", "strategy-round-000002.safetensors"}));
  EXPECT_EQ(checkpoint_adapters_file(2), "adapters-round-000002.gguf");
  EXPECT_FALSE(load_checkpoint(test::scratch_dir("global_adapters_empty")).has_value());
}

// The last round's sites and weights are what a restarted aggregator closes
// a split server's missed round with; weights that do not fit them are refused.
TEST_F(GlobalAdaptersTest, CheckpointKeepsTheLastRoundsSitesWithTheirWeights) {
  AggregatorCheckpoint checkpoint;
  checkpoint.completed_rounds = 1;
  checkpoint.strategy = "fedavg";
  checkpoint.global = global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::vanilla, 1, 0});
  checkpoint.last_round_sites = {"site-a", "site-b"};
  checkpoint.last_round_weights = {120, 7.5};
  save_checkpoint(dir_, checkpoint);
  const std::optional<AggregatorCheckpoint> back = load_checkpoint(dir_);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->last_round_sites, checkpoint.last_round_sites);
  EXPECT_EQ(back->last_round_weights, checkpoint.last_round_weights);

  const std::string state = dir_ + "/state.json";
  std::ifstream in(state);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t at = text.find("7.5");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 3, "-1");
  std::ofstream(state) << text;
  try {
    load_checkpoint(dir_);
    FAIL() << "a negative weight was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("last_round_weights"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("state.json"), std::string::npos) << e.what();
  }
}

TEST_F(GlobalAdaptersTest, CheckpointsKeepTheAdaptersOfTheLastNRounds) {
  AggregatorCheckpoint checkpoint;
  checkpoint.strategy = "fedavg";
  checkpoint.global = global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::vanilla, 1, 0});
  for (uint32_t completed = 1; completed <= 5; ++completed) {
    checkpoint.completed_rounds = completed;
    save_checkpoint(dir_, checkpoint, 2);
  }
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files,
            (std::vector<std::string>{"adapters-round-000003.gguf", "adapters-round-000004.gguf", "state.json"}));
  EXPECT_EQ(load_checkpoint(dir_)->completed_rounds, 5u);

  checkpoint.completed_rounds = 0;
  EXPECT_THROW(save_checkpoint(dir_, checkpoint), std::invalid_argument);
}

// An aggregator killed while it writes round 2's checkpoint leaves what a
// crash at any point of save_checkpoint leaves: round 2's files half
// written (its adapters, its .tmp state), state.json still naming round 1.
// The restart resumes from round 1, whole, and the next save replaces the
// debris.
TEST_F(GlobalAdaptersTest, ACheckpointCutShortByAKillLeavesThePreviousRoundWhole) {
  AggregatorCheckpoint checkpoint;
  checkpoint.strategy = "fedavg";
  checkpoint.global = global_adapters_for_model(*model_, lora_, 5, {split::SiteLayout::vanilla, 1, 0});
  checkpoint.completed_rounds = 2;   // after round 1
  save_checkpoint(dir_, checkpoint);
  const NamedTensors round_1 = checkpoint.global.tensors;

  std::ofstream(dir_ + "/" + checkpoint_adapters_file(2)) << "GGUF, cut off mid-write";
  std::ofstream(dir_ + "/state.json.tmp") << R"({"format": "cleave.aggregator.state", "completed_rou)";
  const std::optional<AggregatorCheckpoint> resumed = load_checkpoint(dir_);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->completed_rounds, 2u);
  for (const auto& [name, tensor] : round_1) EXPECT_TRUE(at::equal(resumed->global.tensors.at(name), tensor)) << name;

  checkpoint.completed_rounds = 3;
  for (auto& [name, tensor] : checkpoint.global.tensors) tensor = tensor + 1;
  save_checkpoint(dir_, checkpoint);
  const std::optional<AggregatorCheckpoint> next = load_checkpoint(dir_);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->completed_rounds, 3u);
  for (const auto& [name, tensor] : checkpoint.global.tensors) EXPECT_TRUE(at::equal(next->global.tensors.at(name), tensor));
}

TEST_F(GlobalAdaptersTest, RefusesAStateOfAnotherVersion) {
  std::ofstream(dir_ + "/state.json") << R"({"format": "cleave.aggregator.state", "version": 9})";
  try {
    load_checkpoint(dir_);
    FAIL() << "version 9 was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 9, expected 1"), std::string::npos) << e.what();
  }
  std::ofstream(dir_ + "/state.json") << R"({"format": "something else", "version": 1})";
  EXPECT_THROW(load_checkpoint(dir_), std::runtime_error);
}

}  // namespace
}  // namespace cleave::aggregator
