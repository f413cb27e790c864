#include <gtest/gtest.h>

#include <cstring>

#include "../../storage/src/crc32c.h"
#include "ferry/record.h"
#include "test_util.h"

namespace ferry {
namespace {

using testing::MakeEvent;

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xe3069283u);
  EXPECT_EQ(crc32c::Value("", 0), 0u);
  const std::string a(32, 'a');
  EXPECT_EQ(crc32c::Extend(crc32c::Value(a.data(), 10), a.data() + 10, 22), crc32c::Value(a.data(), 32));
  EXPECT_EQ(crc32c::Unmask(crc32c::Mask(0x12345678u)), 0x12345678u);
}

Event FullEvent() {
  Event e = MakeEvent("payload-bytes\0with-nul", "sensor/42");
  e.payload = std::string("pay\0load", 8);
  e.time = TimeNs{123456789};
  e.headers = {{"traceparent", "00-abc"}, {"", ""}, {"k2", std::string(300, 'v')}};
  return e;
}

TEST(RecordTest, RoundTripsEveryField) {
  const Event e = FullEvent();
  std::string buf;
  ASSERT_TRUE(EncodedRecordSize(e));
  EncodeRecord(e, Seq{42}, TimeNs{99}, &buf);
  EXPECT_EQ(buf.size(), *EncodedRecordSize(e));
  auto r = DecodeRecord(buf, Seq{42});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->seq, Seq{42});
  EXPECT_EQ(r->ingest_time, TimeNs{99});
  EXPECT_EQ(r->time, TimeNs{123456789});
  EXPECT_EQ(r->id, e.id);
  EXPECT_EQ(r->source, e.source);
  EXPECT_EQ(r->type, e.type);
  EXPECT_EQ(r->subject, e.subject);
  EXPECT_EQ(r->datacontenttype, e.datacontenttype);
  ASSERT_EQ(r->headers.size(), 3u);
  EXPECT_EQ(r->headers[0].first, "traceparent");
  EXPECT_EQ(r->headers[2].second, std::string(300, 'v'));
  EXPECT_EQ(r->payload, e.payload);
  const Event copy = r->ToEvent();
  EXPECT_EQ(copy.payload, e.payload);
  EXPECT_EQ(copy.headers, e.headers);
}

TEST(RecordTest, EmptyEventRoundTrips) {
  std::string buf;
  EncodeRecord(Event{}, Seq{1}, TimeNs{0}, &buf);
  EXPECT_EQ(buf.size(), sizeof(RecordHeader));
  EXPECT_TRUE(DecodeRecord(buf, Seq{1}));
}

TEST(RecordTest, EveryTruncationIsCorruption) {
  std::string buf;
  EncodeRecord(FullEvent(), Seq{7}, TimeNs{1}, &buf);
  for (size_t n = 0; n < buf.size(); ++n) {
    auto r = DecodeRecord(std::string_view(buf).substr(0, n), Seq{7});
    ASSERT_FALSE(r) << "length " << n;
    EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  }
}

TEST(RecordTest, EveryBitFlipIsCorruption) {
  std::string buf;
  EncodeRecord(FullEvent(), Seq{7}, TimeNs{1}, &buf);
  for (size_t i = 0; i < buf.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = buf;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto r = DecodeRecord(bad, Seq{7});
      ASSERT_FALSE(r) << "byte " << i << " bit " << bit;
      EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
    }
  }
}

TEST(RecordTest, FutureVersionIsRefusedClearly) {
  std::string buf;
  EncodeRecord(FullEvent(), Seq{7}, TimeNs{1}, &buf);
  buf[0] = static_cast<char>(kRecordFormatVersion + 1);
  auto r = DecodeRecord(buf, Seq{7});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
  EXPECT_NE(r.error().message.find("unsupported record format version 2"), std::string::npos) << r.error().message;
  EXPECT_FALSE(PeekRecord(buf));
}

TEST(RecordTest, WrongKeyIsCorruption) {
  std::string buf;
  EncodeRecord(FullEvent(), Seq{7}, TimeNs{1}, &buf);
  auto r = DecodeRecord(buf, Seq{8});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorruption);
}

TEST(RecordTest, OversizedAttributeIsInvalidArgument) {
  Event e = MakeEvent("x");
  e.subject.assign(70000, 's');
  auto n = EncodedRecordSize(e);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kInvalidArgument);
}

TEST(RecordTest, PeekReadsSubjectAndIngestTime) {
  std::string buf;
  EncodeRecord(FullEvent(), Seq{7}, TimeNs{555}, &buf);
  auto p = PeekRecord(buf);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->subject, "sensor/42");
  EXPECT_EQ(p->ingest_time, TimeNs{555});
  EXPECT_EQ(p->payload_size, 8u);
}

}  // namespace
}  // namespace ferry
