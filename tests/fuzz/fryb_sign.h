// fryb_sign.h: signing a FRYB v1 payload the way a gateway does, for the targets that feed BatchDecoder
// (wire_batch, central_receiver).
//
// BatchDecoder checks the digest before zstd or the JSON parser sees a byte, so a mutated batch almost never
// gets further. Re-signing the mutated bytes, as anyone can for a SHA-256 batch and as a gateway holding the
// key does for an HMAC batch, lets the fuzzer reach everything behind the digest. Written from docs/wire.md,
// not from wire.cc, so the two implementations check each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <mbedtls/md.h>

namespace ferry::fuzz {

inline constexpr size_t kFrybDigestOffset = 40;  // docs/wire.md: digest at 40..71
inline constexpr size_t kFrybHeaderSize = 72;

// Writes the digest of `bytes` (SHA-256, or HMAC-SHA256 when `key` is non-empty) into bytes[40..72): it covers
// bytes 0-39 followed by every byte from offset 72 on. No-op on a payload shorter than the fixed header.
inline void SignFryb(std::string& bytes, const std::string& key) {
  if (bytes.size() < kFrybHeaderSize) return;
  auto* p = reinterpret_cast<unsigned char*>(bytes.data());
  mbedtls_md_context_t ctx;
  mbedtls_md_init(&ctx);
  mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key.empty() ? 0 : 1);
  if (key.empty()) {
    mbedtls_md_starts(&ctx);
    mbedtls_md_update(&ctx, p, kFrybDigestOffset);
    mbedtls_md_update(&ctx, p + kFrybHeaderSize, bytes.size() - kFrybHeaderSize);
    mbedtls_md_finish(&ctx, p + kFrybDigestOffset);
  } else {
    mbedtls_md_hmac_starts(&ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size());
    mbedtls_md_hmac_update(&ctx, p, kFrybDigestOffset);
    mbedtls_md_hmac_update(&ctx, p + kFrybHeaderSize, bytes.size() - kFrybHeaderSize);
    mbedtls_md_hmac_finish(&ctx, p + kFrybDigestOffset);
  }
  mbedtls_md_free(&ctx);
}

// Appends `n` bytes of `v`, big-endian.
inline void PutBe(std::string& out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace ferry::fuzz
