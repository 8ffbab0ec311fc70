// safetensors reader/writer: round trips for every dtype, files written by the Python package and
// by hand per the spec, F16/BF16 conversions, and every kind of malformed file (each must give an
// InputError naming the file and field, never a crash or a hang).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using gqa::DType;
using gqa::InputError;
using gqa::SafetensorsFile;
using gqa::TensorToWrite;
using json = nlohmann::json;
using gqa::test::read_text;
using gqa::test::write_text;

struct TempDir : gqa::test::TempDirWithPath<fs::path> {
  TempDir() : TempDirWithPath("gqa-io-st") {}
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file made of a header string and a data buffer, as the spec lays it out.
std::string st_bytes(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

// Header of one F32 tensor "a" with the given shape and offsets (as JSON text, unvalidated).
std::string one_tensor(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"a":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

// Opening `path` must throw InputError with file() == path, field() == field, what() naming both
// and containing `words`.
::testing::AssertionResult Rejects(const std::string& path, const std::string& field, const std::string& words = "") {
  try {
    SafetensorsFile f(path);
    return ::testing::AssertionFailure() << "accepted " << path;
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (e.file() != path) return ::testing::AssertionFailure() << "names file '" << e.file() << "': " << what;
    if (e.field() != field)
      return ::testing::AssertionFailure() << "names field '" << e.field() << "', expected '" << field << "': " << what;
    if (what.find(path) == std::string::npos || what.find(field) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks file or field: " << what;
    if (what.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "multi-line message: " << what;
    if (!words.empty() && what.find(words) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks '" << words << "': " << what;
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-InputError: " << e.what();
  }
}

::testing::AssertionResult RejectsBytes(const TempDir& d, const std::string& bytes, const std::string& field,
                                        const std::string& words = "") {
  static int counter = 0;
  const std::string p = d.file("bad" + std::to_string(counter++) + ".safetensors");
  write_bytes(p, bytes);
  return Rejects(p, field, words);
}

TensorToWrite bytes_tensor(const std::string& name, DType dt, std::vector<int64_t> shape, std::string bytes) {
  TensorToWrite t;
  t.name = name;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.nbytes = bytes.size();
  t.fill = [bytes](uint8_t* dst) { std::memcpy(dst, bytes.data(), bytes.size()); };
  return t;
}

const DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                            DType::I32, DType::I16, DType::I8,   DType::U8,  DType::BOOL};

uint16_t half_bits(float f) {
  uint16_t h;
  gqa::from_float32(DType::F16, &f, 1, reinterpret_cast<uint8_t*>(&h));
  return h;
}
uint16_t bf16_bits(float f) {
  uint16_t h;
  gqa::from_float32(DType::BF16, &f, 1, reinterpret_cast<uint8_t*>(&h));
  return h;
}
float from_half(uint16_t h) {
  float f;
  gqa::to_float32(DType::F16, reinterpret_cast<const uint8_t*>(&h), 1, &f);
  return f;
}
float from_bf16(uint16_t h) {
  float f;
  gqa::to_float32(DType::BF16, reinterpret_cast<const uint8_t*>(&h), 1, &f);
  return f;
}
float float_of_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Round trips and layout

TEST(Safetensors, DTypeNamesAndSizes) {
  const std::pair<DType, std::pair<const char*, size_t>> expect[] = {
      {DType::F64, {"F64", 8}}, {DType::F32, {"F32", 4}},  {DType::F16, {"F16", 2}}, {DType::BF16, {"BF16", 2}},
      {DType::I64, {"I64", 8}}, {DType::I32, {"I32", 4}},  {DType::I16, {"I16", 2}}, {DType::I8, {"I8", 1}},
      {DType::U8, {"U8", 1}},   {DType::BOOL, {"BOOL", 1}}};
  for (const auto& [dt, ns] : expect) {
    EXPECT_STREQ(gqa::dtype_name(dt), ns.first);
    EXPECT_EQ(gqa::dtype_size(dt), ns.second);
    DType parsed;
    ASSERT_TRUE(gqa::parse_dtype(ns.first, &parsed));
    EXPECT_EQ(parsed, dt);
  }
  DType parsed;
  EXPECT_FALSE(gqa::parse_dtype("F8_E4M3", &parsed));
  EXPECT_FALSE(gqa::parse_dtype("f32", &parsed));
  EXPECT_FALSE(gqa::parse_dtype("", &parsed));
}

TEST(Safetensors, RoundTripEveryDtypeWithMetadata) {
  TempDir d;
  std::mt19937 rng(7);
  std::vector<TensorToWrite> tensors;
  std::map<std::string, std::string> expected_bytes;
  std::map<std::string, std::pair<DType, std::vector<int64_t>>> expected_meta;
  for (DType dt : kAllDTypes) {
    const std::vector<int64_t> shape = {2, 3};
    std::string bytes(6 * gqa::dtype_size(dt), '\0');
    for (auto& c : bytes) c = char(dt == DType::BOOL ? rng() & 1 : rng() & 0xff);
    const std::string name = std::string("t.") + gqa::dtype_name(dt);
    tensors.push_back(bytes_tensor(name, dt, shape, bytes));
    expected_bytes[name] = bytes;
    expected_meta[name] = {dt, shape};
  }
  tensors.push_back(bytes_tensor("scalar", DType::F32, {}, std::string("\x00\x00\x60\x40", 4)));  // 3.5
  tensors.push_back(bytes_tensor("empty", DType::F16, {0, 4}, ""));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}};
  const std::string p = d.file("all.safetensors");
  gqa::write_safetensors(p, tensors, meta);

  SafetensorsFile f(p);
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.names().size(), std::size(kAllDTypes) + 2);
  for (const auto& [name, bytes] : expected_bytes) {
    ASSERT_TRUE(f.has(name)) << name;
    const auto& t = f.tensor(name);
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.dtype, expected_meta[name].first) << name;
    EXPECT_EQ(t.shape, expected_meta[name].second) << name;
    EXPECT_EQ(t.numel(), 6);
    ASSERT_EQ(t.nbytes, bytes.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.data), t.nbytes), bytes) << name;
  }
  const auto& s = f.tensor("scalar");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  float v;
  gqa::to_float32(DType::F32, s.data, 1, &v);
  EXPECT_EQ(v, 3.5f);
  const auto& e = f.tensor("empty");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(e.nbytes, 0u);
  EXPECT_EQ(e.numel(), 0);
  auto names = f.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(f.file_size(), fs::file_size(p));
}

