// ferry/utf8.h: UTF-8 well-formedness. Thread: stateless; any thread.
#pragma once

#include <string_view>

namespace ferry {

// True when `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// past U+10FFFF, no truncated sequence. NUL bytes pass only if allow_nul (MQTT strings forbid U+0000).
bool IsUtf8(std::string_view s, bool allow_nul = true) noexcept;

}  // namespace ferry
