// The PNG writer: signature, chunk layout and CRCs checked with an
// independent bitwise CRC-32, and the pixels read back through zlib.
#include "simulate/png_image.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <iterator>

#include "simulate/bitmap_font.h"
#include "simulate/line_chart.h"
#include "tests/support/shared_data.h"

namespace cleave::simulate {
namespace {

uint32_t bitwise_crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t read_u32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

struct Chunk {
  std::string type;
  std::vector<uint8_t> data;
};

// Splits a PNG into chunks, checking each CRC; fails the test on any flaw.
std::vector<Chunk> read_chunks(const std::vector<uint8_t>& png) {
  const std::vector<uint8_t> signature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  EXPECT_TRUE(std::equal(signature.begin(), signature.end(), png.begin()));
  std::vector<Chunk> chunks;
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t length = read_u32(png, at);
    EXPECT_LE(at + 12 + length, png.size());
    Chunk chunk;
    chunk.type.assign(png.begin() + static_cast<long>(at) + 4, png.begin() + static_cast<long>(at) + 8);
    chunk.data.assign(png.begin() + static_cast<long>(at) + 8, png.begin() + static_cast<long>(at + 8 + length));
    EXPECT_EQ(read_u32(png, at + 8 + length), bitwise_crc32(png.data() + at + 4, 4 + length)) << chunk.type;
    chunks.push_back(std::move(chunk));
    at += 12 + length;
  }
  EXPECT_EQ(at, png.size());
  return chunks;
}

TEST(PngImage, Crc32MatchesTheKnownCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(png_crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
  EXPECT_EQ(png_crc32(reinterpret_cast<const uint8_t*>("IEND"), 4), 0xAE426082u);
}

TEST(PngImage, EncodesValidChunksAndThePixelsReadBack) {
  Image image(7, 5, {10, 20, 30});
  image.set(0, 0, {255, 0, 0});
  image.set(6, 4, {0, 255, 0});
  image.line(0, 4, 6, 0, {0, 0, 255});
  image.set(100, 100, {1, 2, 3});   // clipped, no effect
  const std::vector<uint8_t> png = encode_png(image);
  const std::vector<Chunk> chunks = read_chunks(png);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[1].type, "IDAT");
  EXPECT_EQ(chunks[2].type, "IEND");
  ASSERT_EQ(chunks[0].data.size(), 13u);
  EXPECT_EQ(read_u32(chunks[0].data, 0), 7u);
  EXPECT_EQ(read_u32(chunks[0].data, 4), 5u);
  EXPECT_EQ(chunks[0].data[8], 8);   // bit depth
  EXPECT_EQ(chunks[0].data[9], 2);   // truecolour

  std::vector<uint8_t> raw(5 * (1 + 7 * 3));
  uLongf raw_size = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &raw_size, chunks[1].data.data(), chunks[1].data.size()), Z_OK);
  ASSERT_EQ(raw_size, raw.size());
  for (int y = 0; y < 5; ++y) {
    EXPECT_EQ(raw[y * 22], 0) << "filter byte of row " << y;
    for (int x = 0; x < 7; ++x) {
      const uint8_t* p = &raw[y * 22 + 1 + x * 3];
      const Rgb expected = image.at(x, y);
      EXPECT_EQ(p[0], expected.r);
      EXPECT_EQ(p[1], expected.g);
      EXPECT_EQ(p[2], expected.b);
    }
  }
  EXPECT_EQ(image.at(0, 0), (Rgb{255, 0, 0}));
  EXPECT_EQ(image.at(3, 2), (Rgb{0, 0, 255}));   // on the diagonal
  EXPECT_EQ(image.at(1, 0), (Rgb{10, 20, 30}));
}

TEST(PngImage, WritePngPutsTheSameBytesOnDisk) {
  Image image(40, 20);
  draw_text(image, 2, 2, "ppl 1.5", {0, 0, 0});
  const std::string path = test::scratch_dir("png_image") + "/text.png";
  write_png(image, path);
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, encode_png(image));
  EXPECT_EQ(image.at(2, 2), (Rgb{0, 0, 0}));         // the top-left pixel of 'P'
  EXPECT_EQ(image.at(1, 1), (Rgb{255, 255, 255}));
}

TEST(PngImage, RefusesEmptyImages) { EXPECT_THROW(Image(0, 5), std::invalid_argument); }

TEST(LineChart, NiceTicksCoverTheRangeInRoundSteps) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  const std::vector<double> ticks = nice_ticks(3.2, 7.9, 5);
  ASSERT_GE(ticks.size(), 3u);
  EXPECT_LE(ticks.front(), 3.2);
  EXPECT_GE(ticks.back(), 7.9);
  EXPECT_EQ(tick_label(2.5), "2.5");
  EXPECT_EQ(tick_label(1200), "1200");
}

TEST(LineChart, DrawsSeriesInTheirColour) {
  Panel panel{"t", "x", "y", {{"a", {200, 0, 0}, {1, 2, 3}, {1, 3, 2}}}};
  const Image image = render_chart({panel, Panel{"empty", "x", "y", {}}}, 400, 200);
  EXPECT_EQ(image.height(), 400);
  // The line, not only its legend swatch: red in most columns of the plot,
  // and higher (smaller y) at x = 2 than at x = 1 and x = 3 (y = 1, 3, 2).
  std::vector<int> top(400, -1);   // the topmost red pixel of each column
  for (int x = 0; x < 400; ++x) {
    for (int y = 0; y < 200 && top[x] < 0; ++y) {
      if (image.at(x, y) == Rgb{200, 0, 0}) top[x] = y;
    }
  }
  std::vector<int> columns;
  for (int x = 0; x < 400; ++x) {
    if (top[x] >= 0) columns.push_back(x);
  }
  ASSERT_GT(columns.size(), 200u) << "a line across the plot, not a swatch";
  const int left = top[columns[5]], middle = top[columns[columns.size() / 2]], right = top[columns[columns.size() - 5]];
  EXPECT_LT(middle, left) << "y = 3 at x = 2 is drawn above y = 1 at x = 1";
  EXPECT_LT(middle, right) << "and above y = 2 at x = 3";
  EXPECT_LT(right, left);
}

}  // namespace
}  // namespace cleave::simulate
