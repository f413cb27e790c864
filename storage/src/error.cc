#include "ferry/error.h"

namespace ferry {

const char* ErrorCodeName(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIoError: return "IoError";
    case ErrorCode::kFull: return "Full";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kBusy: return "Busy";
  }
  return "Unknown";
}

}  // namespace ferry
