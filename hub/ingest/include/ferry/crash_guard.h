// ferry/crash_guard.h: no crash loop from one poisoned message.
//
// A message that crashes ferryd is never acknowledged, so its sender re-sends it after the restart, and it
// would crash ferryd again, for ever, with every event queued behind it stuck. CrashGuard keeps, in a small
// file mapped into memory beside the log, the hash of the message each ingest thread has in hand. The file
// survives the process (page cache), so the next start knows what was in hand at an unclean exit:
//   - a message in hand when a fatal signal arrived (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT: the handler
//     marks the slot) is poison at once;
//   - a message in hand at an exit without a signal (kill -9, power) gets a strike; at two strikes (it was in
//     hand at two unclean exits in a row) it is poison. A healthy message in hand at one kill -9 is simply
//     processed again.
// The ingest paths ask Suspect() before parsing and set a poison message aside, unparsed, in the route's
// dead-letter stream (reason `poison`), acknowledged and counted: the rest of the traffic moves on.
//
// Cost per message: one hash of topic and payload and two stores to mapped memory; no system call.
// Threads: each ingest thread owns one Slot; Suspect/Cleared from the slot's thread. The signal handler touches
// only the crashing thread's slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/error.h"

namespace ferry {

class CrashGuard {
 public:
  static constexpr size_t kSlots = 8;

  // Opens (creates) the guard file, takes over what a previous unclean exit left in it, and installs the fatal
  // signal handlers. Errors: IoError naming the path.
  static Result<std::unique_ptr<CrashGuard>> Open(const std::string& path);
  ~CrashGuard();  // a clean exit: nothing in hand, strikes kept for the next start

  static uint64_t Hash(std::string_view topic, std::string_view payload);

  // One per ingest thread (index < kSlots). Enter before touching a message, Leave after handing it on.
  void Enter(size_t slot, uint64_t hash);
  void Leave(size_t slot);
  // Makes the calling thread's fatal-signal handler mark `slot` (call once on that thread) and gives it an
  // alternate signal stack, so even a stack overflow is recorded.
  void BindThread(size_t slot);

  // True when `hash` is poison: set it aside instead of processing it.
  bool Poisoned(uint64_t hash) const;
  // A message with a strike was processed without a crash: forget the strike.
  void Cleared(uint64_t hash);
  // Messages with a strike or poison, as taken over at Open (for the start-up log line).
  size_t suspects() const;

  // The mapped file's layout (crash_guard.cc).
  struct Slot;
  struct Strike;
  struct File;

 private:
  CrashGuard() = default;
  File* file_ = nullptr;
  size_t map_size_ = 0;
  int fd_ = -1;
  bool any_strikes_ = false;  // Cleared() is free in the common case
};

}  // namespace ferry
