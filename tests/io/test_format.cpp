// core/format: the texts numbers, byte sizes and durations are printed as, by every verb.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "core/format.h"

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

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

TEST(Format, CountsAbbreviated) {
  EXPECT_EQ(gqa::format_count(0), "0");
  EXPECT_EQ(gqa::format_count(999), "999");
  EXPECT_EQ(gqa::format_count(999.4), "999");
  EXPECT_EQ(gqa::format_count(1000), "1.0K");
  EXPECT_EQ(gqa::format_count(12345), "12.3K");
  EXPECT_EQ(gqa::format_count(1.26e6), "1.26M");
  EXPECT_EQ(gqa::format_count(10'008'000), "10.01M");
  EXPECT_EQ(gqa::format_count(6'738'415'616), "6.74B");
  EXPECT_EQ(gqa::format_count(kNaN), "NaN");
  EXPECT_EQ(gqa::format_count(kInf), "inf");
}

TEST(Format, FixedSignificantPercent) {
  EXPECT_EQ(gqa::format_fixed(2.5, 2), "2.50");
  EXPECT_EQ(gqa::format_fixed(2.0 / 3.0, 0), "1");
  EXPECT_EQ(gqa::format_fixed(-kInf, 2), "-inf");
  EXPECT_EQ(gqa::format_fixed(kNaN, 2), "NaN");
  EXPECT_EQ(gqa::format_fixed(1e300, 1).size(), 303u);  // no truncation however long
  EXPECT_EQ(gqa::format_significant(0), "0");
  EXPECT_EQ(gqa::format_significant(123.4), "123");
  EXPECT_EQ(gqa::format_significant(12.34), "12.3");
  EXPECT_EQ(gqa::format_significant(1.234), "1.23");
  EXPECT_EQ(gqa::format_significant(0.01234), "0.0123");
  EXPECT_EQ(gqa::format_significant(-0.5), "-0.500");
  EXPECT_EQ(gqa::format_significant(kInf), "inf");
  EXPECT_EQ(gqa::format_percent(0.25), "25.0%");
  EXPECT_EQ(gqa::format_percent(1.0 / 16), "6.2%");
  EXPECT_EQ(gqa::format_percent(kNaN), "NaN");
}

TEST(Format, ClockForEtas) {
  EXPECT_EQ(gqa::format_clock(0), "00:00");
  EXPECT_EQ(gqa::format_clock(83), "01:23");
  EXPECT_EQ(gqa::format_clock(3599.4), "59:59");
  EXPECT_EQ(gqa::format_clock(3723), "1:02:03");
  EXPECT_EQ(gqa::format_clock(-1), "--:--");
  EXPECT_EQ(gqa::format_clock(kNaN), "--:--");
  EXPECT_EQ(gqa::format_clock(1e300), "100000:00:00");
}

TEST(Format, DurationInWords) {
  EXPECT_EQ(gqa::format_duration(12.5), "13s");
  EXPECT_EQ(gqa::format_duration(42), "42s");
  EXPECT_EQ(gqa::format_duration(303), "5m 03s");
  EXPECT_EQ(gqa::format_duration(3601.25), "1h 00m");
  EXPECT_EQ(gqa::format_duration(3725), "1h 02m");
  EXPECT_EQ(gqa::format_duration(kNaN), "NaN");
}

TEST(Format, StringPrintf) {
  EXPECT_EQ(gqa::string_printf("%4d%%", 37), "  37%");
  EXPECT_EQ(gqa::string_printf("%s", std::string(1000, 'x').c_str()).size(), 1000u);
}

}  // namespace
