// ferry/error.h: the one result type used across storage/ and hub/.
//
// Every fallible call returns Result<T> (tl::expected<T, Error>). Error carries a small code and a message
// naming the problem (file, stream, key...). Exceptions from third-party libraries (Paho, toml++) are caught
// at the edge and converted to Error; they never cross a ferry API.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace ferry {

enum class ErrorCode {
  kNotFound,         // the stream, cursor, record or file does not exist
  kCorruption,       // stored data failed a checksum, a size or a version check
  kIoError,          // the OS or LMDB reported an I/O failure
  kFull,             // the disk budget is exhausted and the policy refuses the write
  kInvalidArgument,  // the caller passed something malformed (bad config, bad name, bad range)
  kUnavailable,      // a peer (broker, cluster) cannot be reached right now; retrying may help
  kBusy,             // the resource is held elsewhere (e.g. the writer lock of the environment)
};

const char* ErrorCodeName(ErrorCode code) noexcept;

struct Error {
  ErrorCode code;
  std::string message;

  // "Corruption: stream telemetry seq 42: checksum mismatch"
  std::string ToString() const { return std::string(ErrorCodeName(code)) + ": " + message; }
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline tl::unexpected<Error> NotFound(std::string m) { return MakeError(ErrorCode::kNotFound, std::move(m)); }
inline tl::unexpected<Error> Corruption(std::string m) { return MakeError(ErrorCode::kCorruption, std::move(m)); }
inline tl::unexpected<Error> IoError(std::string m) { return MakeError(ErrorCode::kIoError, std::move(m)); }
inline tl::unexpected<Error> Full(std::string m) { return MakeError(ErrorCode::kFull, std::move(m)); }
inline tl::unexpected<Error> InvalidArgument(std::string m) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(m));
}
inline tl::unexpected<Error> Unavailable(std::string m) { return MakeError(ErrorCode::kUnavailable, std::move(m)); }

inline Status Ok() { return {}; }

}  // namespace ferry
