// ferry/types.h: small value types shared by the storage API.
//
// Sequence numbers, stream names and stream policies are distinct types so that a cursor position is never
// passed where a count is expected (STYLE habit 9). Everything here is a plain value: copy it freely.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/clock.h"
#include "ferry/error.h"

namespace ferry {

// Per-stream sequence number. The first record of a stream has Seq{1}; Seq{0} means "before the first".
// Stored on disk as an 8-byte big-endian key so that LMDB's byte order is numeric order on every target.
struct Seq {
  uint64_t value = 0;
  constexpr Seq next() const { return Seq{value + 1}; }
  friend constexpr bool operator==(Seq a, Seq b) { return a.value == b.value; }
  friend constexpr bool operator!=(Seq a, Seq b) { return a.value != b.value; }
  friend constexpr bool operator<(Seq a, Seq b) { return a.value < b.value; }
  friend constexpr bool operator<=(Seq a, Seq b) { return a.value <= b.value; }
  friend constexpr bool operator>(Seq a, Seq b) { return a.value > b.value; }
  friend constexpr bool operator>=(Seq a, Seq b) { return a.value >= b.value; }
};

// Stream names become part of LMDB database names: 1..64 bytes of [A-Za-z0-9_.-], not starting with '.'.
// Returns InvalidArgument naming the offending character otherwise.
Status ValidateStreamName(std::string_view name);

// Cursor names follow the same rule as stream names.
Status ValidateCursorName(std::string_view name);

// What happens to a stream's own appends when the disk budget is exhausted.
enum class FullPolicy : uint8_t {
  kDropOldest = 0,  // the stream's oldest records may be evicted to make room (the default)
  kRejectNew = 1,   // the stream is never evicted for budget; its appends fail with kFull instead
};

enum class StreamKind : uint8_t {
  kLog = 0,    // append-only; retention trims the head
  kTable = 1,  // keyed by subject: compaction keeps the latest record per subject; empty payload = tombstone
};

// Why a record left the log. Counted per stream in StreamStats::evicted.
enum class EvictReason : uint8_t {
  kRetentionAge = 0,
  kRetentionBytes = 1,
  kCompaction = 2,
  kBudget = 3,
};
inline constexpr int kEvictReasonCount = 4;
const char* EvictReasonName(EvictReason reason) noexcept;

// Per-stream configuration, persisted in the meta database with the stream.
struct StreamOptions {
  StreamKind kind = StreamKind::kLog;
  FullPolicy full_policy = FullPolicy::kDropOldest;
  // Budget eviction order: lower priorities are evicted first. An append may only evict streams whose
  // priority is <= its own stream's priority.
  int32_t priority = 0;
  // Retention: 0 = unlimited. Age is measured on ingest time against the injected Clock.
  int64_t max_age_ns = 0;
  uint64_t max_bytes = 0;
  // kTable only: a tombstone (empty payload) is kept this long so consumers can see the delete.
  int64_t tombstone_grace_ns = int64_t{24} * 3600 * 1'000'000'000;
};

}  // namespace ferry