TEST(Safetensors, HeaderIsPaddedTo8BytesAndTensorsAreInNameOrder) {
  TempDir d;
  // Several header lengths so that every padding amount shows up.
  for (int extra = 0; extra < 9; ++extra) {
    std::vector<TensorToWrite> ts = {bytes_tensor("zeta", DType::F32, {1}, std::string(4, '\1')),
                                     bytes_tensor("alpha" + std::string(size_t(extra), 'x'), DType::I8, {3}, "abc"),
                                     bytes_tensor("mid", DType::F16, {2}, std::string(4, '\2'))};
    const std::string p = d.file("pad" + std::to_string(extra) + ".safetensors");
    gqa::write_safetensors(p, ts, {{"format", "pt"}});
    const std::string raw = read_bytes(p);
    ASSERT_GE(raw.size(), 8u);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
    EXPECT_EQ(n % 8, 0u) << "header length " << n;
    EXPECT_EQ((8 + n) % 8, 0u);
    ASSERT_LE(8 + n, raw.size());
    json h = json::parse(raw.substr(8, n));  // padding is whitespace, so still valid JSON
    EXPECT_EQ(h["__metadata__"]["format"], "pt");
    // Offsets tile the buffer in name order.
    uint64_t at = 0;
    for (const std::string& name :
         {std::string("alpha") + std::string(size_t(extra), 'x'), std::string("mid"), std::string("zeta")}) {
      ASSERT_TRUE(h.contains(name)) << name;
      EXPECT_EQ(h[name]["data_offsets"][0].get<uint64_t>(), at) << name;
      at = h[name]["data_offsets"][1].get<uint64_t>();
    }
    EXPECT_EQ(8 + n + at, raw.size());
    SafetensorsFile f(p);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.tensor("alpha" + std::string(size_t(extra), 'x')).data), 3),
              "abc");
  }
}

TEST(Safetensors, NoTensorsNoMetadataStillAValidFile) {
  TempDir d;
  const std::string p = d.file("empty.safetensors");
  gqa::write_safetensors(p, {}, {});
  SafetensorsFile f(p);
  EXPECT_TRUE(f.names().empty());
  EXPECT_TRUE(f.metadata().empty());
  const std::string raw = read_bytes(p);
  json h = json::parse(raw.substr(8));
  EXPECT_TRUE(h.is_object()) << raw.substr(8);
}

