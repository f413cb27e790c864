// test_util.h: scratch directories and event builders for the storage tests.
#pragma once

#include <dirent.h>
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
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/ferry-storage-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() { Remove(path_); }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  static void Remove(const std::string& dir) {
    if (dir.empty()) return;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        const std::string p = dir + "/" + n;
        struct stat sb{};
        if (::lstat(p.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) {
          Remove(p);
        } else {
          ::unlink(p.c_str());
        }
      }
      ::closedir(d);
    }
    ::rmdir(dir.c_str());
  }
  std::string path_;
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
