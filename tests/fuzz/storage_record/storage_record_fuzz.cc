// storage_record_fuzz.cc: libFuzzer target for the storage decoders of bytes read back from disk: the record
// codec (DecodeRecord, PeekRecord in storage/src/record.cc) and the per-stream meta record (DecodeStreamMeta in
// storage/src/stream_meta.h). A damaged SD card or a crafted data.mdb hands them anything. See ../README.md.
//
// Input: one mode byte, then the value as LMDB would return it.
//   bit 0  fix up body_size and the CRC32C first, so mutations get past the checksum to the field parsing
//   bit 1  look the record up under the seq its header names (else under seq 42, which the header must match)
//
// A record that decodes must agree with PeekRecord (which retention and compaction use without the CRC) and
// must encode back to the same bytes, apart from the reserved word the decoder does not read.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../fuzz_bytes.h"
#include "crc32c.h"
#include "ferry/record.h"
#include "stream_meta.h"

namespace {

using namespace ferry;
using fuzz::Fail;

constexpr size_t kReservedOffset = offsetof(RecordHeader, reserved);

void FixChecksum(std::string& v) {
  if (v.size() < sizeof(RecordHeader)) return;
  const uint32_t body = static_cast<uint32_t>(v.size() - sizeof(RecordHeader));
  std::memcpy(v.data() + offsetof(RecordHeader, body_size), &body, sizeof body);
  const size_t from = offsetof(RecordHeader, body_size);  // the CRC covers [8, end)
  const uint32_t crc = crc32c::Mask(crc32c::Value(v.data() + from, v.size() - from));
  std::memcpy(v.data() + offsetof(RecordHeader, crc), &crc, sizeof crc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzBytes in(data, size);
  const uint8_t mode = in.U8();
  std::string value(in.Rest());
  if (mode & 0x01) FixChecksum(value);
  Seq seq{42};
  if ((mode & 0x02) && value.size() >= sizeof(RecordHeader))
    std::memcpy(&seq.value, value.data() + offsetof(RecordHeader, seq), sizeof seq.value);

  (void)DecodeStreamMeta(value, "fuzz");
  auto peek = PeekRecord(value);
  auto r = DecodeRecord(value, seq);
  if (!r) {
    if (r.error().code != ErrorCode::kCorruption) Fail("DecodeRecord error code: %s", r.error().ToString().c_str());
    return 0;
  }
  if (!peek) Fail("DecodeRecord accepts what PeekRecord refuses: %s", peek.error().ToString().c_str());
  if (peek->ingest_time != r->ingest_time || peek->subject != r->subject ||
      peek->payload_size != r->payload.size()) {
    Fail("PeekRecord and DecodeRecord disagree");
  }
  if (r->seq != seq) Fail("decoded seq differs from the key");

  Event e = r->ToEvent();
  auto n = EncodedRecordSize(e);
  if (!n) Fail("a decoded record does not encode: %s", n.error().ToString().c_str());
  std::string again;
  EncodeRecord(e, seq, r->ingest_time, &again);
  if (again.size() != value.size()) Fail("re-encoded record is %zu bytes, was %zu", again.size(), value.size());
  std::string masked = value;
  std::memset(masked.data() + kReservedOffset, 0, sizeof(RecordHeader::reserved));
  if (again != masked) {
    // The CRC covers the reserved word, so a non-zero one changes the CRC too: compare the rest.
    std::memcpy(again.data() + offsetof(RecordHeader, crc), masked.data() + offsetof(RecordHeader, crc), 4);
    if (again != masked) Fail("record does not re-encode to the same bytes");
  }
  return 0;
}
