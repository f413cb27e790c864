// ferry/record.h: one event as stored in a stream, and its on-disk codec.
//
// A record is a fixed, versioned header followed by the CloudEvents attributes, the free headers and the
// payload. Every record carries a CRC32C verified on each decode. The byte layout is specified in
// docs/storage.md ("Record format"); RecordHeader below is that layout, checked with static_assert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/error.h"
#include "ferry/types.h"

namespace ferry {

// What a producer appends. Strings are owned so an Event can sit in the group-commit queue.
struct Event {
  std::string id;                 // CloudEvents id; stored as given (empty: the uplink derives <gateway>/<stream>/<seq>)
  std::string source;             // CloudEvents source
  std::string type;               // CloudEvents type
  TimeNs time{};                  // CloudEvents time (producer clock); 0 = absent
  std::string subject;            // CloudEvents subject; the key of kTable streams
  std::string datacontenttype;    // CloudEvents datacontenttype
  std::vector<std::pair<std::string, std::string>> headers;  // free key/value extensions, in order
  std::string payload;            // opaque bytes; empty in a kTable stream = tombstone
};

// A decoded record. The string_views point into the buffer passed to DecodeRecord (for iterators: LMDB's
// memory map), so a RecordView is valid only as long as that buffer / the iterator position.
struct RecordView {
  Seq seq;
  TimeNs ingest_time;
  TimeNs time;
  std::string_view id;
  std::string_view source;
  std::string_view type;
  std::string_view subject;
  std::string_view datacontenttype;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view payload;

  // Deep copy, for callers that keep records beyond the read transaction.
  Event ToEvent() const;
};

// On-disk record header, little-endian (all Ferry targets are little-endian; see static_assert in record.cc).
// The CRC32C covers every byte of the record after the crc field.
struct RecordHeader {
  uint8_t version;            // kRecordFormatVersion; newer versions are refused (not guessed at)
  uint8_t flags;              // reserved, 0
  uint16_t header_size;       // sizeof(RecordHeader) for this version; lets a later version grow it
  uint32_t crc;               // CRC32C (Castagnoli), masked, of bytes [8, end)
  uint32_t body_size;         // bytes after the header; must equal value size - header_size
  uint32_t payload_size;
  uint64_t seq;               // must equal the key: catches a record stored under the wrong key
  int64_t ingest_ns;
  int64_t time_ns;
  uint16_t id_len;
  uint16_t source_len;
  uint16_t type_len;
  uint16_t subject_len;
  uint16_t datacontenttype_len;
  uint16_t header_count;      // free headers, each encoded as u16 key_len, u16 value_len, key, value
  uint32_t reserved;          // 0
};
static_assert(sizeof(RecordHeader) == 56, "RecordHeader is an on-disk format: do not change its size");

inline constexpr uint8_t kRecordFormatVersion = 1;
inline constexpr size_t kMaxAttributeSize = 0xffff;  // each attribute / header key / header value
inline constexpr size_t kMaxRecordSize = 64u << 20;  // sanity bound, far above any MQTT payload

// Size of the encoded record, or InvalidArgument if an attribute is longer than kMaxAttributeSize or the
// whole record exceeds kMaxRecordSize.
Result<size_t> EncodedRecordSize(const Event& event);

// Appends the encoded record to *out. REQUIRES: EncodedRecordSize(event) succeeded.
void EncodeRecord(const Event& event, Seq seq, TimeNs ingest_time, std::string* out);

// Decodes and verifies `data` (one LMDB value) stored under key `seq`.
// Errors: Corruption if truncated, the CRC does not match, sizes disagree, the seq differs from the key,
// or the format version is newer than kRecordFormatVersion (message says "unsupported format version").
Result<RecordView> DecodeRecord(std::string_view data, Seq seq);

// Reads only the header fields needed by retention/compaction (ingest time, subject, payload size) without
// verifying the CRC. Corruption if the header itself is malformed.
struct RecordSummary {
  TimeNs ingest_time;
  std::string_view subject;
  uint32_t payload_size;
};
Result<RecordSummary> PeekRecord(std::string_view data);

}  // namespace ferry
