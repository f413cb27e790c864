// ferry/log.h: logging to stderr, one line per message, for journald. Thread-safe.
#pragma once

#include <cstdarg>

namespace ferry {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// printf-style; the level is written as a syslog priority prefix ("<4>") that journald understands.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define FERRY_LOG_DEBUG(...) ::ferry::Log(::ferry::LogLevel::kDebug, __VA_ARGS__)
#define FERRY_LOG_INFO(...) ::ferry::Log(::ferry::LogLevel::kInfo, __VA_ARGS__)
#define FERRY_LOG_WARN(...) ::ferry::Log(::ferry::LogLevel::kWarn, __VA_ARGS__)
#define FERRY_LOG_ERROR(...) ::ferry::Log(::ferry::LogLevel::kError, __VA_ARGS__)

}  // namespace ferry
