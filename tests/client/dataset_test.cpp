// Reading records and making batches, on pre-tokenized examples (the
// tokenizer's part is in dataset_tokenize_test.cpp).
#include "client/dataset.h"

#include <fstream>
#include <gtest/gtest.h>
#include <set>

#include "client/batching.h"
#include "client/shuffle.h"
#include "tests/support/shared_data.h"

namespace cleave::data {
namespace {

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

// The DataError message reading `path` produces (fails the test if none).
std::string read_error(const std::string& path, const ReadOptions& options = {}) {
  try {
    read_records(path, options);
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a DataError reading " << path;
  return "";
}

// ---------------------------------------------------------------- reading

TEST(ReadRecords, JsonlTextAndPromptCompletion) {
  const std::string dir = test::scratch_dir("dataset_jsonl");
  const std::string path = write_file(
      dir, "mixed.jsonl",
      "\xEF\xBB\xBF{\"text\": \"once upon a time\", \"id\": 3}\r\n"
      "\n"
      "   \n"
      "{\"prompt\": \"name[Aromi]\", \"completion\": \"Aromi is a cafe.\"}\n"
      "{\"text\": \"line\\nbreak \\u00e9\"}");  // no final newline
  const std::vector<Record> records = read_records(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].text, "once upon a time");
  EXPECT_FALSE(records[0].has_prompt);
  EXPECT_TRUE(records[1].has_prompt);
  EXPECT_EQ(records[1].prompt, "name[Aromi]");
  EXPECT_EQ(records[1].text, "Aromi is a cafe.");
  EXPECT_EQ(records[2].text, "line\nbreak \xC3\xA9");
  for (const Record& record : records) EXPECT_EQ(record.source, path);
}

TEST(ReadRecords, MalformedLineNamesFileAndLine) {
  const std::string dir = test::scratch_dir("dataset_malformed");
  const std::string path = write_file(dir, "x.jsonl",
                                      "{\"text\": \"ok\"}\n"
                                      "\n"
                                      "{\"text\": \"unterminated}\n");
  EXPECT_EQ(read_error(path),
            path + ":3: expected a JSON object with \"text\" or \"prompt\"+\"completion\": "
                   "column 10: syntax error while parsing value - invalid string: missing closing quote");
}

TEST(ReadRecords, MissingFieldsNameFileAndLine) {
  const std::string dir = test::scratch_dir("dataset_missing_field");
  const std::string path = write_file(dir, "x.jsonl",
                                      "{\"text\": \"ok\"}\n"
                                      "{\"body\": \"no text here\", \"n\": 1}\n");
  EXPECT_EQ(read_error(path), path +
                                  ":2: expected a JSON object with \"text\" or "
                                  "\"prompt\"+\"completion\", got keys \"body\", \"n\"");

  const std::string half = write_file(dir, "half.jsonl", "{\"prompt\": \"p\"}\n");
  EXPECT_NE(read_error(half).find(half + ":1: expected a JSON object"), std::string::npos);

  const std::string array = write_file(dir, "array.jsonl", "[\"text\"]\n");
  EXPECT_EQ(read_error(array), array +
                                   ":1: expected a JSON object with \"text\" or "
                                   "\"prompt\"+\"completion\", got array");
}

TEST(ReadRecords, NonStringValuesAreRefused) {
  const std::string dir = test::scratch_dir("dataset_non_string");
  const std::string text = write_file(dir, "a.jsonl", "\n{\"text\": 42}\n");
  EXPECT_EQ(read_error(text), text + ":2: \"text\" must be a string, got number");
  const std::string completion =
      write_file(dir, "b.jsonl", "{\"prompt\": \"p\", \"completion\": null}\n");
  EXPECT_EQ(read_error(completion), completion + ":1: \"completion\" must be a string, got null");
}

TEST(ReadRecords, MissingAndEmptyFilesAreNamed) {
  const std::string dir = test::scratch_dir("dataset_missing_file");
  const std::string missing = dir + "/nope.jsonl";
  const std::string message = read_error(missing);
  EXPECT_NE(message.find(missing), std::string::npos) << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;

  const std::string empty = write_file(dir, "empty.jsonl", "\n\n");
  EXPECT_NE(read_error(empty).find(empty + ": no records"), std::string::npos);
}

TEST(ReadRecords, LabelField) {
  const std::string dir = test::scratch_dir("dataset_label");
  const std::string path = write_file(dir, "l.jsonl",
                                      "{\"text\": \"a\", \"site\": \"cdc\"}\n"
                                      "{\"text\": \"b\", \"site\": 7}\n");
  ReadOptions options;
  options.label_field = "site";
  const std::vector<Record> records = read_records(path, options);
  EXPECT_EQ(records[0].label, "cdc");
  EXPECT_EQ(records[1].label, "7");

  const std::string unlabeled = write_file(dir, "u.jsonl", "{\"text\": \"a\"}\n");
  EXPECT_EQ(read_error(unlabeled, options),
            unlabeled + ":1: no \"site\" field, which was asked for as the label");
  const std::string text = write_file(dir, "t.txt", "plain\n");
  EXPECT_NE(read_error(text, options).find("plain text has no fields"), std::string::npos);
}

TEST(ReadRecords, PlainTextDocumentsAreSeparatedByBlankLines) {
  const std::string dir = test::scratch_dir("dataset_text");
  const std::string path = write_file(dir, "corpus.txt",
                                      "\n\nFirst story,\r\nsecond line.\n"
                                      "  \t \n"
                                      "\n"
                                      "Second story.\n");
  const std::vector<Record> records = read_records(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].text, "First story,\nsecond line.");
  EXPECT_EQ(records[1].text, "Second story.");
  EXPECT_FALSE(records[0].has_prompt);
  EXPECT_EQ(records[1].source, path);
}

// What the JSON/JSONL fuzz target (fuzz/json_dataset_fuzz.cpp) reads: text
// already in memory, the name choosing JSONL or plain text and naming it.
TEST(ReadRecords, RecordsFromTextNameTheirSource) {
  const std::vector<Record> jsonl =
      records_from_text("\xEF\xBB\xBF{\"prompt\": \"q\", \"completion\": \"a\"}\r\n", "mem.jsonl");
  ASSERT_EQ(jsonl.size(), 1u);
  EXPECT_TRUE(jsonl[0].has_prompt);
  EXPECT_EQ(jsonl[0].source, "mem.jsonl");
  EXPECT_EQ(jsonl[0].line, 1);
  EXPECT_EQ(records_from_text("one\n\ntwo\n", "mem.txt").size(), 2u);
  try {
    records_from_text("{\"text\": 1}\n", "mem.jsonl");
    FAIL() << "a number as text was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("mem.jsonl:1"), std::string::npos) << e.what();
  }
}

TEST(ReadRecords, SeveralFilesInOrder) {
  const std::string dir = test::scratch_dir("dataset_several");
  const std::string a = write_file(dir, "a.jsonl", "{\"text\": \"1\"}\n{\"text\": \"2\"}\n");
  const std::string b = write_file(dir, "b.txt", "3\n");
  const std::vector<Record> records = read_records(std::vector<std::string>{a, b});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].text, "3");
  EXPECT_EQ(records[1].source, a);
  EXPECT_EQ(records[2].source, b);
}

