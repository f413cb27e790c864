#include "ferry/wire.h"

#include <fstream>
#include <sstream>

#include <limits>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>
#include <random>
#include <ctime>
#include <gtest/gtest.h>
#include <mbedtls/sha256.h>
#include <zstd.h>

namespace ferry {
namespace {

WireEvent MakeEvent(uint64_t seq) {
  WireEvent e;
  e.id = "dev-1/7/" + std::to_string(seq);
  e.source = "ferry://gw-1/telemetry";
  e.type = "com.example.telemetry";
  e.time = TimeNs{1'700'000'000'123'456'789};
  e.subject = "dev-1";
  e.datacontenttype = "application/json";
  e.seq = Seq{seq};
  e.ingest_time = TimeNs{1'700'000'001'000'000'000};
  e.headers = {{"firmware", "1.2.3"}};
  e.payload = R"({"t":21.5,"seq":)" + std::to_string(seq) + "}";
  return e;
}

Batch MakeBatch(size_t n) {
  Batch b{"gw-1", "telemetry", {}};
  for (size_t i = 0; i < n; ++i) b.events.push_back(MakeEvent(100 + i));
  b.events.back().datacontenttype = "application/octet-stream";
  b.events.back().payload = std::string("\x00\x01\xff binary", 10);
  return b;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  std::string digits;
  for (char c : hex) {
    if (std::isxdigit(static_cast<unsigned char>(c))) digits += c;
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2) {
    out += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
  }
  return out;
}

TEST(Wire, RoundTrip) {
  Batch b = MakeBatch(5);
  auto bytes = EncodeBatch(b);
  ASSERT_TRUE(bytes) << bytes.error().message;
  EXPECT_EQ(bytes->substr(0, 4), "FRYB");
  auto d = DecodeBatch(*bytes);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->batch.gateway, "gw-1");
  EXPECT_EQ(d->batch.stream, "telemetry");
  ASSERT_EQ(d->batch.events.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_TRUE(d->batch.events[i] == b.events[i]) << i;
  EXPECT_EQ(d->header.first_seq, Seq{100});
  EXPECT_EQ(d->header.last_seq, Seq{104});
  EXPECT_EQ(d->header.count, 5u);
  EXPECT_FALSE(d->header.hmac());
}

TEST(Wire, EncoderAndDecoderReuseTheirContexts) {
  BatchEncoder enc(EncoderOptions{9, ""});
  BatchDecoder dec;
  for (int round = 0; round < 3; ++round) {
    Batch b = MakeBatch(static_cast<size_t>(round) + 1);
    auto bytes = enc.Encode(b);
    ASSERT_TRUE(bytes);
    auto d = dec.Decode(*bytes);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->batch.events.size(), b.events.size());
  }
}

// The encoder keeps its body and frame buffers while batches are large (a drain) and gives them back after a
// small one: whatever it kept, each batch is encoded alone, byte for byte as a fresh encoder encodes it.
TEST(Wire, ReusedBuffersEncodeEachBatchAsAFreshEncoderDoes) {
  BatchEncoder enc(EncoderOptions{3, ""});
  BatchDecoder dec;
  for (size_t n : {2000, 3, 1500, 2500, 1}) {  // large, small (gives back), large, larger, small
    Batch b = MakeBatch(n);
    auto bytes = enc.Encode(b);
    ASSERT_TRUE(bytes);
    auto fresh = EncodeBatch(b, EncoderOptions{3, ""});
    ASSERT_TRUE(fresh);
    EXPECT_EQ(*bytes, *fresh) << n << " events";
    auto d = dec.Decode(*bytes);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->batch.events, b.events);
  }
}

