// test_util.h: scratch directories and event builders for the storage tests.
#pragma once

#include "../support/temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "ferry/event_log.h"
#include "ferry/record.h"

namespace ferry::testing {

// A fresh directory under $TMPDIR, removed (one level deep) on destruction.
// The shared scratch directory (tests/support/temp_dir.h), named for this suite.
class TempDir : public ::ferry::test::TempDir {
 public:
  TempDir() : ::ferry::test::TempDir("ferry-storage") {}
};

inline Event MakeEvent(const std::string& payload, const std::string& subject = "") {
  Event e;
  e.id = "dev-1/boot-7/" + payload.substr(0, 16);
  e.source = "urn:dev:1";
  e.type = "telemetry.v1";
  e.subject = subject;
  e.datacontenttype = "application/octet-stream";
  e.payload = payload;
  return e;
}

inline std::unique_ptr<EventLog> OpenLog(const std::string& path, const Clock* clock = nullptr,
                                         size_t map_size = size_t{64} << 20, bool sync = true) {
  EventLogOptions o;
  o.sync = sync;
  o.path = path;
  o.clock = clock;
  o.map_size = map_size;
  auto log = EventLog::Open(o);
  EXPECT_TRUE(log) << (log ? "" : log.error().ToString());
  return log ? std::move(*log) : nullptr;
}

}  // namespace ferry::testing
