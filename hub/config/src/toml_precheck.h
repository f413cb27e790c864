// toml_precheck.h (private to ferry_config): refusals made before toml++ sees a config text.
//
// toml++ 3.3.0, as Debian ships it, has two faults on input no valid config holds: a non-ASCII character
// where a key or a line-ending backslash continues reaches TOML_UNREACHABLE (undefined behaviour in release
// builds; upstream marzer/tomlplusplus#190), and it recurses once per part of a dotted key or table header, so
// about 40,000 parts (an 80 KB file) overflow the stack. Its bare-value scan also asks of each non-ASCII
// character whether it is whitespace, and that reaches TOML_UNREACHABLE too (tests/fuzz/config/corpus/
// crash-toml-unreachable-more). All are refused here first, with the line and column.
// Thread: stateless; any thread.
#pragma once

#include <string>
#include <string_view>

#include "ferry/error.h"

namespace ferry {

// The most parts a dotted key or table header may have (Ferry's deepest key has four).
inline constexpr int kMaxTomlKeyParts = 64;

// InvalidArgument("<file>:<line>:<column>: ...") for a non-ASCII character outside strings and comments (TOML
// allows none there) or inside a bare value (a number, date or boolean, up to its first ASCII space, newline,
// ']', '}', ',' or '#', quotes included), a backslash before a non-ASCII character in a basic string (no TOML escape starts so),
// or a dotted key or table header of more than kMaxTomlKeyParts parts. Anything else is left to toml++.
Status PrecheckToml(std::string_view text, const std::string& file);

}  // namespace ferry
