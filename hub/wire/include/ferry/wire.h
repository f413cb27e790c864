// ferry/wire.h: what an uplink puts on the wire. Specified byte by byte in docs/wire.md.
//
// Batched mode ("FRYB" v1): a 72-byte big-endian header, the gateway id and stream name, then a zstd frame
// holding a CloudEvents JSON batch (application/cloudevents-batch+json). A SHA-256 digest, or an HMAC-SHA256
// when a key is configured, covers every byte of the payload except the digest field itself.
//
// Per-event mode: the payload as received; the CloudEvents attributes as MQTT v5 user properties
// (CloudEvents MQTT binding, binary mode) and datacontenttype as the MQTT Content Type property.
//
// Thread-safety: BatchEncoder and BatchDecoder are not thread-safe (each owns a zstd context); use one per
// thread. The free functions are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/clock.h"
#include "ferry/error.h"
#include "ferry/record.h"
#include "ferry/rfc3339.h"
#include "ferry/types.h"

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace ferry {

// One event as it travels upstream. Mirrors the storage record (ferry/record.h RecordView) so an uplink
// copies fields one to one.
struct WireEvent {
  std::string id;
  std::string source;
  std::string type;
  TimeNs time{};                // 0: absent
  std::string subject;          // empty: absent
  std::string datacontenttype;  // empty: absent
  Seq seq;                      // ferryseq
  TimeNs ingest_time{};         // ferryingesttime
  std::vector<std::pair<std::string, std::string>> headers;  // extension attributes (see CeExtensionName)
  std::string payload;          // bytes

  friend bool operator==(const WireEvent& a, const WireEvent& b);
};

// ---- Batched format -----------------------------------------------------------------------------------------

inline constexpr char kBatchMagic[4] = {'F', 'R', 'Y', 'B'};
inline constexpr uint8_t kBatchVersion = 1;
inline constexpr size_t kBatchFixedHeaderSize = 72;
inline constexpr uint8_t kBatchFlagHmac = 0x01;    // digest is HMAC-SHA256 (else plain SHA-256)
inline constexpr uint8_t kBatchCodecZstd = 1;
inline constexpr uint32_t kBatchMaxBodyBytes = 64u << 20;  // decoders refuse larger bodies (zstd bombs)
inline constexpr const char* kBatchContentType = "application/vnd.ferry.batch.v1";
inline constexpr const char* kCloudEventsBatchContentType = "application/cloudevents-batch+json";

struct BatchHeader {
  uint8_t version = kBatchVersion;
  uint8_t flags = 0;
  uint8_t codec = kBatchCodecZstd;
  std::string gateway;
  std::string stream;
  Seq first_seq;
  Seq last_seq;
  uint32_t count = 0;
  uint32_t body_bytes = 0;        // uncompressed JSON
  uint32_t compressed_bytes = 0;  // zstd frame
  std::array<uint8_t, 32> digest{};

  bool hmac() const { return (flags & kBatchFlagHmac) != 0; }
};

struct Batch {
  std::string gateway;
  std::string stream;
  std::vector<WireEvent> events;  // REQUIRES (Encode): non-empty, seq strictly increasing
};

struct DecodedBatch {
  BatchHeader header;
  Batch batch;
};

struct EncoderOptions {
  int compression_level = 3;  // zstd level, 1..19
  std::string hmac_key;       // non-empty: sign with HMAC-SHA256 and set kBatchFlagHmac
};

class BatchEncoder {
 public:
  explicit BatchEncoder(EncoderOptions options = {});
  ~BatchEncoder();
  BatchEncoder(const BatchEncoder&) = delete;
  BatchEncoder& operator=(const BatchEncoder&) = delete;

  // Errors (kInvalidArgument): empty batch, seq not strictly increasing, gateway or stream longer than
  // 65535 bytes, body over kBatchMaxBodyBytes, more than 2^32-1 events; kIoError if zstd fails.
  Result<std::string> Encode(const Batch& batch);

 private:
  struct Scratch;  // the JSON body and zstd's worst-case output, kept from one batch to the next
  EncoderOptions options_;
  ZSTD_CCtx_s* cctx_;
  std::unique_ptr<Scratch> scratch_;
};

class BatchDecoder {
 public:
  // `hmac_key` empty: accept only SHA-256 batches. Non-empty: accept only HMAC batches signed with it (an
  // unsigned batch is refused, so a forger cannot just drop the flag).
  explicit BatchDecoder(std::string hmac_key = {});
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // Errors:
  //   kCorruption       bad magic, truncated or trailing bytes, digest/HMAC mismatch, zstd error, length or
  //                     count mismatch, JSON not a valid CloudEvents batch
  //   kInvalidArgument  a version newer than kBatchVersion, unknown flags or codec, HMAC batch with no key
  //                     or unsigned batch with a key
  Result<DecodedBatch> Decode(std::string_view bytes);

 private:
  std::string hmac_key_;
  ZSTD_DCtx_s* dctx_;
};

// Parses and checks only the fixed header and names (no digest check). Same errors as Decode for those.
Result<BatchHeader> ParseBatchHeader(std::string_view bytes);

// One-shot helpers (allocate a zstd context per call).
Result<std::string> EncodeBatch(const Batch& batch, const EncoderOptions& options = {});
Result<DecodedBatch> DecodeBatch(std::string_view bytes, const std::string& hmac_key = {});

// ---- A stored event as a CloudEvent: the one mapping uplinks and ferryctl share (docs/wire.md) -------------

// "ferry://<gateway>/<stream>": an absolute URI (RFC 3986) naming the stream an event was stored in. Bytes
// outside RFC 3986's unreserved set are percent-encoded (gateway ids and stream names rarely have any).
std::string CloudEventSource(std::string_view gateway, std::string_view stream);
// The CloudEvent of a stored event:
//   id      the producer's id when it gave one, else "<gateway>/<stream>/<seq>";
//   source  CloudEventSource(gateway, stream); the MQTT topic the event arrived on (the stored source) travels
//           as the extension attribute `ferrytopic`, before the event's own headers;
//   type    the stored type, else "ferry.event";  time, subject, datacontenttype, headers, payload as stored.
WireEvent CloudEventOf(std::string_view gateway, std::string_view stream, Seq seq, TimeNs ingest_time, Event event);
// The extension attribute carrying the MQTT topic an event arrived on.
inline constexpr const char* kCeTopicAttribute = "ferrytopic";

// The HMAC key in a key file: the file's bytes with trailing CR and LF removed (so `echo secret > key` and
// `printf secret > key` give the same key). One reading for ferryd, ferry-decode and ferry-receive.
// Errors: kNotFound / kIoError naming the file, kInvalidArgument when the key is empty.
Result<std::string> ReadHmacKeyFile(const std::string& path);

// ---- CloudEvents JSON (structured mode), as in the batch body ----------------------------------------------

// One event as a structured CloudEvents JSON object (one line, no trailing newline).
std::string EventToJson(const WireEvent& event);
// Parses one structured CloudEvents JSON object as produced by EventToJson. Errors: kCorruption.
Result<WireEvent> EventFromJson(std::string_view json);
// A CloudEvents JSON batch (application/cloudevents-batch+json): a JSON array of EventToJson objects.
std::string EventsToJsonBatch(const std::vector<WireEvent>& events);
Result<std::vector<WireEvent>> EventsFromJsonBatch(std::string_view json);

// The extension attribute name a free header travels under: lower-cased, characters outside [a-z0-9]
// removed; "" when nothing is left or the name is a reserved attribute (the header is then not sent).
std::string CeExtensionName(std::string_view header_name);
// True for application/json, text/json and any */*+json type (parameters such as "; charset=" ignored).
bool IsJsonContentType(std::string_view content_type);

// FormatRfc3339, ParseRfc3339: ferry/rfc3339.h.

// ---- Per-event MQTT v5 mapping (CloudEvents MQTT binding, binary content mode) ------------------------------

struct MqttEventProperties {
  std::string content_type;                                         // MQTT Content Type property
  std::vector<std::pair<std::string, std::string>> user_properties; // name, value
};

// specversion, id, source, type, [time], [subject], ferryseq, ferryingesttime, then the extensions.
MqttEventProperties ToMqttProperties(const WireEvent& event);
// The inverse (for the centre and tests). Unknown user properties become headers. Errors: kCorruption for
// a missing id/source/type/specversion or a malformed ferryseq/time.
Result<WireEvent> FromMqttProperties(const MqttEventProperties& props, std::string payload);

}  // namespace ferry
