// lmdb_util.h: small helpers shared by the storage sources. Internal: not part of the public API.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/error.h"
#include "ferry/types.h"

namespace ferry::detail {

// Maps an LMDB / errno code to ferry's error codes, naming what failed.
inline Error MdbError(int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_NOTFOUND: return Error{ErrorCode::kNotFound, std::move(msg)};
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL: return Error{ErrorCode::kFull, std::move(msg)};
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_VALSIZE: return Error{ErrorCode::kCorruption, std::move(msg)};
    case MDB_READERS_FULL:
    case EAGAIN: return Error{ErrorCode::kBusy, std::move(msg)};
    case MDB_MAP_RESIZED:  // only a reader process sees this: the writer opened with a larger map_size
      return Error{ErrorCode::kUnavailable, std::move(msg) + " (the writer enlarged the map: reopen the log)"};
    case ENOENT: return Error{ErrorCode::kNotFound, std::move(msg)};
    case EINVAL: return Error{ErrorCode::kInvalidArgument, std::move(msg)};
    default: return Error{ErrorCode::kIoError, std::move(msg)};
  }
}
inline tl::unexpected<Error> MdbFail(int rc, std::string_view what) { return tl::unexpected(MdbError(rc, what)); }

// Sequence keys: 8 bytes big-endian, so memcmp order (LMDB's default) is numeric order.
struct SeqKey {
  unsigned char bytes[8];
  explicit SeqKey(Seq seq) {
    for (int i = 7; i >= 0; --i) {
      bytes[i] = static_cast<unsigned char>(seq.value >> (8 * (7 - i)));
    }
  }
  MDB_val val() { return MDB_val{sizeof(bytes), bytes}; }
};

inline bool DecodeSeq(const MDB_val& v, Seq* out) {
  if (v.mv_size != 8) return false;
  const auto* p = static_cast<const unsigned char*>(v.mv_data);
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | p[i];
  out->value = x;
  return true;
}

inline MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

// Database names inside the environment.
inline std::string LogDbName(std::string_view stream) { return "log:" + std::string(stream); }
inline std::string SubjectDbName(std::string_view stream) { return "subj:" + std::string(stream); }
inline std::string MetaKey(std::string_view stream) { return "stream:" + std::string(stream); }
inline std::string CursorKey(std::string_view stream, std::string_view cursor) {
  std::string k(stream);
  k.push_back('\0');
  k.append(cursor);
  return k;
}

inline constexpr size_t kMaxKeySize = 511;  // LMDB's default compile-time limit (mdb_env_get_maxkeysize)

}  // namespace ferry::detail
