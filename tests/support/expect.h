// Assertions the tests share beyond GoogleTest's own.
#pragma once

#include <gtest/gtest.h>

#include <string>

// `text` contains `part`; the failure shows both.
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "looked for: " << (part) << "\nin: " << (text)
