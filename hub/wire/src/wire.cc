// The batched uplink payload ("FRYB" v1): header, digest/HMAC, zstd body. Layout in docs/wire.md.
#include "ferry/wire.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <zstd.h>

#include "cloudevents_json.h"

namespace ferry {
namespace {

// Scratch buffers at least this large are given back after a batch smaller than this: a drain (batches of
// hundreds of KiB, one after another) keeps them, live traffic (a few events a batch) does not hold a drain's
// worth of heap.
constexpr size_t kKeepScratchFrom = 64 * 1024;

// Field offsets of the fixed header (big-endian). docs/wire.md has the same table.
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 4;
constexpr size_t kOffFlags = 5;
constexpr size_t kOffCodec = 6;
constexpr size_t kOffReserved = 7;
constexpr size_t kOffGatewayLen = 8;
constexpr size_t kOffStreamLen = 10;
constexpr size_t kOffFirstSeq = 12;
constexpr size_t kOffLastSeq = 20;
constexpr size_t kOffCount = 28;
constexpr size_t kOffBodyBytes = 32;
constexpr size_t kOffCompressedBytes = 36;
constexpr size_t kOffDigest = 40;
constexpr size_t kDigestSize = 32;
static_assert(kOffDigest + kDigestSize == kBatchFixedHeaderSize, "header layout and kBatchFixedHeaderSize disagree");
static_assert(sizeof(BatchHeader::digest) == kDigestSize, "digest is SHA-256 sized");

void PutBe(std::string& out, size_t off, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out[off + i] = static_cast<char>((v >> (8 * (n - 1 - i))) & 0xff);
}
uint64_t GetBe(std::string_view in, size_t off, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(in[off + i]);
  return v;
}

// The digest covers bytes [0, 40) and everything after the fixed header: all but the digest itself.
std::array<uint8_t, 32> ComputeDigest(std::string_view payload, const std::string& hmac_key) {
  std::array<uint8_t, 32> out{};
  auto head = reinterpret_cast<const unsigned char*>(payload.data());
  auto tail = head + kBatchFixedHeaderSize;
  size_t tail_len = payload.size() - kBatchFixedHeaderSize;
  if (hmac_key.empty()) {
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts_ret(&ctx, 0);
    mbedtls_sha256_update_ret(&ctx, head, kOffDigest);
    mbedtls_sha256_update_ret(&ctx, tail, tail_len);
    mbedtls_sha256_finish_ret(&ctx, out.data());
    mbedtls_sha256_free(&ctx);
  } else {
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    mbedtls_md_hmac_starts(&ctx, reinterpret_cast<const unsigned char*>(hmac_key.data()), hmac_key.size());
    mbedtls_md_hmac_update(&ctx, head, kOffDigest);
    mbedtls_md_hmac_update(&ctx, tail, tail_len);
    mbedtls_md_hmac_finish(&ctx, out.data());
    mbedtls_md_free(&ctx);
  }
  return out;
}

bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t n) {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; ++i) diff = static_cast<uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace

// The body and zstd's output are written into buffers kept between batches: built afresh, each batch of a drain
// mapped (they are above ferryd's 64 KiB mmap threshold), zero-filled, faulted in, copied and unmapped about
// three times its body size, half of the uplink thread's CPU during a drain (perf, bench/README.md).
struct BatchEncoder::Scratch {
  rapidjson::StringBuffer body;
  std::string frame;
};

BatchEncoder::BatchEncoder(EncoderOptions options)
    : options_(std::move(options)), cctx_(ZSTD_createCCtx()), scratch_(std::make_unique<Scratch>()) {}
BatchEncoder::~BatchEncoder() { ZSTD_freeCCtx(cctx_); }

Result<std::string> BatchEncoder::Encode(const Batch& batch) {
  if (batch.events.empty()) return InvalidArgument("batch: no events");
  if (batch.gateway.size() > 0xffff || batch.stream.size() > 0xffff) {
    return InvalidArgument("batch: gateway id or stream name longer than 65535 bytes");
  }
  if (batch.events.size() > 0xffffffffu) return InvalidArgument("batch: too many events");
  for (size_t i = 1; i < batch.events.size(); ++i) {
    if (batch.events[i].seq <= batch.events[i - 1].seq) {
      return InvalidArgument("batch: seq " + std::to_string(batch.events[i].seq.value) + " follows seq " +
                             std::to_string(batch.events[i - 1].seq.value) + " (must increase)");
    }
  }
  Scratch& s = *scratch_;
  s.body.Clear();
  WriteEventsJsonBatch(batch.events, s.body);
  const size_t body_size = s.body.GetSize();
  struct GiveBackIfSmall {  // on every return
    Scratch& s;
    size_t body_size;
    ~GiveBackIfSmall() {
      if (body_size >= kKeepScratchFrom) return;
      s.body.Clear();
      s.body.ShrinkToFit();
      if (s.frame.capacity() >= kKeepScratchFrom) std::string().swap(s.frame);
    }
  } give_back{s, body_size};
  if (body_size > kBatchMaxBodyBytes) {
    return InvalidArgument("batch: body of " + std::to_string(body_size) + " bytes exceeds the limit");
  }
  const size_t names = batch.gateway.size() + batch.stream.size();
  const size_t bound = ZSTD_compressBound(body_size);
  if (s.frame.size() < bound) s.frame.resize(bound);
  size_t z = ZSTD_compressCCtx(cctx_, s.frame.data(), bound, s.body.GetString(), body_size,
                               options_.compression_level);
  if (ZSTD_isError(z)) return IoError(std::string("batch: zstd: ") + ZSTD_getErrorName(z));
  // Exactly the frame's size (typically a tenth of the body): the uplink keeps each encoded batch until its
  // PUBACK, and 32 in flight at zstd's worst case cost 7 MB of heap during a drain instead of 0.6 MB.
  std::string out(kBatchFixedHeaderSize + names + z, '\0');
  std::memcpy(out.data() + kBatchFixedHeaderSize + names, s.frame.data(), z);

  std::memcpy(out.data() + kOffMagic, kBatchMagic, 4);
  out[kOffVersion] = static_cast<char>(kBatchVersion);
  out[kOffFlags] = static_cast<char>(options_.hmac_key.empty() ? 0 : kBatchFlagHmac);
  out[kOffCodec] = static_cast<char>(kBatchCodecZstd);
  out[kOffReserved] = 0;
  PutBe(out, kOffGatewayLen, batch.gateway.size(), 2);
  PutBe(out, kOffStreamLen, batch.stream.size(), 2);
  PutBe(out, kOffFirstSeq, batch.events.front().seq.value, 8);
  PutBe(out, kOffLastSeq, batch.events.back().seq.value, 8);
  PutBe(out, kOffCount, batch.events.size(), 4);
  PutBe(out, kOffBodyBytes, body_size, 4);
  PutBe(out, kOffCompressedBytes, z, 4);
  std::memcpy(out.data() + kBatchFixedHeaderSize, batch.gateway.data(), batch.gateway.size());
  std::memcpy(out.data() + kBatchFixedHeaderSize + batch.gateway.size(), batch.stream.data(), batch.stream.size());
  auto digest = ComputeDigest(out, options_.hmac_key);
  std::memcpy(out.data() + kOffDigest, digest.data(), kDigestSize);
  return out;
}

Result<BatchHeader> ParseBatchHeader(std::string_view in) {
  if (in.size() < 4 || std::memcmp(in.data(), kBatchMagic, 4) != 0) {
    if (in.size() < 4 && std::memcmp(in.data(), kBatchMagic, in.size()) == 0) {
      return Corruption("batch truncated: " + std::to_string(in.size()) + " bytes");
    }
    return Corruption("batch: bad magic (not a FRYB payload)");
  }
  if (in.size() <= kOffVersion) return Corruption("batch truncated: " + std::to_string(in.size()) + " bytes");
  BatchHeader h;
  h.version = static_cast<uint8_t>(in[kOffVersion]);
  if (h.version > kBatchVersion) {
    return InvalidArgument("batch: format version " + std::to_string(h.version) + " is newer than this decoder (" +
                           std::to_string(kBatchVersion) + ")");
  }
  if (h.version == 0) return Corruption("batch: format version 0");
  if (in.size() < kBatchFixedHeaderSize) {
    return Corruption("batch truncated: " + std::to_string(in.size()) + " bytes, header needs " +
                      std::to_string(kBatchFixedHeaderSize));
  }
  h.flags = static_cast<uint8_t>(in[kOffFlags]);
  h.codec = static_cast<uint8_t>(in[kOffCodec]);
  if ((h.flags & ~kBatchFlagHmac) != 0) return InvalidArgument("batch: unknown flags " + std::to_string(h.flags));
  if (h.codec != kBatchCodecZstd) return InvalidArgument("batch: unknown codec " + std::to_string(h.codec));
  if (in[kOffReserved] != 0) return Corruption("batch: reserved byte is not zero");
  size_t glen = GetBe(in, kOffGatewayLen, 2);
  size_t slen = GetBe(in, kOffStreamLen, 2);
  h.first_seq = Seq{GetBe(in, kOffFirstSeq, 8)};
  h.last_seq = Seq{GetBe(in, kOffLastSeq, 8)};
  h.count = static_cast<uint32_t>(GetBe(in, kOffCount, 4));
  h.body_bytes = static_cast<uint32_t>(GetBe(in, kOffBodyBytes, 4));
  h.compressed_bytes = static_cast<uint32_t>(GetBe(in, kOffCompressedBytes, 4));
  std::memcpy(h.digest.data(), in.data() + kOffDigest, kDigestSize);
  const uint64_t total = kBatchFixedHeaderSize + glen + slen + uint64_t{h.compressed_bytes};
  if (in.size() < total) {
    return Corruption("batch truncated: " + std::to_string(in.size()) + " bytes, header declares " +
                      std::to_string(total));
  }
  if (in.size() > total) {
    return Corruption("batch: " + std::to_string(in.size() - total) + " trailing bytes after the body");
  }
  if (h.count == 0) return Corruption("batch: count is 0");
  if (h.first_seq > h.last_seq) return Corruption("batch: first seq is after last seq");
  if (h.body_bytes > kBatchMaxBodyBytes) {
    return Corruption("batch: body of " + std::to_string(h.body_bytes) + " bytes exceeds the limit");
  }
  h.gateway.assign(in.data() + kBatchFixedHeaderSize, glen);
  h.stream.assign(in.data() + kBatchFixedHeaderSize + glen, slen);
  return h;
}

BatchDecoder::BatchDecoder(std::string hmac_key) : hmac_key_(std::move(hmac_key)), dctx_(ZSTD_createDCtx()) {}
BatchDecoder::~BatchDecoder() { ZSTD_freeDCtx(dctx_); }

Result<DecodedBatch> BatchDecoder::Decode(std::string_view in) {
  auto header = ParseBatchHeader(in);
  if (!header) return tl::unexpected(header.error());
  BatchHeader& h = *header;
  if (h.hmac() && hmac_key_.empty()) return InvalidArgument("batch is HMAC-signed; no key was given");
  if (!h.hmac() && !hmac_key_.empty()) return InvalidArgument("batch is not HMAC-signed but a key is required");
  // Check the digest before anything touches the body, so a forged payload never reaches zstd or the parser.
  auto digest = ComputeDigest(in, hmac_key_);
  if (!ConstantTimeEqual(digest.data(), h.digest.data(), kDigestSize)) {
    return Corruption(h.hmac() ? "batch: HMAC mismatch (damaged, or signed with another key)"
                               : "batch: SHA-256 digest mismatch (damaged)");
  }
  std::string_view frame = in.substr(kBatchFixedHeaderSize + h.gateway.size() + h.stream.size());
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return Corruption("batch: body is not a zstd frame");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != h.body_bytes) {
    return Corruption("batch: zstd frame holds " + std::to_string(declared) + " bytes, header says " +
                      std::to_string(h.body_bytes));
  }
  // Decompress into a buffer that grows with what the frame really yields, up to the declared size: a batch
  // anyone can sign with a plain SHA-256 may declare 64 MiB in a few bytes, and must not cost 64 MiB to refuse.
  // One byte of room past the declared size tells "more than declared" from "exactly".
  const size_t limit = size_t{h.body_bytes} + 1;
  std::string body(std::min(limit, std::max<size_t>(64 * 1024, frame.size() * 8)), '\0');
  ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
  ZSTD_inBuffer zin{frame.data(), frame.size(), 0};
  ZSTD_outBuffer zout{body.data(), body.size(), 0};
  for (;;) {
    size_t r = ZSTD_decompressStream(dctx_, &zout, &zin);
    if (ZSTD_isError(r)) return Corruption(std::string("batch: zstd: ") + ZSTD_getErrorName(r));
    if (r == 0) break;  // the frame is complete
    if (zout.pos == zout.size) {
      if (body.size() == limit) break;  // more than declared: refused below
      body.resize(std::min(limit, body.size() * 2));
      zout.dst = body.data();
      zout.size = body.size();
    } else if (zin.pos == zin.size) {
      return Corruption("batch: zstd frame is truncated");
    }
  }
  if (zin.pos != zin.size) return Corruption("batch: bytes after the zstd frame");
  if (zout.pos != h.body_bytes) {
    return Corruption("batch: body is " + (zout.pos == limit ? "more than " + std::to_string(h.body_bytes)
                                                              : std::to_string(zout.pos)) +
                      " bytes, header says " + std::to_string(h.body_bytes));
  }
  body.resize(zout.pos);
  auto events = EventsFromJsonBatch(body);
  if (!events) return tl::unexpected(events.error());
  if (events->size() != h.count) {
    return Corruption("batch: " + std::to_string(events->size()) + " events, header says " + std::to_string(h.count));
  }
  if (events->front().seq != h.first_seq || events->back().seq != h.last_seq) {
    return Corruption("batch: event seqs disagree with the header's first/last seq");
  }
  for (size_t i = 1; i < events->size(); ++i) {
    if ((*events)[i].seq <= (*events)[i - 1].seq) return Corruption("batch: event seqs do not increase");
  }
  DecodedBatch out;
  out.batch.gateway = h.gateway;
  out.batch.stream = h.stream;
  out.batch.events = std::move(*events);
  out.header = std::move(h);
  return out;
}

Result<std::string> EncodeBatch(const Batch& batch, const EncoderOptions& options) {
  return BatchEncoder(options).Encode(batch);
}

Result<DecodedBatch> DecodeBatch(std::string_view bytes, const std::string& hmac_key) {
  return BatchDecoder(hmac_key).Decode(bytes);
}

}  // namespace ferry
