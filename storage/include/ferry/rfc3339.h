// ferry/rfc3339.h: RFC 3339 timestamps (CloudEvents `time`, ferryctl, config values). Thread: stateless.
#pragma once

#include <string>
#include <string_view>

#include "ferry/error.h"
#include "ferry/clock.h"

namespace ferry {

// RFC 3339 in UTC: "2023-11-14T22:13:20Z" or with 9 fractional digits when the time has nanoseconds.
std::string FormatRfc3339(TimeNs t);
// Accepts 0-9 fractional digits and a 'Z' or ±hh:mm offset; a time outside what TimeNs holds (1677-09-21 to
// 2262-04-11) is refused, not wrapped. Errors: kInvalidArgument.
Result<TimeNs> ParseRfc3339(std::string_view text);

}  // namespace ferry
