// properties.cc: the table of MQTT 5.0 properties (5.0 table 2-4) and the one loop that decodes a list.
#include "properties.h"

#include <string>

#include "byte_writer.h"

namespace ferry::mqtt::internal {
namespace {

enum class PropertyType : uint8_t { kNone, kByte, kU16, kU32, kVbi, kUtf8, kBinary, kUtf8Pair };

constexpr uint16_t Bit(PropertyContext c) { return static_cast<uint16_t>(1U << static_cast<unsigned>(c)); }

constexpr uint16_t kConnect = Bit(PropertyContext::kConnect);
constexpr uint16_t kWill = Bit(PropertyContext::kWill);
constexpr uint16_t kConnack = Bit(PropertyContext::kConnack);
constexpr uint16_t kPublish = Bit(PropertyContext::kPublish);
constexpr uint16_t kPubackLike = Bit(PropertyContext::kPubackLike);
constexpr uint16_t kSubscribe = Bit(PropertyContext::kSubscribe);
constexpr uint16_t kSuback = Bit(PropertyContext::kSuback);
constexpr uint16_t kUnsubscribe = Bit(PropertyContext::kUnsubscribe);
constexpr uint16_t kUnsuback = Bit(PropertyContext::kUnsuback);
constexpr uint16_t kDisconnect = Bit(PropertyContext::kDisconnect);
constexpr uint16_t kAuth = Bit(PropertyContext::kAuth);
constexpr uint16_t kEverywhere = kConnect | kWill | kConnack | kPublish | kPubackLike | kSubscribe | kSuback |
                                 kUnsubscribe | kUnsuback | kDisconnect | kAuth;

struct PropertySpec {
  PropertyType type = PropertyType::kNone;
  uint16_t allowed_in = 0;  // PropertyContext bits
  const char* name = "";
};

struct PropertyTable {
  PropertySpec spec[kMaxPropertyId + 1];
};

constexpr PropertyTable MakeTable() {
  PropertyTable t{};
  auto set = [&t](PropertyId id, PropertyType type, uint16_t allowed, const char* name) {
    t.spec[id] = PropertySpec{type, allowed, name};
  };
  set(kPayloadFormatIndicator, PropertyType::kByte, kPublish | kWill, "Payload Format Indicator");
  set(kMessageExpiryInterval, PropertyType::kU32, kPublish | kWill, "Message Expiry Interval");
  set(kContentType, PropertyType::kUtf8, kPublish | kWill, "Content Type");
  set(kResponseTopic, PropertyType::kUtf8, kPublish | kWill, "Response Topic");
  set(kCorrelationData, PropertyType::kBinary, kPublish | kWill, "Correlation Data");
  set(kSubscriptionIdentifier, PropertyType::kVbi, kPublish | kSubscribe, "Subscription Identifier");
  set(kSessionExpiryInterval, PropertyType::kU32, kConnect | kConnack | kDisconnect, "Session Expiry Interval");
  set(kAssignedClientIdentifier, PropertyType::kUtf8, kConnack, "Assigned Client Identifier");
  set(kServerKeepAlive, PropertyType::kU16, kConnack, "Server Keep Alive");
  set(kAuthenticationMethod, PropertyType::kUtf8, kConnect | kConnack | kAuth, "Authentication Method");
  set(kAuthenticationData, PropertyType::kBinary, kConnect | kConnack | kAuth, "Authentication Data");
  set(kRequestProblemInformation, PropertyType::kByte, kConnect, "Request Problem Information");
  set(kWillDelayInterval, PropertyType::kU32, kWill, "Will Delay Interval");
  set(kRequestResponseInformation, PropertyType::kByte, kConnect, "Request Response Information");
  set(kResponseInformation, PropertyType::kUtf8, kConnack, "Response Information");
  set(kServerReference, PropertyType::kUtf8, kConnack | kDisconnect, "Server Reference");
  set(kReasonString, PropertyType::kUtf8,
      kConnack | kPubackLike | kSuback | kUnsuback | kDisconnect | kAuth, "Reason String");
  set(kReceiveMaximum, PropertyType::kU16, kConnect | kConnack, "Receive Maximum");
  set(kTopicAliasMaximum, PropertyType::kU16, kConnect | kConnack, "Topic Alias Maximum");
  set(kTopicAlias, PropertyType::kU16, kPublish, "Topic Alias");
  set(kMaximumQos, PropertyType::kByte, kConnack, "Maximum QoS");
  set(kRetainAvailable, PropertyType::kByte, kConnack, "Retain Available");
  set(kUserProperty, PropertyType::kUtf8Pair, kEverywhere, "User Property");
  set(kMaximumPacketSize, PropertyType::kU32, kConnect | kConnack, "Maximum Packet Size");
  set(kWildcardSubscriptionAvailable, PropertyType::kByte, kConnack, "Wildcard Subscription Available");
  set(kSubscriptionIdentifierAvailable, PropertyType::kByte, kConnack, "Subscription Identifier Available");
  set(kSharedSubscriptionAvailable, PropertyType::kByte, kConnack, "Shared Subscription Available");
  return t;
}

constexpr PropertyTable kTable = MakeTable();

std::string Where(const char* what, const PropertySpec& spec) { return std::string(what) + " " + spec.name; }

// Value rules the spec states property by property, whatever packet carries them.
DecodeStatus CheckValue(const char* what, PropertyId id, const PropertySpec& spec, uint32_t v) {
  switch (id) {
    case kPayloadFormatIndicator:
    case kRequestProblemInformation:
    case kRequestResponseInformation:
    case kMaximumQos:
    case kRetainAvailable:
    case kWildcardSubscriptionAvailable:
    case kSubscriptionIdentifierAvailable:
    case kSharedSubscriptionAvailable:
      if (v > 1) return Fail(ReasonCode::kProtocolError, Where(what, spec) + ": value " + std::to_string(v) + " is not 0 or 1");
      return {};
    case kReceiveMaximum:
    case kMaximumPacketSize:
    case kSubscriptionIdentifier:
      if (v == 0) return Fail(ReasonCode::kProtocolError, Where(what, spec) + ": value 0");
      return {};
    case kTopicAlias:
      if (v == 0) return Fail(ReasonCode::kTopicAliasInvalid, Where(what, spec) + ": value 0");
      return {};
    default:
      return {};
  }
}

}  // namespace

DecodeStatus DecodeProperties(ByteReader& r, PropertyContext ctx, const char* what, PropertyValues* out,
                              UserProperties* user) {
  *out = PropertyValues{};
  uint32_t length = 0;
  switch (r.ReadVbi(&length)) {
    case VbiStatus::kOk: break;
    case VbiStatus::kTruncated: return Malformed(std::string(what) + " Property Length: truncated");
    case VbiStatus::kMalformed: return Malformed(std::string(what) + " Property Length: bad Variable Byte Integer");
  }
  std::string_view list;
  if (!r.ReadBytes(length, &list)) return Malformed(std::string(what) + " Property Length: past the end of the packet");

  ByteReader pr(list);
  size_t n_user = 0;
  while (!pr.empty()) {  // every iteration consumes at least the identifier byte
    uint32_t raw_id = 0;
    if (pr.ReadVbi(&raw_id) != VbiStatus::kOk) return Malformed(std::string(what) + ": bad property identifier");
    const uint16_t ctx_bit = Bit(ctx);
    if (raw_id > kMaxPropertyId || kTable.spec[raw_id].type == PropertyType::kNone ||
        (kTable.spec[raw_id].allowed_in & ctx_bit) == 0) {
      // 5.0 2.2.2.2: an identifier not valid for the packet type makes it a Malformed Packet.
      return Malformed(std::string(what) + ": property " + Hex(raw_id) + " not allowed here");
    }
    const auto id = static_cast<PropertyId>(raw_id);
    const PropertySpec& spec = kTable.spec[id];
    // Only User Property may repeat; Subscription Identifier may in a server's PUBLISH, never in what a
    // client sends, which is all this codec decodes with PropertyContext::kPublish.
    if (id != kUserProperty && out->Has(id)) {
      return Fail(ReasonCode::kProtocolError, Where(what, spec) + ": given more than once");
    }
    out->present |= uint64_t{1} << id;

    uint32_t v = 0;
    bool ok = true;
    switch (spec.type) {
      case PropertyType::kByte: {
        uint8_t b = 0;
        ok = pr.ReadU8(&b);
        v = b;
        break;
      }
      case PropertyType::kU16: {
        uint16_t w = 0;
        ok = pr.ReadU16(&w);
        v = w;
        break;
      }
      case PropertyType::kU32: ok = pr.ReadU32(&v); break;
      case PropertyType::kVbi: {
        VbiStatus s = pr.ReadVbi(&v);
        if (s == VbiStatus::kMalformed) return Malformed(Where(what, spec) + ": bad Variable Byte Integer");
        ok = s == VbiStatus::kOk;
        break;
      }
      case PropertyType::kUtf8:
        ok = pr.ReadPrefixed(&out->bytes[id]);
        if (ok && !IsWellFormedUtf8(out->bytes[id], false)) return Malformed(Where(what, spec) + ": invalid UTF-8");
        break;
      case PropertyType::kBinary: ok = pr.ReadPrefixed(&out->bytes[id]); break;
      case PropertyType::kUtf8Pair: {
        std::string_view key, value;
        ok = pr.ReadPrefixed(&key) && pr.ReadPrefixed(&value);
        if (!ok) break;
        if (!IsWellFormedUtf8(key, false) || !IsWellFormedUtf8(value, false)) {
          return Malformed(Where(what, spec) + ": invalid UTF-8");
        }
        if (++n_user > kMaxUserProperties) {
          return Fail(ReasonCode::kImplementationSpecificError,
                      Where(what, spec) + ": more than " + std::to_string(kMaxUserProperties));
        }
        if (user != nullptr) user->emplace_back(key, value);
        break;
      }
      case PropertyType::kNone: break;  // excluded above
    }
    if (!ok) return Malformed(Where(what, spec) + ": truncated");
    out->number[id] = v;
    if (auto s = CheckValue(what, id, spec, v); !s) return s;
  }
  return {};
}

void PutByteProperty(std::string& out, PropertyId id, uint8_t v) {
  PutU8(out, id);
  PutU8(out, v);
}
void PutU16Property(std::string& out, PropertyId id, uint16_t v) {
  PutU8(out, id);
  PutU16(out, v);
}
void PutU32Property(std::string& out, PropertyId id, uint32_t v) {
  PutU8(out, id);
  PutU32(out, v);
}
void PutStringProperty(std::string& out, PropertyId id, std::string_view v) {
  PutU8(out, id);
  PutPrefixed(out, v);
}
void PutUserProperties(std::string& out, const UserProperties& user) {
  for (const auto& [key, value] : user) {
    PutU8(out, kUserProperty);
    PutPrefixed(out, key);
    PutPrefixed(out, value);
  }
}

}  // namespace ferry::mqtt::internal
