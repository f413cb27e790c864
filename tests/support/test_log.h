// An event log for unit tests: in `path`, not synced (tests do not test durability here), on `clock`, with
// `streams` created. Returns null (and fails the test) when it cannot open or create.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "ferry/clock.h"
#include "ferry/event_log.h"

namespace ferry::test {

inline std::unique_ptr<EventLog> OpenTestLog(const std::string& path, const Clock& clock,
                                             std::initializer_list<const char*> streams) {
  EventLogOptions o;
  o.path = path;
  o.sync = false;
  o.clock = &clock;
  auto log = EventLog::Open(o);
  EXPECT_TRUE(log) << log.error().message;
  if (!log) return nullptr;
  for (const char* s : streams) {
    Status st = (*log)->CreateStream(s);
    EXPECT_TRUE(st) << s << ": " << st.error().message;
    if (!st) return nullptr;
  }
  return std::move(*log);
}

}  // namespace ferry::test