TEST(Wire, Hmac) {
  Batch b = MakeBatch(3);
  auto bytes = EncodeBatch(b, EncoderOptions{3, "secret"});
  ASSERT_TRUE(bytes);
  auto ok = DecodeBatch(*bytes, "secret");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(ok->header.hmac());

  auto wrong = DecodeBatch(*bytes, "other");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kCorruption);
  EXPECT_NE(wrong.error().message.find("HMAC mismatch"), std::string::npos);

  auto nokey = DecodeBatch(*bytes);
  ASSERT_FALSE(nokey);
  EXPECT_EQ(nokey.error().code, ErrorCode::kInvalidArgument);

  // Downgrade: an unsigned batch is refused when a key is configured.
  auto plain = EncodeBatch(b);
  ASSERT_TRUE(plain);
  auto downgraded = DecodeBatch(*plain, "secret");
  ASSERT_FALSE(downgraded);
  EXPECT_NE(downgraded.error().message.find("not HMAC-signed"), std::string::npos);
}

TEST(Wire, EncodeRefusesBadBatches) {
  EXPECT_FALSE(EncodeBatch(Batch{"g", "s", {}}));
  Batch b = MakeBatch(2);
  std::swap(b.events[0], b.events[1]);
  auto r = EncodeBatch(b);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("must increase"), std::string::npos);
}

// Damaged inputs: each must fail with a clear error and never crash.
class WireDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bytes = EncodeBatch(MakeBatch(4));
    ASSERT_TRUE(bytes);
    good_ = *bytes;
  }
  void ExpectError(const std::string& bytes, ErrorCode code, const std::string& says) {
    auto d = DecodeBatch(bytes);
    ASSERT_FALSE(d) << says;
    EXPECT_EQ(d.error().code, code) << d.error().message;
    EXPECT_NE(d.error().message.find(says), std::string::npos) << d.error().message;
  }
  std::string good_;
};

TEST_F(WireDamage, BadMagic) {
  std::string b = good_;
  b[0] = 'X';
  ExpectError(b, ErrorCode::kCorruption, "bad magic");
  ExpectError("", ErrorCode::kCorruption, "truncated");
  ExpectError("{\"json\":1}", ErrorCode::kCorruption, "bad magic");
}

TEST_F(WireDamage, FutureVersionRefused) {
  std::string b = good_;
  b[4] = 2;
  ExpectError(b, ErrorCode::kInvalidArgument, "newer than this decoder");
}

TEST_F(WireDamage, UnknownFlagsAndCodec) {
  std::string b = good_;
  b[5] = 0x04;
  ExpectError(b, ErrorCode::kInvalidArgument, "unknown flags");
  b = good_;
  b[6] = 2;
  ExpectError(b, ErrorCode::kInvalidArgument, "unknown codec");
}

TEST_F(WireDamage, TruncatedAtEveryLength) {
  for (size_t n = 0; n < good_.size(); ++n) {
    auto d = DecodeBatch(good_.substr(0, n));
    ASSERT_FALSE(d) << n;
    EXPECT_EQ(d.error().code, ErrorCode::kCorruption) << n;
    EXPECT_NE(d.error().message.find("truncated"), std::string::npos) << n << ": " << d.error().message;
  }
}

TEST_F(WireDamage, TrailingBytes) { ExpectError(good_ + "x", ErrorCode::kCorruption, "trailing bytes"); }

TEST_F(WireDamage, EveryFlippedBodyOrHeaderByteIsCaught) {
  // Bytes 0..7 have their own checks above; every other byte is covered by the digest (or length checks).
  for (size_t i = 8; i < good_.size(); ++i) {
    std::string b = good_;
    b[i] = static_cast<char>(b[i] ^ 0x20);
    auto d = DecodeBatch(b);
    EXPECT_FALSE(d) << "flipping byte " << i << " went unnoticed";
  }
  std::string b = good_;
  b[b.size() - 3] = static_cast<char>(b[b.size() - 3] ^ 1);
  ExpectError(b, ErrorCode::kCorruption, "digest mismatch");
}

