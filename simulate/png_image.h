// An RGB raster and its PNG encoding (8-bit truecolour, one IDAT of zlib
// data, CRC-32 per chunk): enough to write a plot without a graphics library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cleave::simulate {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

class Image {
 public:
  Image(int width, int height, Rgb background = {255, 255, 255});

  int width() const { return width_; }
  int height() const { return height_; }
  // Pixels outside the image are ignored (drawing clips).
  void set(int x, int y, Rgb color);
  Rgb at(int x, int y) const;    // throws std::out_of_range outside
  void fill(int x0, int y0, int x1, int y1, Rgb color);   // inclusive corners, any order
  // A straight line `thickness` pixels wide (a square brush along it).
  void line(double x0, double y0, double x1, double y1, Rgb color, int thickness = 1);
  const std::vector<uint8_t>& pixels() const { return pixels_; }   // [height, width, 3]

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// The PNG file's bytes: signature, IHDR, IDAT (zlib, filter 0 per row), IEND.
std::vector<uint8_t> encode_png(const Image& image);
// Writes encode_png to `path` (a temporary file, then rename); throws
// std::runtime_error naming the path when it cannot.
void write_png(const Image& image, const std::string& path);

// The CRC-32 of PNG chunks (ISO 3309, polynomial 0xEDB88320).
uint32_t png_crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace cleave::simulate