TEST(Safetensors, WriterPropagatesFillExceptionsAndFailsOnUnwritablePath) {
  TempDir d;
  TensorToWrite t = bytes_tensor("a", DType::F32, {1}, std::string(4, '\0'));
  t.fill = [](uint8_t*) { throw std::runtime_error("fill failed"); };
  EXPECT_THROW(gqa::write_safetensors(d.file("x.safetensors"), {t}, {}), std::runtime_error);
  try {
    gqa::write_safetensors(d.file("no/such/dir/x.safetensors"), {bytes_tensor("a", DType::U8, {1}, "a")}, {});
    FAIL() << "wrote into a missing folder";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), d.file("no/such/dir/x.safetensors"));
  }
}

TEST(Safetensors, WriterRejectsInconsistentTensors) {
  TempDir d;
  const std::string p = d.file("w.safetensors");
  auto rejects = [&](std::vector<TensorToWrite> ts, const std::string& field) {
    try {
      gqa::write_safetensors(p, std::move(ts), {});
      ADD_FAILURE() << "wrote " << field;
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), p);
      EXPECT_EQ(e.field(), field);
    }
    EXPECT_FALSE(fs::exists(p)) << "nothing is written before the check";
  };
  rejects({bytes_tensor("a", DType::F32, {3}, std::string(8, '\0'))}, "a");
  rejects({bytes_tensor("b", DType::F16, {2, 2}, std::string(16, '\0'))}, "b");
  rejects({bytes_tensor("c", DType::U8, {-1}, "")}, "c");
  rejects({bytes_tensor("d", DType::U8, {1}, "x"), bytes_tensor("d", DType::U8, {1}, "y")}, "d");
  rejects({bytes_tensor("__metadata__", DType::U8, {1}, "x")}, "__metadata__");
}

TEST(Safetensors, HandCraftedPerSpecWithoutPadding) {
  TempDir d;
  // Unpadded header (the spec allows any length), little-endian data, tensors listed out of order.
  const std::string header =
      R"({"b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("__metadata__":{"k":"v"}})";
  ASSERT_NE(header.size() % 8, 0u);
  std::string data;
  data += std::string("\x00\x00\x80\x3f", 4);  // 1.0f
  data += std::string("\x00\x00\x00\xc0", 4);  // -2.0f
  data += std::string("\xff\xff\x02\x01", 4);  // int16 -1, 258
  const std::string p = d.file("spec.safetensors");
  write_bytes(p, st_bytes(header, data));
  SafetensorsFile f(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.metadata().at("k"), "v");
  float a[2];
  gqa::to_float32(DType::F32, f.tensor("a").data, 2, a);
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], -2.0f);
  float b[2];
  gqa::to_float32(DType::I16, f.tensor("b").data, 2, b);
  EXPECT_EQ(b[0], -1.0f);
  EXPECT_EQ(b[1], 258.0f);
  // Trailing spaces in the header (the padding Python writes) are fine too.
  const std::string p2 = d.file("spec_padded.safetensors");
  write_bytes(p2, st_bytes(header + std::string(8 - header.size() % 8, ' '), data));
  SafetensorsFile f2(p2);
  EXPECT_EQ(f2.names().size(), 2u);
  // An empty object header and no data is a valid (empty) file.
  const std::string p3 = d.file("spec_empty.safetensors");
  write_bytes(p3, st_bytes("{}", ""));
  EXPECT_TRUE(SafetensorsFile(p3).names().empty());
}

TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  const std::string py = GQA_PYTHON;
  if (py.empty() || !fs::exists(py)) GTEST_SKIP() << "no Python at '" << py << "'";
  TempDir d;
  const std::string script = d.file("write.py"), out = d.file("py.safetensors");
  {
    std::ofstream s(script);
    s << R"PY(
import sys, torch
from safetensors.torch import save_file
t = {
    "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1,
    "f64": torch.tensor([0.1, -2.5], dtype=torch.float64),
    "f16": torch.tensor([1.0, -2.0, 0.5, 65504.0, 2.0 ** -24, float("inf")], dtype=torch.float16),
    "bf16": torch.tensor([1.0, -3.0, 0.125, 2.0 ** 100, -float("inf")], dtype=torch.bfloat16),
    "i64": torch.tensor([-(2 ** 40), 7], dtype=torch.int64),
    "i32": torch.tensor([-5, 2 ** 31 - 1], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
    "i8": torch.tensor([-128, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 255], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 4),
    "model.layers.0.self_attn.q_proj.weight": torch.ones(4, 2),
}
save_file(t, sys.argv[1], metadata={"format": "pt", "note": "h\u00e9llo"})
)PY";
  }
  const std::string cmd = "'" + py + "' '" + script + "' '" + out + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  SafetensorsFile f(out);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "h\xc3\xa9llo");
  EXPECT_EQ(f.names().size(), 13u);
  auto floats = [&](const std::string& name) {
    const auto& t = f.tensor(name);
    std::vector<float> v(size_t(t.numel()));
    gqa::to_float32(t.dtype, t.data, t.numel(), v.data());
    return v;
  };
  EXPECT_EQ(f.tensor("f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(floats("f32"), (std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5}));
  EXPECT_EQ(f.tensor("f64").dtype, DType::F64);
  EXPECT_EQ(floats("f64"), (std::vector<float>{float(0.1), -2.5f}));
  EXPECT_EQ(f.tensor("f16").dtype, DType::F16);
  EXPECT_EQ(floats("f16"), (std::vector<float>{1, -2, 0.5, 65504, std::ldexp(1.0f, -24), INFINITY}));
  EXPECT_EQ(f.tensor("bf16").dtype, DType::BF16);
  EXPECT_EQ(floats("bf16"), (std::vector<float>{1, -3, 0.125, std::ldexp(1.0f, 100), -INFINITY}));
  int64_t i64[2];
  std::memcpy(i64, f.tensor("i64").data, 16);
  EXPECT_EQ(i64[0], -(int64_t(1) << 40));
  EXPECT_EQ(i64[1], 7);
  EXPECT_EQ(f.tensor("i32").dtype, DType::I32);
  EXPECT_EQ(floats("i32")[0], -5.0f);
  EXPECT_EQ(f.tensor("i16").dtype, DType::I16);
  EXPECT_EQ(floats("i16"), (std::vector<float>{-32768, 32767}));
  EXPECT_EQ(f.tensor("i8").dtype, DType::I8);
  EXPECT_EQ(floats("i8"), (std::vector<float>{-128, 127}));
  EXPECT_EQ(f.tensor("u8").dtype, DType::U8);
  EXPECT_EQ(floats("u8"), (std::vector<float>{0, 255}));
  EXPECT_EQ(f.tensor("bool").dtype, DType::BOOL);
  EXPECT_EQ(floats("bool"), (std::vector<float>{1, 0, 1}));
  EXPECT_TRUE(f.tensor("scalar").shape.empty());
  EXPECT_EQ(floats("scalar"), (std::vector<float>{3.5}));
  EXPECT_EQ(f.tensor("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(f.tensor("empty").nbytes, 0u);
  EXPECT_EQ(floats("model.layers.0.self_attn.q_proj.weight"), std::vector<float>(8, 1.0f));
}

// ---------------------------------------------------------------------------------------------
// Conversions

TEST(Conversions, HalfRoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = from_half(uint16_t(h));
    const uint16_t back = half_bits(f);
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7c00u, 0x7c00u);
      EXPECT_NE(h & 0x3ffu, 0u);
      EXPECT_EQ(back & 0x7c00u, 0x7c00u) << std::hex << h;
      EXPECT_NE(back & 0x3ffu, 0u) << std::hex << h;
      EXPECT_TRUE(std::isnan(from_half(back)));
    } else {
      ASSERT_EQ(back, h) << std::hex << "half 0x" << h << " -> " << f;
    }
  }
}

