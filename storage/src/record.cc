// record.cc: the record codec. Layout: RecordHeader | id | source | type | subject | datacontenttype |
// headers (u16 klen, u16 vlen, key, value)* | payload. See docs/storage.md.
#include "ferry/record.h"

#include <cstddef>
#include <cstring>

#include "crc32c.h"

namespace ferry {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "RecordHeader is memcpy'd as little-endian; add byte swaps for a big-endian target");
static_assert(offsetof(RecordHeader, crc) == 4 && offsetof(RecordHeader, body_size) == 8 &&
                  offsetof(RecordHeader, seq) == 16 && offsetof(RecordHeader, ingest_ns) == 24 &&
                  offsetof(RecordHeader, time_ns) == 32 && offsetof(RecordHeader, id_len) == 40 &&
                  offsetof(RecordHeader, header_count) == 50 && offsetof(RecordHeader, reserved) == 52,
              "RecordHeader layout is documented in docs/storage.md");

constexpr size_t kCrcEnd = offsetof(RecordHeader, body_size);  // CRC covers [kCrcEnd, end)

void PutU16(std::string* out, size_t v) {
  const char b[2] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff)};
  out->append(b, 2);
}

uint16_t GetU16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}

Result<RecordHeader> ReadHeader(std::string_view data) {
  if (data.size() < 4) return Corruption("record truncated: " + std::to_string(data.size()) + " bytes");
  RecordHeader h{};
  std::memcpy(&h, data.data(), 4);  // version, flags, header_size first: they decide how to read the rest
  if (h.version > kRecordFormatVersion || h.version == 0) {
    return Corruption("unsupported record format version " + std::to_string(h.version) +
                      " (this build reads version " + std::to_string(kRecordFormatVersion) +
                      "); written by a newer ferry?");
  }
  if (h.flags != 0) return Corruption("record has unknown flags " + std::to_string(h.flags));
  if (h.header_size != sizeof(RecordHeader)) {
    return Corruption("record header size " + std::to_string(h.header_size) + " != " +
                      std::to_string(sizeof(RecordHeader)));
  }
  if (data.size() < sizeof(RecordHeader)) {
    return Corruption("record truncated: " + std::to_string(data.size()) + " bytes, header needs " +
                      std::to_string(sizeof(RecordHeader)));
  }
  std::memcpy(&h, data.data(), sizeof(h));
  if (h.body_size != data.size() - sizeof(RecordHeader)) {
    return Corruption("record size mismatch: header says " + std::to_string(h.body_size) + " body bytes, have " +
                      std::to_string(data.size() - sizeof(RecordHeader)));
  }
  return h;
}

}  // namespace

const char* EvictReasonName(EvictReason reason) noexcept {
  switch (reason) {
    case EvictReason::kRetentionAge: return "retention_age";
    case EvictReason::kRetentionBytes: return "retention_bytes";
    case EvictReason::kCompaction: return "compaction";
    case EvictReason::kBudget: return "budget";
  }
  return "unknown";
}

Event RecordView::ToEvent() const {
  Event e;
  e.id = std::string(id);
  e.source = std::string(source);
  e.type = std::string(type);
  e.time = time;
  e.subject = std::string(subject);
  e.datacontenttype = std::string(datacontenttype);
  for (const auto& [k, v] : headers) e.headers.emplace_back(std::string(k), std::string(v));
  e.payload = std::string(payload);
  return e;
}

Result<size_t> EncodedRecordSize(const Event& e) {
  size_t n = sizeof(RecordHeader);
  for (const std::string* s : {&e.id, &e.source, &e.type, &e.subject, &e.datacontenttype}) {
    if (s->size() > kMaxAttributeSize) return InvalidArgument("event attribute longer than 65535 bytes");
    n += s->size();
  }
  if (e.headers.size() > kMaxAttributeSize) return InvalidArgument("more than 65535 event headers");
  for (const auto& [k, v] : e.headers) {
    if (k.size() > kMaxAttributeSize || v.size() > kMaxAttributeSize) {
      return InvalidArgument("event header '" + k.substr(0, 64) + "' longer than 65535 bytes");
    }
    n += 4 + k.size() + v.size();
  }
  n += e.payload.size();
  if (n > kMaxRecordSize) return InvalidArgument("event of " + std::to_string(n) + " bytes exceeds 64 MiB");
  return n;
}

