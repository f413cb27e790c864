// Inside ferry_wire: the batch body written into a caller's buffer, so BatchEncoder can reuse one between batches.
#pragma once

#include <vector>

#include <rapidjson/stringbuffer.h>

#include "ferry/wire.h"

namespace ferry {

// Appends the CloudEvents JSON batch of `events` (EventsToJsonBatch's text) to `out`.
void WriteEventsJsonBatch(const std::vector<WireEvent>& events, rapidjson::StringBuffer& out);

}  // namespace ferry