TEST(Conversions, HalfExactValues) {
  EXPECT_EQ(from_half(0x3c00), 1.0f);
  EXPECT_EQ(from_half(0xc000), -2.0f);
  EXPECT_EQ(from_half(0x7bff), 65504.0f);
  EXPECT_EQ(from_half(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(from_half(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(from_half(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(from_half(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(from_half(0x7c00), INFINITY);
  EXPECT_EQ(from_half(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(from_half(0x7e00)));
  EXPECT_TRUE(std::isnan(from_half(0x7c01)));  // signalling-style payload stays NaN
  EXPECT_EQ(from_half(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(from_half(0x8000)));
  EXPECT_FALSE(std::signbit(from_half(0x0000)));
}

TEST(Conversions, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(half_bits(1.0f), 0x3c00);
  EXPECT_EQ(half_bits(-0.0f), 0x8000);
  EXPECT_EQ(half_bits(0.0f), 0x0000);
  // Ties between neighbours go to the even mantissa.
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);                          // 1 + half ulp -> 1
  EXPECT_EQ(half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);                      // 1 + 1.5 ulp -> 1 + 2 ulp
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);  // above the tie
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -20)), 0x3c00);  // below the tie
  // Overflow: 65520 is the tie between 65504 (odd mantissa) and 2^16 -> infinity.
  EXPECT_EQ(half_bits(65504.0f), 0x7bff);
  EXPECT_EQ(half_bits(65519.99f), 0x7bff);
  EXPECT_EQ(half_bits(65520.0f), 0x7c00);
  EXPECT_EQ(half_bits(1e9f), 0x7c00);
  EXPECT_EQ(half_bits(-1e9f), 0xfc00);
  EXPECT_EQ(half_bits(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(half_bits(INFINITY), 0x7c00);
  EXPECT_EQ(half_bits(-INFINITY), 0xfc00);
  const uint16_t n = half_bits(NAN);
  EXPECT_EQ(n & 0x7c00, 0x7c00);
  EXPECT_NE(n & 0x03ff, 0);
  EXPECT_NE(half_bits(float_of_bits(0x7f800001u)) & 0x03ff, 0) << "NaN with a low payload must stay NaN";
  // Subnormals: unit 2^-24.
  const float u = std::ldexp(1.0f, -24);
  EXPECT_EQ(half_bits(u), 0x0001);
  EXPECT_EQ(half_bits(0.5f * u), 0x0000);            // tie -> even (0)
  EXPECT_EQ(half_bits(0.5f * u * 1.0001f), 0x0001);  // just above the tie
  EXPECT_EQ(half_bits(0.49f * u), 0x0000);
  EXPECT_EQ(half_bits(1.5f * u), 0x0002);  // tie between 1 and 2 -> 2
  EXPECT_EQ(half_bits(2.5f * u), 0x0002);  // tie between 2 and 3 -> 2
  EXPECT_EQ(half_bits(-2.5f * u), 0x8002);
  EXPECT_EQ(half_bits(1023.5f * u), 0x0400);  // largest subnormal + half unit -> smallest normal
  EXPECT_EQ(half_bits(1022.5f * u), 0x03fe);
  EXPECT_EQ(half_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(half_bits(-std::numeric_limits<float>::denorm_min()), 0x8000);
}

TEST(Conversions, Bf16RoundTripsEveryValue) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = from_bf16(uint16_t(b));
    const float expect = float_of_bits(b << 16);
    EXPECT_EQ(std::memcmp(&f, &expect, 4), 0) << std::hex << b;  // bit-exact, NaN payloads included
    const uint16_t back = bf16_bits(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(from_bf16(back))) << std::hex << b;
    } else {
      ASSERT_EQ(back, b) << std::hex << "bf16 0x" << b;
    }
  }
}

TEST(Conversions, FloatToBf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);        // tie -> even
  EXPECT_EQ(bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);    // tie -> even (up)
  EXPECT_EQ(bf16_bits(float_of_bits(0x3f808001u)), 0x3f81);         // above the tie
  EXPECT_EQ(bf16_bits(float_of_bits(0x3f807fffu)), 0x3f80);         // below the tie
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
  EXPECT_EQ(bf16_bits(float_of_bits(0x7f7f7fffu)), 0x7f7f);
  EXPECT_EQ(bf16_bits(INFINITY), 0x7f80);
  EXPECT_EQ(bf16_bits(-INFINITY), 0xff80);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  for (uint32_t nan : {0x7fc00000u, 0x7f800001u, 0x7fffffffu, 0xff800001u}) {
    const uint16_t b = bf16_bits(float_of_bits(nan));
    EXPECT_TRUE(std::isnan(from_bf16(b))) << std::hex << nan << " -> " << b;
  }
  // Float subnormals map onto bf16 subnormals (same exponent range).
  EXPECT_EQ(bf16_bits(float_of_bits(0x00000001u)), 0x0000);
  EXPECT_EQ(bf16_bits(float_of_bits(0x00008000u)), 0x0000);  // tie -> even
  EXPECT_EQ(bf16_bits(float_of_bits(0x00018000u)), 0x0002);  // tie -> even
  EXPECT_EQ(bf16_bits(float_of_bits(0x00010000u)), 0x0001);
  EXPECT_EQ(from_bf16(0x0001), float_of_bits(0x00010000u));
}

TEST(Conversions, WideAndIntegerTypes) {
  const double dv[3] = {0.1, -1e300, 3.0};
  float out[3];
  gqa::to_float32(DType::F64, reinterpret_cast<const uint8_t*>(dv), 3, out);
  EXPECT_EQ(out[0], float(0.1));
  EXPECT_EQ(out[1], -INFINITY);
  EXPECT_EQ(out[2], 3.0f);
  const float fin[2] = {0.1f, -7.25f};
  double dout[2];
  gqa::from_float32(DType::F64, fin, 2, reinterpret_cast<uint8_t*>(dout));
  EXPECT_EQ(dout[0], double(0.1f));
  EXPECT_EQ(dout[1], -7.25);
  uint8_t f32out[8];
  gqa::from_float32(DType::F32, fin, 2, f32out);
  EXPECT_EQ(std::memcmp(f32out, fin, 8), 0);
  const int64_t iv[2] = {-3, int64_t(1) << 24};
  gqa::to_float32(DType::I64, reinterpret_cast<const uint8_t*>(iv), 2, out);
  EXPECT_EQ(out[0], -3.0f);
  EXPECT_EQ(out[1], 16777216.0f);
  const uint8_t bytes[2] = {0xff, 0x01};
  gqa::to_float32(DType::I8, bytes, 2, out);
  EXPECT_EQ(out[0], -1.0f);
  gqa::to_float32(DType::U8, bytes, 2, out);
  EXPECT_EQ(out[0], 255.0f);
  gqa::to_float32(DType::BOOL, bytes + 1, 1, out);
  EXPECT_EQ(out[0], 1.0f);
  uint8_t sink[8];
  for (DType dt : {DType::I64, DType::I32, DType::I16, DType::I8, DType::U8, DType::BOOL})
    EXPECT_THROW(gqa::from_float32(dt, fin, 1, sink), InputError) << gqa::dtype_name(dt);
  gqa::to_float32(DType::F32, nullptr, 0, nullptr);  // n = 0 touches nothing
}

// ---------------------------------------------------------------------------------------------
// Malformed files

TEST(SafetensorsBad, ShortAndEmptyFiles) {
  TempDir d;
  EXPECT_TRUE(RejectsBytes(d, "", "header", "0 bytes"));
  EXPECT_TRUE(RejectsBytes(d, std::string("\x02\x00\x00", 3), "header", "3 bytes"));
  EXPECT_TRUE(RejectsBytes(d, std::string(7, '\0'), "header"));
  // Exactly 8 bytes saying the header is 0 bytes long: an empty header is not JSON.
  EXPECT_TRUE(RejectsBytes(d, le64(0), "header", "invalid JSON"));
}

TEST(SafetensorsBad, HeaderLength) {
  TempDir d;
  EXPECT_TRUE(RejectsBytes(d, le64(100) + "{}", "header length", "larger than the file"));
  EXPECT_TRUE(RejectsBytes(d, le64(uint64_t(1) << 63) + "{}", "header length"));
  EXPECT_TRUE(RejectsBytes(d, le64(~uint64_t(0)) + "{}", "header length"));
  EXPECT_TRUE(RejectsBytes(d, le64((100ull << 20) + 1) + "{}", "header length", "limit"));
  // One byte past the end.
  EXPECT_TRUE(RejectsBytes(d, le64(3) + "{}", "header length"));
}

TEST(SafetensorsBad, HeaderNotJsonOrNotObject) {
  TempDir d;
  EXPECT_TRUE(RejectsBytes(d, st_bytes("{\"a\":", ""), "header", "invalid JSON"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("not json", ""), "header", "invalid JSON"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("{}}", ""), "header", "invalid JSON"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string("{\"\xff\xfe\":1}"), ""), "header", "invalid JSON"));
  // NUL bytes end the input for nlohmann::json; the spec (and the Rust reader) reject them.
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string("{}\0\0", 4), ""), "header", "NUL"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string("{}\0{\"a\":1}", 10), ""), "header", "NUL"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("[]", ""), "header", "JSON object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("42", ""), "header", "JSON object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("\"str\"", ""), "header", "JSON object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("null", ""), "header", "JSON object"));
  // Deep nesting must not blow the stack: refused before parsing (core/json_depth.h), while a
  // real header's depth of 3 and the limit itself pass.
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string(100000, '['), ""), "header", "nested deeper than 512"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string(100000, '[') + std::string(100000, ']'), ""), "header",
                           "nested deeper than 512"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(std::string(512, '[') + std::string(512, ']'), ""), "header", "JSON object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("{\"a\": \"[[[[\\\"[[\"}", ""), "a",
                           "expected an object with dtype"));  // brackets in strings do not count
}

