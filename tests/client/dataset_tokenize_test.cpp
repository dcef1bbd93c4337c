// Records to examples through a hand-built SentencePiece vocabulary.
#include <gtest/gtest.h>

#include "client/batching.h"
#include "client/dataset.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "tests/support/shared_data.h"

namespace cleave::data {
namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// 0 <unk>, 1 <s>, 2 </s>, 3 "▁", 4 "a", 5 "b", 6 "▁a".
Tokenizer tiny_tokenizer() {
  Vocabulary vocab;
  vocab.tokens = {"<unk>", "<s>", "</s>", kSpace, "a", "b", kSpace + "a"};
  vocab.scores = {0, 0, 0, -1, -2, -3, -1.5f};
  vocab.kinds = {TokenKind::UNKNOWN, TokenKind::CONTROL, TokenKind::CONTROL, TokenKind::NORMAL,
                 TokenKind::NORMAL,  TokenKind::NORMAL,  TokenKind::NORMAL};
  vocab.bos = 1;
  vocab.eos = 2;
  vocab.unk = 0;
  return Tokenizer(vocab);
}

TEST(TokenizeRecords, TextGetsBosAndEos) {
  const Tokenizer tokenizer = tiny_tokenizer();
  Record record;
  record.text = "ab";  // "▁ab" -> ▁a b
  const Example example = tokenize_record(tokenizer, record);
  EXPECT_EQ(example.tokens, (std::vector<int32_t>{1, 6, 5, 2}));
  EXPECT_EQ(example.loss_mask, (std::vector<uint8_t>{1, 1, 1}));
}

TEST(TokenizeRecords, PromptAndCompletionAreEncodedSeparately) {
  const Tokenizer tokenizer = tiny_tokenizer();
  Record record;
  record.has_prompt = true;
  record.prompt = "ab";    // ▁a b
  record.text = "b";       // ▁ b: its own space prefix
  const Example example = tokenize_record(tokenizer, record);
  EXPECT_EQ(example.tokens, (std::vector<int32_t>{1, 6, 5, 3, 5, 2}));
  EXPECT_EQ(example.loss_mask, (std::vector<uint8_t>{0, 0, 1, 1, 1}));

  const std::vector<Example> examples = tokenize_records(tokenizer, {record, record});
  ASSERT_EQ(examples.size(), 2u);
  // In a batch the prompt's targets carry weight 0.
  const Batch batch = collate({examples[0]}, 5, 0);
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{6, 5, 3, 5, 2}));
  EXPECT_EQ(batch.weights, (std::vector<float>{0, 0, 1, 1, 1}));
  EXPECT_EQ(batch.n_target_tokens, 3);
}

TEST(TokenizeRecords, SharedE2eWithStoriesTokenizer) {
  CLEAVE_REQUIRE_SHARED(model, "models/stories260K.gguf");
  CLEAVE_REQUIRE_SHARED(data, "data/e2e/e2e_valid.jsonl");
  const Tokenizer tokenizer = Tokenizer::from_gguf(*gguf::File::open(model));
  const std::vector<Record> records = read_records(data);
  const std::vector<Example> examples =
      tokenize_records(tokenizer, {records.begin(), records.begin() + 20});
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& example = examples[i];
    const std::vector<TokenId> prompt = tokenizer.encode(records[i].prompt, false);
    const std::vector<TokenId> completion = tokenizer.encode(records[i].text, false);
    ASSERT_EQ(example.tokens.size(), prompt.size() + completion.size() + 2);
    EXPECT_EQ(example.tokens.front(), tokenizer.bos());
    EXPECT_EQ(example.tokens.back(), tokenizer.eos());
    // Trained targets: the completion and EOS, nothing of the prompt.
    EXPECT_EQ(example.n_targets(), static_cast<int64_t>(completion.size()) + 1);
    EXPECT_EQ(tokenizer.decode(std::vector<TokenId>(example.tokens.begin() + 1 + prompt.size(),
                                                    example.tokens.end() - 1)),
              records[i].text);
  }
}

}  // namespace
}  // namespace cleave::data