// Builds a payload around an arbitrary body with a correct SHA-256, so the checks behind the digest are reached.
std::string Forge(const std::string& frame, uint32_t body_bytes, uint32_t count, uint64_t first, uint64_t last) {
  std::string out(kBatchFixedHeaderSize, '\0');
  auto put = [&](size_t off, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out[off + static_cast<size_t>(i)] = static_cast<char>(v >> (8 * (n - 1 - i)));
  };
  out.replace(0, 4, "FRYB");
  out[4] = 1;
  out[6] = 1;
  put(8, 1, 2);
  put(10, 1, 2);
  put(12, first, 8);
  put(20, last, 8);
  put(28, count, 4);
  put(32, body_bytes, 4);
  put(36, frame.size(), 4);
  out += "gs" + frame;
  unsigned char digest[32];
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  mbedtls_sha256_starts_ret(&ctx, 0);
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(out.data()), 40);
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(out.data()) + 72, out.size() - 72);
  mbedtls_sha256_finish_ret(&ctx, digest);
  mbedtls_sha256_free(&ctx);
  out.replace(40, 32, reinterpret_cast<const char*>(digest), 32);
  return out;
}

std::string Zstd(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 1));
  return out;
}

TEST_F(WireDamage, BadContentBehindAValidDigest) {
  const std::string ev = R"({"specversion":"1.0","id":"a","source":"s","type":"t","ferryseq":"5"})";
  const std::string one = "[" + ev + "]";
  auto ok = DecodeBatch(Forge(Zstd(one), static_cast<uint32_t>(one.size()), 1, 5, 5));
  ASSERT_TRUE(ok) << ok.error().message;  // the forge itself is right
  ExpectError(Forge("not a zstd frame", 10, 1, 5, 5), ErrorCode::kCorruption, "zstd");
  ExpectError(Forge(Zstd(one), static_cast<uint32_t>(one.size()) + 1, 1, 5, 5), ErrorCode::kCorruption,
              "header says");
  ExpectError(Forge(Zstd("[{]"), 3, 1, 5, 5), ErrorCode::kCorruption, "invalid JSON");
  ExpectError(Forge(Zstd("{}"), 2, 1, 5, 5), ErrorCode::kCorruption, "not a JSON array");
  ExpectError(Forge(Zstd(one), static_cast<uint32_t>(one.size()), 2, 5, 6), ErrorCode::kCorruption,
              "1 events, header says 2");
  ExpectError(Forge(Zstd(one), static_cast<uint32_t>(one.size()), 1, 4, 5), ErrorCode::kCorruption,
              "disagree");
  const std::string noid = R"([{"specversion":"1.0","source":"s","type":"t"}])";
  ExpectError(Forge(Zstd(noid), static_cast<uint32_t>(noid.size()), 1, 0, 0), ErrorCode::kCorruption,
              "batch event 0");
  ExpectError(Forge(Zstd(one), kBatchMaxBodyBytes + 1, 1, 5, 5), ErrorCode::kCorruption, "exceeds the limit");
  ExpectError(Forge(Zstd(one), static_cast<uint32_t>(one.size()), 0, 5, 5), ErrorCode::kCorruption, "count is 0");
}

// A zstd frame that does not state its size (legal: streaming compressors omit it).
std::string ZstdUnsized(const std::string& s) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress2(c, out.data(), out.size(), s.data(), s.size()));
  ZSTD_freeCCtx(c);
  return out;
}