void EncodeRecord(const Event& e, Seq seq, TimeNs ingest_time, std::string* out) {
  const size_t start = out->size();
  RecordHeader h{};
  h.version = kRecordFormatVersion;
  h.header_size = sizeof(RecordHeader);
  h.payload_size = static_cast<uint32_t>(e.payload.size());
  h.seq = seq.value;
  h.ingest_ns = ingest_time.ns;
  h.time_ns = e.time.ns;
  h.id_len = static_cast<uint16_t>(e.id.size());
  h.source_len = static_cast<uint16_t>(e.source.size());
  h.type_len = static_cast<uint16_t>(e.type.size());
  h.subject_len = static_cast<uint16_t>(e.subject.size());
  h.datacontenttype_len = static_cast<uint16_t>(e.datacontenttype.size());
  h.header_count = static_cast<uint16_t>(e.headers.size());
  out->append(reinterpret_cast<const char*>(&h), sizeof(h));
  out->append(e.id).append(e.source).append(e.type).append(e.subject).append(e.datacontenttype);
  for (const auto& [k, v] : e.headers) {
    PutU16(out, k.size());
    PutU16(out, v.size());
    out->append(k).append(v);
  }
  out->append(e.payload);
  char* base = out->data() + start;
  const uint32_t body = static_cast<uint32_t>(out->size() - start - sizeof(RecordHeader));
  std::memcpy(base + offsetof(RecordHeader, body_size), &body, sizeof(body));
  const uint32_t crc = crc32c::Mask(crc32c::Value(base + kCrcEnd, out->size() - start - kCrcEnd));
  std::memcpy(base + offsetof(RecordHeader, crc), &crc, sizeof(crc));
}

Result<RecordView> DecodeRecord(std::string_view data, Seq seq) {
  auto h = ReadHeader(data);
  if (!h) return tl::unexpected(h.error());
  const uint32_t actual = crc32c::Value(data.data() + kCrcEnd, data.size() - kCrcEnd);
  if (crc32c::Unmask(h->crc) != actual) {
    return Corruption("record seq " + std::to_string(seq.value) + ": checksum mismatch");
  }
  if (h->seq != seq.value) {
    return Corruption("record stored under seq " + std::to_string(seq.value) + " says seq " +
                      std::to_string(h->seq));
  }
  RecordView r;
  r.seq = seq;
  r.ingest_time = TimeNs{h->ingest_ns};
  r.time = TimeNs{h->time_ns};
  const char* p = data.data() + sizeof(RecordHeader);
  const char* end = data.data() + data.size();
  // The CRC matched, so a size disagreement below means a bug in the writer, not bit rot; still checked.
  auto take = [&](size_t n, std::string_view* dst) {
    if (static_cast<size_t>(end - p) < n) return false;
    *dst = std::string_view(p, n);
    p += n;
    return true;
  };
  bool ok = take(h->id_len, &r.id) && take(h->source_len, &r.source) && take(h->type_len, &r.type) &&
            take(h->subject_len, &r.subject) && take(h->datacontenttype_len, &r.datacontenttype);
  r.headers.reserve(h->header_count);
  for (uint16_t i = 0; ok && i < h->header_count; ++i) {
    if (end - p < 4) {
      ok = false;
      break;
    }
    const uint16_t klen = GetU16(p), vlen = GetU16(p + 2);
    p += 4;
    std::string_view k, v;
    ok = take(klen, &k) && take(vlen, &v);
    if (ok) r.headers.emplace_back(k, v);
  }
  if (!ok || static_cast<size_t>(end - p) != h->payload_size) {
    return Corruption("record seq " + std::to_string(seq.value) + ": field sizes disagree with record size");
  }
  r.payload = std::string_view(p, h->payload_size);
  return r;
}

Result<RecordSummary> PeekRecord(std::string_view data) {
  auto h = ReadHeader(data);
  if (!h) return tl::unexpected(h.error());
  const size_t subject_off = sizeof(RecordHeader) + size_t{h->id_len} + h->source_len + h->type_len;
  if (subject_off + h->subject_len > data.size()) return Corruption("record subject out of bounds");
  return RecordSummary{TimeNs{h->ingest_ns}, data.substr(subject_off, h->subject_len), h->payload_size};
}

}  // namespace ferry