TEST(SafetensorsBad, TensorEntryFields) {
  TempDir d;
  const std::string data(8, '\0');
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"a":5})", data), "a", "expected an object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", data), "a.dtype", "missing"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", data), "a.shape", "missing"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor("32", "[2]", "[0,8]"), data), "a.dtype"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F8_X")", "[2]", "[0,8]"), data), "a.dtype", "F8_X"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("f32")", "[2]", "[0,8]"), data), "a.dtype", "unknown dtype"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "2", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(
      RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[-2]", "[0,8]"), data), "a.shape", "non-negative integer"));
  EXPECT_TRUE(
      RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2.0]", "[0,8]"), data), "a.shape", "non-negative integer"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2.5]", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", R"(["2"])", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[null]", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[true]", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[0]"), data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[0,8,8]"), data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", R"({"0":8})"), data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[-8,0]"), data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[0,8.0]"), data), "a.data_offsets"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", R"([0,"8"])"), data), "a.data_offsets"));
}

TEST(SafetensorsBad, ShapeOverflow) {
  TempDir d;
  const std::string data(8, '\0');
  const std::string big = std::to_string(uint64_t(1) << 40);
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[" + big + "," + big + "]", "[0,8]"), data), "a.shape",
                           "overflows"));
  EXPECT_TRUE(RejectsBytes(
      d, st_bytes(one_tensor(R"("F64")", "[" + std::to_string(uint64_t(1) << 62) + "]", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[18446744073709551615]", "[0,8]"), data), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d,
                           st_bytes(one_tensor(R"("F32")",
                                               "[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,"
                                               "2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]",
                                               "[0,8]"),
                                    data),
                           "a.shape", "overflows"));
  // A zero dimension does not make a dimension beyond int64 acceptable.
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[0,9223372036854775808]", "[0,0]"), ""), "a.shape"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[0,18446744073709551615]", "[0,0]"), ""), "a.shape"));
  // Big but not overflowing shapes are rejected by the byte count instead.
  EXPECT_TRUE(
      RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[" + big + "]", "[0,8]"), data), "a.data_offsets", "need"));
}