// Anyone can sign a batch with a plain SHA-256: one that declares a 64 MiB body in a few bytes is refused
// without allocating 64 MiB. Checked in a child process whose address space has no room for 64 MiB more.
TEST_F(WireDamage, DeclaredBodySizeIsNotAllocatedUpFront) {
  const std::string one = R"([{"specversion":"1.0","id":"a","source":"s","type":"t","ferryseq":"5"}])";
  auto sized = DecodeBatch(Forge(ZstdUnsized(one), static_cast<uint32_t>(one.size()), 1, 5, 5));
  ASSERT_TRUE(sized) << sized.error().message;  // an unsized frame of the right length decodes
  const std::string bomb = Forge(ZstdUnsized(one), kBatchMaxBodyBytes, 1, 5, 5);
  ExpectError(bomb, ErrorCode::kCorruption, "header says 67108864");
  ExpectError(Forge(ZstdUnsized(one), static_cast<uint32_t>(one.size()) - 1, 1, 5, 5), ErrorCode::kCorruption,
              "more than");
  ExpectError(Forge(Zstd(one) + "xx", static_cast<uint32_t>(one.size()), 1, 5, 5), ErrorCode::kCorruption,
              "after the zstd frame");
  std::string cut = ZstdUnsized(one);
  cut.resize(cut.size() - 3);
  ExpectError(Forge(cut, static_cast<uint32_t>(one.size()), 1, 5, 5), ErrorCode::kCorruption, "zstd");
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot be used";
#else
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    long pages = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr || std::fscanf(f, "%ld", &pages) != 1) _exit(3);
    std::fclose(f);
    rlimit lim{};
    lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (16u << 20);
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(4);
    try {
      auto r = DecodeBatch(bomb);
      _exit(!r && r.error().code == ErrorCode::kCorruption ? 0 : 1);
    } catch (const std::bad_alloc&) {
      _exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: the decoder tried to allocate the declared 64 MiB";
#endif
}

TEST(Wire, CloudEventsJson) {
  WireEvent e = MakeEvent(42);
  std::string json = EventToJson(e);
  EXPECT_EQ(json,
            R"({"specversion":"1.0","id":"dev-1/7/42","source":"ferry://gw-1/telemetry","type":"com.example.)"
            R"(telemetry","time":"2023-11-14T22:13:20.123456789Z","subject":"dev-1","datacontenttype":)"
            R"("application/json","ferryseq":"42","ferryingesttime":"2023-11-14T22:13:21Z","firmware":"1.2.3",)"
            R"("data":{"t":21.5,"seq":42}})");
  auto back = EventFromJson(json);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == e);

  // JSON that does not parse travels as data_base64 even when declared JSON.
  e.payload = "{not json";
  json = EventToJson(e);
  EXPECT_NE(json.find(R"("data_base64":"e25vdCBqc29u")"), std::string::npos) << json;
  EXPECT_EQ(EventFromJson(json)->payload, "{not json");

  // Whitespace in JSON data is not preserved; the value is.
  e.payload = "{ \"a\" : [1, 2] }";
  EXPECT_EQ(EventFromJson(EventToJson(e))->payload, R"({"a":[1,2]})");

  // Empty payload: no data member at all (a table-stream tombstone).
  e.payload.clear();
  json = EventToJson(e);
  EXPECT_EQ(json.find("data"), json.find("datacontenttype"));
  EXPECT_EQ(EventFromJson(json)->payload, "");

  EXPECT_FALSE(EventFromJson(R"({"id":"x"})"));
  EXPECT_FALSE(EventFromJson(R"({"specversion":"0.3","id":"x","source":"s","type":"t"})"));
  EXPECT_FALSE(EventFromJson(R"({"specversion":"1.0","id":"x","source":"s","type":"t","ferryseq":"-1"})"));
  EXPECT_FALSE(EventFromJson(R"({"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"@@@@"})"));
}

TEST(Wire, ExtensionNames) {
  EXPECT_EQ(CeExtensionName("Firmware-Version"), "firmwareversion");
  EXPECT_EQ(CeExtensionName("x_ok2"), "xok2");
  EXPECT_EQ(CeExtensionName("ID"), "");      // reserved
  EXPECT_EQ(CeExtensionName("--"), "");
  WireEvent e = MakeEvent(1);
  e.headers = {{"Firmware", "a"}, {"firmware", "b"}, {"id", "evil"}, {"Site", "s"}};
  auto back = EventFromJson(EventToJson(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->headers, (std::vector<std::pair<std::string, std::string>>{{"firmware", "a"}, {"site", "s"}}));
}

TEST(Wire, ContentTypes) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("application/cloudevents+json"));
  EXPECT_TRUE(IsJsonContentType("text/json"));
  EXPECT_FALSE(IsJsonContentType("application/octet-stream"));
  EXPECT_FALSE(IsJsonContentType("+json"));
  EXPECT_FALSE(IsJsonContentType(""));
}

