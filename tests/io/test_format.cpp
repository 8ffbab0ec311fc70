// The texts numbers, byte sizes and durations are printed as: every verb prints through these.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/memory.h"

namespace {

TEST(Format, BytesInBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(gqa::format_bytes(0), "0 B");
  EXPECT_EQ(gqa::format_bytes(512), "512 B");
  EXPECT_EQ(gqa::format_bytes(1023), "1023 B");
  EXPECT_EQ(gqa::format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(gqa::format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(gqa::format_bytes(6336), "6.2 KiB");
  EXPECT_EQ(gqa::format_bytes(1536.0 * 1024), "1.5 MiB");
  EXPECT_EQ(gqa::format_bytes(640.0 * 1024 * 1024), "640.0 MiB");
  EXPECT_EQ(gqa::format_bytes(12.6 * 1024 * 1024 * 1024), "12.6 GiB");
  EXPECT_EQ(gqa::format_bytes(3.0 * 1024 * 1024 * 1024 * 1024 * 1024), "3072.0 TiB");  // TiB is the largest unit
}

TEST(Format, WithCommas) {
  EXPECT_EQ(gqa::format_with_commas(0), "0");
  EXPECT_EQ(gqa::format_with_commas(999), "999");
  EXPECT_EQ(gqa::format_with_commas(1000), "1,000");
  EXPECT_EQ(gqa::format_with_commas(268584), "268,584");
  EXPECT_EQ(gqa::format_with_commas(6738415616), "6,738,415,616");
  EXPECT_EQ(gqa::format_with_commas(-1234567), "-1,234,567");
  EXPECT_EQ(gqa::format_with_commas(std::numeric_limits<int64_t>::max()), "9,223,372,036,854,775,807");
}

}  // namespace