TEST(SafetensorsBad, DataOffsets) {
  TempDir d;
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  // begin > end
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[0]", "[8,0]"), std::string(8, '\0')), "a.data_offsets",
                           "begin is after end"));
  // end beyond the buffer, huge end
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[0,8]"), std::string(4, '\0')), "a.data_offsets",
                           "beyond"));
  EXPECT_TRUE(RejectsBytes(
      d, st_bytes(one_tensor(R"("F32")", "[2]", "[18446744073709551607,18446744073709551615]"), std::string(8, '\0')),
      "a.data_offsets", "beyond"));
  // byte count not matching shape x dtype
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[3]", "[0,8]"), std::string(8, '\0')), "a.data_offsets",
                           "need 12"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F16")", "[2]", "[0,8]"), std::string(8, '\0')), "a.data_offsets",
                           "need 4"));
  // overlap
  EXPECT_TRUE(RejectsBytes(
      d,
      st_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[4,12]}})",
               std::string(12, '\0')),
      "b.data_offsets", "overlaps"));
  EXPECT_TRUE(RejectsBytes(
      d,
      st_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[0,8]}})",
               std::string(8, '\0')),
      "b.data_offsets", "overlaps"));
  // gap between tensors, gap at the start, unused bytes at the end
  EXPECT_TRUE(RejectsBytes(
      d,
      st_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[12,20]}})",
               std::string(20, '\0')),
      "b.data_offsets", "gap at byte 8"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[4,12]"), std::string(12, '\0')),
                           "a.data_offsets", "gap at byte 0"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(one_tensor(R"("F32")", "[2]", "[0,8]"), std::string(12, '\0')), "data_offsets",
                           "8 of 12"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes("{}", "x"), "data_offsets", "0 of 1"));
}