TEST(Wire, Rfc3339) {
  EXPECT_EQ(FormatRfc3339(TimeNs{0}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(TimeNs{1'500'000'000}), "1970-01-01T00:00:01.500000000Z");
  EXPECT_EQ(FormatRfc3339(TimeNs{-1}), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(ParseRfc3339("2023-11-14T22:13:20.123456789Z")->ns, 1'700'000'000'123'456'789);
  EXPECT_EQ(ParseRfc3339("2023-11-14T23:13:20.5+01:00")->ns, 1'700'000'000'500'000'000);
  EXPECT_EQ(ParseRfc3339("1969-12-31T23:59:59.999999999Z")->ns, -1);
  // The ends of what an int64_t of nanoseconds holds parse exactly; a second past either is refused, not
  // wrapped (tests/fuzz/cloudevents/corpus/crash-rfc3339-year-overflow).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(FormatRfc3339(TimeNs{kMax}), "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(FormatRfc3339(TimeNs{kMin}), "1677-09-21T00:12:43.145224192Z");
  EXPECT_EQ(ParseRfc3339("2262-04-11T23:47:16.854775807Z")->ns, kMax);
  EXPECT_EQ(ParseRfc3339("1677-09-21T00:12:43.145224192Z")->ns, kMin);
  EXPECT_EQ(ParseRfc3339("2262-04-12T01:47:16.854775807+02:00")->ns, kMax);
  for (const char* out : {"2262-04-11T23:47:16.854775808Z", "1677-09-21T00:12:43.145224191Z", "9999-12-31T23:59:60Z",
                          "0000-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807-00:01"}) {
    auto t = ParseRfc3339(out);
    ASSERT_FALSE(t) << out;
    EXPECT_NE(t.error().message.find("outside the range"), std::string::npos) << t.error().message;
  }
  // Formatting does its own calendar (a 32-bit board's gmtime ends in 2038): it agrees with gmtime where that
  // reaches, and every time it formats parses back to itself.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const int64_t ns = static_cast<int64_t>(rng());
    const std::string text = FormatRfc3339(TimeNs{ns});
    auto back = ParseRfc3339(text);
    ASSERT_TRUE(back) << text;
    ASSERT_EQ(back->ns, ns) << text;
    if (sizeof(time_t) == 8) {
      int64_t secs = ns / 1'000'000'000 - (ns % 1'000'000'000 < 0 ? 1 : 0);
      time_t tt = static_cast<time_t>(secs);
      struct tm tm {};
      gmtime_r(&tt, &tm);
      char buf[96];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                    tm.tm_hour, tm.tm_min, tm.tm_sec);
      ASSERT_EQ(text.substr(0, 19), buf) << ns;
    }
  }
  EXPECT_FALSE(ParseRfc3339("2023-11-14 22:13"));
  EXPECT_FALSE(ParseRfc3339("2023-13-14T22:13:20Z"));
  EXPECT_FALSE(ParseRfc3339("2023-11-14T22:13:20"));
  EXPECT_FALSE(ParseRfc3339("2023-11-14T22:13:20.Z"));
  EXPECT_FALSE(ParseRfc3339("2023-11-14T22:13:20Zjunk"));
}

TEST(Wire, MqttProperties) {
  WireEvent e = MakeEvent(9);
  MqttEventProperties p = ToMqttProperties(e);
  EXPECT_EQ(p.content_type, "application/json");
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(p.user_properties,
            (std::vector<P>{{"specversion", "1.0"},
                            {"id", "dev-1/7/9"},
                            {"source", "ferry://gw-1/telemetry"},
                            {"type", "com.example.telemetry"},
                            {"time", "2023-11-14T22:13:20.123456789Z"},
                            {"subject", "dev-1"},
                            {"ferryseq", "9"},
                            {"ferryingesttime", "2023-11-14T22:13:21Z"},
                            {"firmware", "1.2.3"}}));
  auto back = FromMqttProperties(p, e.payload);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(*back == e);
  p.user_properties.erase(p.user_properties.begin() + 1);  // no id
  EXPECT_FALSE(FromMqttProperties(p, ""));
}

// The golden vector of docs/wire.md: decoding it must keep working on every build and zstd version.
TEST(Wire, GoldenVector) {
  std::ifstream in(std::string(FERRY_HUB_TESTDATA) + "/batch_v1.hex");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = FromHex(ss.str());
  auto d = DecodeBatch(bytes);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->header.gateway, "gw-1");
  EXPECT_EQ(d->header.stream, "telemetry");
  EXPECT_EQ(d->header.first_seq, Seq{41});
  EXPECT_EQ(d->header.last_seq, Seq{42});
  ASSERT_EQ(d->batch.events.size(), 2u);
  EXPECT_EQ(d->batch.events[0].id, "dev-1/7/41");
  EXPECT_EQ(d->batch.events[0].payload, R"({"t":21.5})");
  EXPECT_EQ(d->batch.events[1].subject, "dev-2");
  EXPECT_EQ(d->batch.events[1].payload, "\x01\x02\x03");
  EXPECT_EQ(d->batch.events[1].headers, (std::vector<std::pair<std::string, std::string>>{{"site", "north"}}));
  // The header bytes are fixed by the format, whatever the zstd version.
  EXPECT_EQ(bytes.substr(0, 32), FromHex("46525942 01000100 00040009 0000000000000029 000000000000002a 00000002"));
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// The centre's bytes are parsed as carefully as a device's: nesting cannot recurse the decoder into a crash.
TEST(WireJson, DeeplyNestedInputIsCorruptionNotACrash) {
  std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  auto batch = EventsFromJsonBatch("[{\"specversion\":\"1.0\",\"data\":" + deep + "}]");
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().code, ErrorCode::kCorruption);
  EXPECT_NE(batch.error().message.find("nested deeper"), std::string::npos) << batch.error().message;
  std::string event = "{\"specversion\":\"1.0\",\"data\":" + deep + "}";
  auto one = EventFromJson(event);
  ASSERT_FALSE(one);
  EXPECT_NE(one.error().message.find("nested deeper"), std::string::npos) << one.error().message;
  // Nesting where no event can be is refused before it gets deep.
  auto flat = EventsFromJsonBatch(deep);
  ASSERT_FALSE(flat);
  EXPECT_EQ(flat.error().message, "batch event 0: CloudEvent is not a JSON object");
}

WireEvent JsonEvent(std::string payload) {
  WireEvent e;
  e.id = "gw/s/1";
  e.source = "ferry://gw/s";
  e.type = "t";
  e.datacontenttype = "application/json";
  e.seq = Seq{1};
  e.ingest_time = TimeNs{1'700'000'000'000'000'000};
  e.payload = std::move(payload);
  return e;
}

// Numbers are forwarded as written. rapidjson 1.1.0's full-precision strtod read out of bounds and crashed on
// the first one (tests/fuzz/cloudevents/corpus/crash-rapidjson-strtod-segv); its normal-precision one drifts.
TEST(WireJson, NumbersTravelDigitForDigit) {
  const std::string numbers[] = {
      "1" + std::string(66, '0') + ".0000000010000184467e-404",
      "5.555555555555555e41",
      "0e100",
      "-0.000000000000000000000000",
      "18446744073709551616",
      "-9223372036854775809",
      "123456789012345678901234567890.123456789012345678901234567890",
      "1E-400",
      "1e308",
  };
  for (const std::string& n : numbers) {
    std::string payload = "{\"t\":" + n + ",\"a\":[" + n + "]}";
    std::string json = EventToJson(JsonEvent(payload));
    EXPECT_NE(json.find("\"data\":" + payload), std::string::npos) << json;
    auto back = EventFromJson(json);
    ASSERT_TRUE(back) << n << ": " << back.error().message;
    EXPECT_EQ(back->payload, payload);
    auto batch = EventsFromJsonBatch(EventsToJsonBatch({JsonEvent(payload), JsonEvent(n)}));
    ASSERT_TRUE(batch) << n << ": " << batch.error().message;
    ASSERT_EQ(batch->size(), 2u);
    EXPECT_EQ((*batch)[0].payload, payload);
    EXPECT_EQ((*batch)[1].payload, n);
  }
  // Whitespace goes, digits stay.
  auto e = EventFromJson(EventToJson(JsonEvent("{ \"t\" : 1.50 ,\n \"u\": [ 2E3 ] }")));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->payload, R"({"t":1.50,"u":[2E3]})");
}

