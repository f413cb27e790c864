// stream_state.h: a stream as seen inside one WriteTxn (its handle and the meta being updated).
// Internal: shared by write_txn.cc and the maintenance sources (retention, compaction, budget).
#pragma once

#include "ferry/event_log.h"
#include "ferry/write_txn.h"
#include "stream_meta.h"

namespace ferry {

struct WriteTxn::StreamState {
  const EventLog::StreamHandle* handle;
  StreamMeta meta;
  bool dirty = false;  // meta changed: written back before commit
};

}  // namespace ferry
