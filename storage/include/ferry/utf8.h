// ferry/utf8.h: UTF-8 well-formedness. Thread: stateless; any thread.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

// True when `s` is well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// past U+10FFFF, no truncated sequence. NUL bytes pass only if allow_nul (MQTT strings forbid U+0000).
bool IsUtf8(std::string_view s, bool allow_nul = true) noexcept;

// `s` unchanged when it is well-formed UTF-8 of allowable characters only (no U+0000-U+001F, U+007F-U+009F,
// Unicode noncharacters) and holds none of the ASCII characters in `also_encode`. Otherwise every byte of an
// invalid sequence, of a refused character, of a character in `also_encode`, and every '%', becomes %XX
// (upper-case hex); the rest is kept. Deterministic, so an id encoded twice is encoded the same way, and a
// result is legal, so encoding it again changes nothing. What MQTT brokers and CloudEvents String attributes
// accept (docs/wire.md "Strings MQTT cannot carry").
std::string LegalUnicodeString(std::string_view s, std::string_view also_encode = {});
// True when LegalUnicodeString would return `s` unchanged.
bool IsLegalUnicodeString(std::string_view s, std::string_view also_encode = {}) noexcept;

}  // namespace ferry