// A lone low-surrogate escape decodes (in rapidjson 1.1.0) to bytes that are not UTF-8: such a payload travels
// as data_base64, byte for byte, and an attribute holding one is refused, so a centre never sees the bytes.
TEST(WireJson, LoneSurrogateEscapesNeverBecomeBadUtf8) {
  const std::string payload = R"({"s":"\udc00"})";
  std::string json = EventToJson(JsonEvent(payload));
  EXPECT_NE(json.find("\"data_base64\""), std::string::npos) << json;
  auto back = EventFromJson(json);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->payload, payload);
  // A valid pair passes as JSON.
  std::string pair = R"({"s":"\ud83d\ude00"})";
  EXPECT_EQ(EventToJson(JsonEvent(pair)).find("data_base64"), std::string::npos);

  std::string attr = R"({"specversion":"1.0","id":"\udc00","source":"s","type":"t"})";
  auto bad = EventFromJson(attr);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unpaired UTF-16 surrogate"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(EventsFromJsonBatch("[" + attr + "]"));
}

// A raw NUL ends no JSON text: refused, not read as the end of the input.
TEST(WireJson, NulByteIsRefusedNotTakenForTheEnd) {
  std::string json = EventToJson(JsonEvent("{}"));
  auto bad = EventFromJson(json + std::string(1, '\0') + "garbage");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("NUL byte"), std::string::npos) << bad.error().message;
  std::string payload = std::string("{}\0x", 4);
  EXPECT_NE(EventToJson(JsonEvent(payload)).find("data_base64"), std::string::npos);
}

