// stream_meta.h: the per-stream meta record kept in the "meta" database and updated in the same
// transaction as every append and delete, so counts and sequence numbers can never drift from the log.
// On-disk, little-endian, layout documented in docs/storage.md.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "ferry/error.h"
#include "ferry/types.h"

namespace ferry {

struct StreamMeta {
  uint8_t version;        // kStreamMetaVersion
  uint8_t kind;           // StreamKind
  uint8_t full_policy;    // FullPolicy
  uint8_t reserved0;
  int32_t priority;
  uint64_t next_seq;      // seq the next append gets (starts at 1)
  uint64_t first_seq;     // seq of the first record present; == next_seq when empty
  uint64_t count;
  uint64_t bytes;         // sum of key + value sizes
  int64_t last_ingest_ns; // monotonic clamp for the next append
  int64_t max_age_ns;
  uint64_t max_bytes;
  int64_t tombstone_grace_ns;
  uint64_t compact_pos;   // compaction resumes at this seq
  uint64_t evicted[kEvictReasonCount];
};
static_assert(sizeof(StreamMeta) == 112, "StreamMeta is an on-disk format");
inline constexpr uint8_t kStreamMetaVersion = 1;
inline constexpr uint32_t kEnvFormatVersion = 1;  // meta key "format"
inline constexpr std::string_view kFormatKey = "format";

inline void ApplyOptions(const StreamOptions& o, StreamMeta* m) {
  m->kind = static_cast<uint8_t>(o.kind);
  m->full_policy = static_cast<uint8_t>(o.full_policy);
  m->priority = o.priority;
  m->max_age_ns = o.max_age_ns;
  m->max_bytes = o.max_bytes;
  m->tombstone_grace_ns = o.tombstone_grace_ns;
}

inline StreamMeta NewStreamMeta(const StreamOptions& o) {
  StreamMeta m{};
  m.version = kStreamMetaVersion;
  m.next_seq = 1;
  m.first_seq = 1;
  m.compact_pos = 1;
  ApplyOptions(o, &m);
  return m;
}

inline StreamOptions OptionsOf(const StreamMeta& m) {
  StreamOptions o;
  o.kind = static_cast<StreamKind>(m.kind);
  o.full_policy = static_cast<FullPolicy>(m.full_policy);
  o.priority = m.priority;
  o.max_age_ns = m.max_age_ns;
  o.max_bytes = m.max_bytes;
  o.tombstone_grace_ns = m.tombstone_grace_ns;
  return o;
}

inline Result<StreamMeta> DecodeStreamMeta(std::string_view v, std::string_view stream) {
  StreamMeta m{};
  if (v.size() < 1) return Corruption("stream " + std::string(stream) + ": empty meta record");
  std::memcpy(&m, v.data(), 1);
  if (m.version != kStreamMetaVersion) {
    return Corruption("stream " + std::string(stream) + ": unsupported meta format version " +
                      std::to_string(m.version));
  }
  if (v.size() != sizeof(StreamMeta)) {
    return Corruption("stream " + std::string(stream) + ": meta record is " + std::to_string(v.size()) +
                      " bytes, expected " + std::to_string(sizeof(StreamMeta)));
  }
  std::memcpy(&m, v.data(), sizeof(m));
  return m;
}

}  // namespace ferry