TEST(ReadRecords, SharedMedquadFileReads) {
  CLEAVE_REQUIRE_SHARED(path, "data/medquad/medquad_cdc.jsonl");
  const std::vector<Record> records = read_records(path);
  EXPECT_GT(records.size(), 10u);
  for (const Record& record : records) EXPECT_EQ(record.text.rfind("Question: ", 0), 0u);
}

TEST(ReadRecords, SharedE2eFileHasPrompts) {
  CLEAVE_REQUIRE_SHARED(path, "data/e2e/e2e_valid.jsonl");
  const std::vector<Record> records = read_records(path);
  ASSERT_FALSE(records.empty());
  EXPECT_TRUE(records[0].has_prompt);
  EXPECT_FALSE(records[0].text.empty());
}

// ---------------------------------------------------------------- examples

constexpr int32_t kBos = 1, kEos = 2, kPad = 0;

TEST(Examples, TextExampleTrainsEveryTarget) {
  const Example e = make_text_example({10, 11, 12}, kBos, kEos);
  EXPECT_EQ(e.tokens, (std::vector<int32_t>{1, 10, 11, 12, 2}));
  EXPECT_EQ(e.loss_mask, (std::vector<uint8_t>{1, 1, 1, 1}));
  EXPECT_EQ(e.n_targets(), 4);
}