TEST(SafetensorsBad, Metadata) {
  TempDir d;
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"__metadata__":["format","pt"]})", ""), "__metadata__", "object"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"__metadata__":"pt"})", ""), "__metadata__"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"__metadata__":{"format":"pt","n":1}})", ""), "__metadata__.n", "string"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"__metadata__":{"x":null}})", ""), "__metadata__.x"));
  EXPECT_TRUE(RejectsBytes(d, st_bytes(R"({"__metadata__":{"x":{"y":"z"}}})", ""), "__metadata__.x"));
}

TEST(SafetensorsBad, TruncatedValidFileAtEveryLength) {
  TempDir d;
  const std::string good = d.file("good.safetensors");
  gqa::write_safetensors(good,
                         {bytes_tensor("a", DType::F32, {2, 2}, std::string(16, '\3')),
                          bytes_tensor("b", DType::BF16, {3}, std::string(6, '\4'))},
                         {{"format", "pt"}});
  const std::string raw = read_bytes(good);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  for (size_t len = 0; len < raw.size(); ++len) {
    const std::string p = d.file("cut.safetensors");
    write_bytes(p, raw.substr(0, len));
    const std::string field = len < 8            ? "header"
                              : len < 8 + n      ? "header length"
                              : len < 8 + n + 16 ? "a.data_offsets"
                                                 : "b.data_offsets";
    ASSERT_TRUE(Rejects(p, field)) << "cut to " << len << " of " << raw.size();
  }
  // The cut-off-the-end case the CLI reports: message says the file may be truncated.
  const std::string p = d.file("cut4.safetensors");
  write_bytes(p, raw.substr(0, raw.size() - 4));
  EXPECT_TRUE(Rejects(p, "b.data_offsets", "truncated"));
}

TEST(SafetensorsBad, PathsThatAreNotFiles) {
  TempDir d;
  EXPECT_TRUE(Rejects(d.path.string(), "", "not a regular file"));
  EXPECT_TRUE(Rejects(d.file("missing.safetensors"), "", "cannot open"));
  EXPECT_TRUE(Rejects(d.file("no/such/dir/x.safetensors"), "", "cannot open"));
  const std::string fifo = d.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A FIFO must not block the open (O_RDONLY on a FIFO without a writer would wait forever).
  EXPECT_TRUE(Rejects(fifo, "", "not a regular file"));
}

TEST(SafetensorsBad, MissingTensorLookup) {
  TempDir d;
  const std::string p = d.file("one.safetensors");
  gqa::write_safetensors(p, {bytes_tensor("a", DType::U8, {1}, "x")}, {});
  SafetensorsFile f(p);
  EXPECT_FALSE(f.has("b"));
  try {
    f.tensor("b");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), p);
    EXPECT_EQ(e.field(), "b");
  }
}

// Random corruption of a valid file: every outcome is a parsed file or an InputError.
TEST(SafetensorsBad, RandomCorruptionNeverCrashes) {
  TempDir d;
  const std::string good = d.file("good.safetensors");
  gqa::write_safetensors(good,
                         {bytes_tensor("alpha", DType::F32, {2, 3}, std::string(24, '\1')),
                          bytes_tensor("beta", DType::I64, {2}, std::string(16, '\2')),
                          bytes_tensor("gamma", DType::BOOL, {3}, std::string(3, '\1'))},
                         {{"format", "pt"}});
  const std::string raw = read_bytes(good);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  std::mt19937 rng(1234);
  const char interesting[] = "0123456789[]{},:\"-.eE \x00\xff";
  int parsed = 0, rejected = 0;
  const std::string p = d.file("fuzz.safetensors");
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = raw;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % 4 == 0 ? rng() % bytes.size() : 8 + rng() % n;  // mostly the header
      bytes[pos] = rng() % 2 ? char(rng()) : interesting[rng() % (sizeof interesting - 1)];
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
    write_bytes(p, bytes);
    try {
      SafetensorsFile f(p);
      uint64_t sum = 0;
      for (const auto& name : f.names()) {
        const auto& t = f.tensor(name);
        ASSERT_EQ(t.nbytes, uint64_t(t.numel()) * gqa::dtype_size(t.dtype));
        for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      }
      ++parsed;
      (void)sum;
    } catch (const InputError& e) {
      ASSERT_EQ(e.file(), p);
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << ": non-InputError " << e.what();
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(parsed, 0);
}

}  // namespace