// Attributes keep their meaning without a DOM: strings only, the last of a repeated one wins, errors name the
// event of a batch.
TEST(WireJson, EnvelopeErrorsNameTheProblem) {
  EXPECT_EQ(EventFromJson("[]").error().message, "CloudEvent is not a JSON object");
  EXPECT_EQ(EventFromJson("7").error().message, "CloudEvent is not a JSON object");
  EXPECT_EQ(EventsFromJsonBatch("{}").error().message, "batch body is not a JSON array");
  EXPECT_EQ(EventsFromJsonBatch("\"x\"").error().message, "batch body is not a JSON array");
  EXPECT_EQ(EventFromJson(R"({"specversion":"1.0","id":5})").error().message,
            "CloudEvent attribute \"id\" is not a string");
  EXPECT_EQ(EventFromJson(R"({"specversion":"1.0","id":{}})").error().message,
            "CloudEvent attribute \"id\" is not a string");
  EXPECT_EQ(EventFromJson(R"({"specversion":"1.0","id":"a"})").error().message,
            "CloudEvent lacks one of specversion, id, source, type");
  std::string ok = EventToJson(JsonEvent("[1,{\"a\":null},true]"));
  auto batch = EventsFromJsonBatch("[" + ok + "," + ok + ",3]");
  ASSERT_FALSE(batch);
  EXPECT_EQ(batch.error().message, "batch event 2: CloudEvent is not a JSON object");
  auto twice = EventFromJson(R"({"specversion":"1.0","id":"a","id":"b","source":"s","type":"t","data":1,"data":[2]})");
  ASSERT_TRUE(twice) << twice.error().message;
  EXPECT_EQ(twice->id, "b");
  EXPECT_EQ(twice->payload, "[2]");
  EXPECT_EQ(EventsFromJsonBatch("[]")->size(), 0u);
}

}  // namespace
}  // namespace ferry