TEST(Examples, PromptTokensCarryNoLoss) {
  const Example e = make_prompt_example({20, 21}, {30, 31, 32}, kBos, kEos);
  EXPECT_EQ(e.tokens, (std::vector<int32_t>{1, 20, 21, 30, 31, 32, 2}));
  // Targets 20, 21 (prompt) untrained; 30 (predicted from the last prompt
  // token 21), 31, 32 and EOS trained.
  EXPECT_EQ(e.loss_mask, (std::vector<uint8_t>{0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(e.n_targets(), 4);
}

// ---------------------------------------------------------------- batching

std::vector<size_t> in_order(size_t n) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  return order;
}

TEST(Packing, WindowsOverlapByOneTokenAndDropTheTail) {
  // Stream: 1 10 11 2 | 1 20 21 22 2 | 1 30 2  -> T = 12 tokens, 11 targets.
  const std::vector<Example> examples = {make_text_example({10, 11}, kBos, kEos),
                                         make_prompt_example({20}, {21, 22}, kBos, kEos),
                                         make_text_example({30}, kBos, kEos)};
  const std::vector<Example> rows = pack_rows(examples, in_order(3), 4);
  ASSERT_EQ(rows.size(), 2u);  // floor((12 - 1) / 4)
  EXPECT_EQ(rows[0].tokens, (std::vector<int32_t>{1, 10, 11, 2, 1}));
  EXPECT_EQ(rows[0].loss_mask, (std::vector<uint8_t>{1, 1, 1, 0}));  // EOS -> BOS untrained
  EXPECT_EQ(rows[1].tokens, (std::vector<int32_t>{1, 20, 21, 22, 2}));
  EXPECT_EQ(rows[1].loss_mask, (std::vector<uint8_t>{0, 1, 1, 1}));  // prompt token 20 untrained

  EXPECT_EQ(pack_rows(examples, in_order(3), 11).size(), 1u);
  EXPECT_EQ(pack_rows(examples, in_order(3), 12).size(), 0u);
  EXPECT_EQ(pack_rows(examples, in_order(3), 1).size(), 11u);  // every target once
  EXPECT_EQ(pack_rows(examples, {2, 0}, 4).size(), 1u);        // 7 tokens: floor(6 / 4)
}

TEST(Packing, EveryStreamTargetAppearsExactlyOnce) {
  std::vector<Example> examples;
  int64_t total_tokens = 0;
  for (int i = 0; i < 20; ++i) {
    std::vector<int32_t> text(static_cast<size_t>(i % 7 + 1), 100 + i);
    examples.push_back(make_text_example(text, kBos, kEos));
    total_tokens += static_cast<int64_t>(examples.back().tokens.size());
  }
  const int64_t seq_len = 5;
  const std::vector<Example> rows = pack_rows(examples, in_order(examples.size()), seq_len);
  EXPECT_EQ(static_cast<int64_t>(rows.size()), (total_tokens - 1) / seq_len);
  for (size_t r = 1; r < rows.size(); ++r) {
    EXPECT_EQ(rows[r].tokens.front(), rows[r - 1].tokens.back());  // overlap of one token
  }
}

TEST(Epochs, RowsPerEpochIsWhatTheStreamCutsAndStepsRoundUp) {
  std::vector<Example> examples;
  for (int i = 0; i < 20; ++i) {
    examples.push_back(make_text_example(std::vector<int32_t>(static_cast<size_t>(i % 7 + 1), 100 + i), kBos, kEos));
  }
  for (int64_t seq_len : {1, 3, 5, 16}) {
    BatchOptions options;
    options.seq_len = seq_len;
    options.batch_size = 4;
    const int64_t rows = static_cast<int64_t>(pack_rows(examples, in_order(examples.size()), seq_len).size());
    EXPECT_EQ(rows_per_epoch(examples, options), rows) << "seq_len " << seq_len;
    EXPECT_EQ(steps_for_epochs(examples, options, 1.0), (rows + 3) / 4) << "ceil(rows / batch)";
    EXPECT_EQ(steps_for_epochs(examples, options, 3.0), (3 * rows + 3) / 4);
    // An epoch of steps from a BatchStream starts the next epoch exactly
    // when the count says so (whole batches; the stream continues over the edge).
    BatchStream stream(examples, options);
    for (int64_t s = 0; s < rows / 4; ++s) stream.next();
    EXPECT_EQ(stream.epoch(), rows % 4 == 0 ? 1 : 0) << "seq_len " << seq_len;
  }
  BatchOptions padding;
  padding.mode = BatchMode::padding;
  padding.batch_size = 8;
  EXPECT_EQ(rows_per_epoch(examples, padding), 20);
  EXPECT_EQ(steps_for_epochs(examples, padding, 1.0), 3);
  EXPECT_EQ(steps_for_epochs(examples, padding, 0.1), 1) << "at least one step";
  EXPECT_THROW(steps_for_epochs(examples, padding, 0.0), std::invalid_argument);
}

TEST(Padding, TruncatesAndPadsWithZeroWeight) {
  const std::vector<Example> examples = {make_prompt_example({20, 21}, {30}, kBos, kEos),
                                         make_text_example({10, 11, 12, 13, 14, 15}, kBos, kEos)};
  const std::vector<Example> rows = pad_rows(examples, in_order(2), 4);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].tokens, (std::vector<int32_t>{1, 10, 11, 12, 13}));  // seq_len + 1 tokens
  EXPECT_EQ(rows[1].loss_mask.size(), 4u);

  const Batch batch = collate(rows, 4, kPad);
  EXPECT_EQ(batch.batch_size, 2);
  EXPECT_EQ(batch.seq_len, 4);
  // Row 0: 1 20 21 30 2 fills all 4 positions; prompt targets 20, 21 weight 0.
  EXPECT_EQ(batch.inputs, (std::vector<int32_t>{1, 20, 21, 30, 1, 10, 11, 12}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{20, 21, 30, 2, 10, 11, 12, 13}));
  EXPECT_EQ(batch.weights, (std::vector<float>{0, 0, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(batch.n_target_tokens, 6);

  const Batch wide = collate(rows, 7, kPad);
  EXPECT_EQ(wide.inputs, (std::vector<int32_t>{1, 20, 21, 30, 0, 0, 0, 1, 10, 11, 12, 0, 0, 0}));
  EXPECT_EQ(wide.targets, (std::vector<int32_t>{20, 21, 30, 2, 0, 0, 0, 10, 11, 12, 13, 0, 0, 0}));
  EXPECT_EQ(wide.weights, (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(wide.n_target_tokens, 6);
}

TEST(Collate, RejectsRowsThatDoNotFit) {
  const std::vector<Example> rows = {make_text_example({10, 11, 12}, kBos, kEos)};
  EXPECT_THROW(collate(rows, 3, kPad), std::invalid_argument);
  Example bad = rows[0];
  bad.loss_mask.pop_back();
  EXPECT_THROW(collate({bad}, 8, kPad), std::invalid_argument);
  EXPECT_THROW(pack_rows({bad}, {0}, 2), std::invalid_argument);
}

TEST(EvalBatches, FileOrderAndAShortLastBatch) {
  std::vector<Example> examples;
  for (int i = 0; i < 5; ++i) examples.push_back(make_text_example({100 + i}, kBos, kEos));
  BatchOptions options;
  options.mode = BatchMode::padding;
  options.batch_size = 2;
  options.seq_len = 4;
  const std::vector<Batch> batches = eval_batches(examples, options);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].batch_size, 1);
  EXPECT_EQ(batches[0].inputs[1], 100);
  EXPECT_EQ(batches[1].inputs[1], 102);
  EXPECT_EQ(batches[2].inputs[1], 104);
  EXPECT_EQ(batches[2].n_target_tokens, 2);

  options.mode = BatchMode::packing;  // 15 tokens, 14 targets -> 3 rows of 4
  const std::vector<Batch> packed = eval_batches(examples, options);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[1].batch_size, 1);
  EXPECT_EQ(packed[0].inputs, (std::vector<int32_t>{1, 100, 2, 1, 101, 2, 1, 102}));

  options.seq_len = 15;
  EXPECT_THROW(eval_batches(examples, options), std::invalid_argument);
  EXPECT_THROW(eval_batches({}, BatchOptions{}), std::invalid_argument);
}

TEST(BatchOptions, Validation) {
  BatchOptions options;
  options.batch_size = 0;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = BatchOptions{};
  options.seq_len = -1;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  EXPECT_EQ(parse_batch_mode("padding"), BatchMode::padding);
  EXPECT_THROW(parse_batch_mode("pack"), std::invalid_argument);
}

std::vector<Example> numbered_examples(int n) {
  std::vector<Example> examples;
  for (int i = 0; i < n; ++i) examples.push_back(make_text_example({1000 + i}, kBos, kEos));
  return examples;
}

// The example ids (1000 + i) of each row of a padded batch.
std::vector<int32_t> row_ids(const Batch& batch) {
  std::vector<int32_t> ids;
  for (int64_t r = 0; r < batch.batch_size; ++r) ids.push_back(batch.inputs[r * batch.seq_len + 1]);
  return ids;
}

TEST(BatchStream, ShufflingIsDeterministicPerSeed) {
  BatchOptions options;
  options.mode = BatchMode::padding;
  options.batch_size = 4;
  options.seq_len = 3;
  options.seed = 7;
  BatchStream a(numbered_examples(16), options), b(numbered_examples(16), options);
  options.seed = 8;
  BatchStream c(numbered_examples(16), options);
  std::vector<int32_t> ids_a, ids_b, ids_c;
  for (int i = 0; i < 4; ++i) {
    for (int32_t id : row_ids(a.next())) ids_a.push_back(id);
    for (int32_t id : row_ids(b.next())) ids_b.push_back(id);
    for (int32_t id : row_ids(c.next())) ids_c.push_back(id);
  }
  EXPECT_EQ(ids_a, ids_b);
  EXPECT_NE(ids_a, ids_c);
  std::vector<int32_t> unshuffled(16);
  for (int i = 0; i < 16; ++i) unshuffled[i] = 1000 + i;
  EXPECT_NE(ids_a, unshuffled);
}

TEST(BatchStream, EachEpochIsAPermutationAndBatchesSpanEpochs) {
  BatchOptions options;
  options.mode = BatchMode::padding;
  options.batch_size = 4;
  options.seq_len = 2;
  options.seed = 3;
  BatchStream stream(numbered_examples(6), options);
  EXPECT_EQ(stream.rows_per_epoch(), 6);
  EXPECT_EQ(stream.epoch(), 0);
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) {  // 12 rows = 2 epochs exactly
    const Batch batch = stream.next();
    EXPECT_EQ(batch.batch_size, 4);  // full even across the epoch boundary
    for (int32_t id : row_ids(batch)) ids.push_back(id);
  }
  EXPECT_EQ(stream.epoch(), 2);
  const std::vector<int32_t> first(ids.begin(), ids.begin() + 6),
      second(ids.begin() + 6, ids.end());
  EXPECT_EQ(std::set<int32_t>(first.begin(), first.end()).size(), 6u);
  EXPECT_EQ(std::set<int32_t>(second.begin(), second.end()).size(), 6u);
  EXPECT_NE(first, second);  // re-shuffled for epoch 1
}

TEST(BatchStream, PackingRepacksEachEpoch) {
  std::vector<Example> examples;
  for (int i = 0; i < 8; ++i) {
    examples.push_back(make_text_example(std::vector<int32_t>(static_cast<size_t>(i + 1), 50 + i),
                                         kBos, kEos));
  }
  BatchOptions options;
  options.batch_size = 2;
  options.seq_len = 8;
  options.seed = 11;
  BatchStream stream(examples, options);
  // 8 examples of 3..10 tokens: 52 tokens, 51 targets -> 6 rows per epoch.
  EXPECT_EQ(stream.rows_per_epoch(), 6);
  const Batch batch = stream.next();
  EXPECT_EQ(batch.batch_size, 2);
  EXPECT_EQ(batch.seq_len, 8);
  EXPECT_EQ(batch.inputs.size(), 16u);
  for (size_t i = 0; i < batch.inputs.size(); ++i) {
    // A target after EOS (the next example's BOS) is never trained on.
    if (batch.inputs[i] == kEos) EXPECT_EQ(batch.weights[i], 0.0f);
    else EXPECT_EQ(batch.weights[i], 1.0f);
  }
}

TEST(BatchStream, TooFewTokensForOneRowIsAnError) {
  BatchOptions options;
  options.seq_len = 100;
  try {
    BatchStream stream(numbered_examples(3), options);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than seq_len + 1 = 101"), std::string::npos);
  }
}

TEST(Shuffle, EpochOrderIsAFixedPermutation) {
  // The C++ standard fixes mt19937_64's output: its 10000th value from the
  // default seed is 9981545732273789042.
  std::mt19937_64 standard;
  standard.discard(9999);
  EXPECT_EQ(standard(), 9981545732273789042ULL);

  const std::vector<size_t> order = epoch_order(10, 42, 0);
  std::vector<size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, in_order(10));
  EXPECT_EQ(order, epoch_order(10, 42, 0));
  EXPECT_NE(order, epoch_order(10, 42, 1));
  EXPECT_NE(order, epoch_order(10, 43, 0));
}

TEST(Shuffle, UniformBelowCoversTheRangeEvenly) {
  Rng rng = seeded_rng(5);
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) ++counts[uniform_below(rng, 6)];
  for (int count : counts) EXPECT_NEAR(count, 10000, 500);
}

// ---------------------------------------------------------------- perplexity

TEST(PerplexityChunks, MatchesLlamaCppScheme) {
  const std::vector<int32_t> tokens = {1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const auto chunks = perplexity_chunks(tokens, 5, 1);
  ASSERT_EQ(chunks.size(), 2u);  // 12 / 5; tokens 19, 20 dropped
  EXPECT_EQ(chunks[0], (std::vector<int32_t>{1, 10, 11, 12, 13}));
  EXPECT_EQ(chunks[1], (std::vector<int32_t>{1, 15, 16, 17, 18}));  // 14 replaced by BOS
  EXPECT_EQ(perplexity_first_scored(5), 2);
  EXPECT_EQ(perplexity_first_scored(512), 256);
  EXPECT_THROW(perplexity_chunks(tokens, 13, 1), std::invalid_argument);
  EXPECT_THROW(perplexity_chunks(tokens, 1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace cleave::data
