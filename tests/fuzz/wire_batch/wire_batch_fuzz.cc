// wire_batch_fuzz.cc: libFuzzer target for the FRYB v1 batch decoder (BatchDecoder, ParseBatchHeader in
// hub/wire), what the centre runs on every batched message. See ../README.md.
//
// Input: one mode byte, then bytes.
//   bit 0  the decoder has an HMAC key (else it accepts only SHA-256 batches)
//   bit 1  raw mode: sign the bytes (fryb_sign.h) before decoding, so mutations get past the digest
//   bit 2  build mode: the bytes are count u8 | first_seq u8 | seq span u8 | gateway_len u8 | gateway
//          | stream_len u8 | stream | JSON body; the harness compresses the body, writes the header from
//          docs/wire.md and signs it, so the fuzzer works on the CloudEvents JSON behind the envelope
//   bit 3  build mode: leave the content size out of the zstd frame header
//   bits 4-5  build mode: header body_bytes = the body's size + 0, +1, -1, or 1 MiB
// Neither bit 1 nor bit 2: the bytes are decoded as they are (the digest check itself is fuzzed).
//
// Whatever decodes is checked against its header and must survive re-encoding: encode(decode(x)) decodes,
// and from then on encoding is a fixed point (the first pass may normalise header names, JSON whitespace).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <zstd.h>

#include "../fryb_sign.h"
#include "../fuzz_bytes.h"
#include "ferry/wire.h"

namespace {

using namespace ferry;
using fuzz::Fail;

const std::string kKey = "ferry-fuzz-key";

std::string Build(fuzz::FuzzBytes& in, uint8_t mode) {
  const uint8_t count = in.U8();
  const uint8_t first = in.U8();
  const uint8_t span = in.U8();
  std::string_view gateway = in.Take(in.U8());
  std::string_view stream = in.Take(in.U8());
  std::string_view body = in.Rest();

  static ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, (mode & 0x08) ? 0 : 1);
  std::string frame(ZSTD_compressBound(body.size()), '\0');
  const size_t z = ZSTD_compress2(cctx, frame.data(), frame.size(), body.data(), body.size());
  if (ZSTD_isError(z)) Fail("zstd: %s", ZSTD_getErrorName(z));
  frame.resize(z);

  static const int64_t kSkew[] = {0, 1, -1, 1 << 20};
  const int64_t body_bytes = static_cast<int64_t>(body.size()) + kSkew[(mode >> 4) & 3];
  std::string out("FRYB", 4);
  out.push_back(1);                           // version
  out.push_back((mode & 0x01) ? 0x01 : 0x00);  // flags: HMAC
  out.push_back(1);                           // codec: zstd
  out.push_back(0);                           // reserved
  fuzz::PutBe(out, gateway.size(), 2);
  fuzz::PutBe(out, stream.size(), 2);
  fuzz::PutBe(out, first, 8);
  fuzz::PutBe(out, uint64_t{first} + span, 8);
  fuzz::PutBe(out, count, 4);
  fuzz::PutBe(out, static_cast<uint32_t>(body_bytes < 0 ? 0 : body_bytes), 4);
  fuzz::PutBe(out, frame.size(), 4);
  out.append(32, '\0');  // digest, written by SignFryb
  out.append(gateway).append(stream).append(frame);
  return out;
}

void CheckAgainstHeader(const DecodedBatch& d) {
  const auto& ev = d.batch.events;
  if (ev.empty() || ev.size() != d.header.count) Fail("decoded %zu events, header says %u", ev.size(), d.header.count);
  if (ev.front().seq != d.header.first_seq || ev.back().seq != d.header.last_seq) Fail("seqs disagree with header");
  for (size_t i = 1; i < ev.size(); ++i)
    if (ev[i].seq <= ev[i - 1].seq) Fail("decoded seqs do not increase");
  if (d.batch.gateway != d.header.gateway || d.batch.stream != d.header.stream) Fail("names disagree with header");
}

// One encoder and decoder per key policy, reused across inputs as an uplink and the centre reuse theirs.
struct Codec {
  explicit Codec(const std::string& key) : encoder(EncoderOptions{1, key}), decoder(key) {}
  BatchEncoder encoder;
  BatchDecoder decoder;
};

Codec& CodecFor(bool hmac) {
  static Codec sha(""), signed_(kKey);
  return hmac ? signed_ : sha;
}

DecodedBatch Reencode(const DecodedBatch& d, Codec& codec, const char* pass) {
  auto bytes = codec.encoder.Encode(d.batch);
  if (!bytes) Fail("%s: a decoded batch does not encode: %s", pass, bytes.error().ToString().c_str());
  auto back = codec.decoder.Decode(*bytes);
  if (!back) Fail("%s: an encoded batch does not decode: %s", pass, back.error().ToString().c_str());
  CheckAgainstHeader(*back);
  if (back->batch.gateway != d.batch.gateway || back->batch.stream != d.batch.stream ||
      back->batch.events.size() != d.batch.events.size()) {
    Fail("%s: batch changed shape through encode/decode", pass);
  }
  for (size_t i = 0; i < d.batch.events.size(); ++i)
    if (back->batch.events[i].seq != d.batch.events[i].seq) Fail("%s: seq changed", pass);
  return std::move(*back);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzBytes in(data, size);
  const uint8_t mode = in.U8();
  const bool hmac = (mode & 0x01) != 0;
  const std::string key = hmac ? kKey : std::string();
  Codec& codec = CodecFor(hmac);
  std::string bytes;
  if (mode & 0x04) {
    bytes = Build(in, mode);
    fuzz::SignFryb(bytes, key);
  } else {
    bytes = std::string(in.Rest());
    if (mode & 0x02) fuzz::SignFryb(bytes, key);
  }

  auto header = ParseBatchHeader(bytes);
  auto d = codec.decoder.Decode(bytes);
  if (!d) {
    if (d.error().code != ErrorCode::kCorruption && d.error().code != ErrorCode::kInvalidArgument)
      Fail("unexpected error code: %s", d.error().ToString().c_str());
    return 0;
  }
  if (!header) Fail("Decode accepted what ParseBatchHeader refuses: %s", header.error().ToString().c_str());
  if (header->count != d->header.count || header->gateway != d->header.gateway) Fail("two header parsers differ");
  CheckAgainstHeader(*d);

  DecodedBatch once = Reencode(*d, codec, "first pass");
  DecodedBatch twice = Reencode(once, codec, "second pass");
  if (!(twice.batch.events == once.batch.events)) Fail("re-encoding is not a fixed point");
  return 0;
}
