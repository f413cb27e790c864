// mqtt_packet_fuzz.cc: libFuzzer target for ferry_mqtt. See README.md next to it for building and running.
//
// The input's first byte picks the frame reader's packet-size limit and how the rest is cut into
// Append()/Commit() chunks, so splitting bugs are reachable. Every frame goes through every decoder for both
// protocol versions; whatever decodes is encoded again, framed again and decoded again, and must come back
// equal (a mismatch aborts: the codec would be answering or forwarding something else than it was sent).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ferry/mqtt/packet.h"

namespace {

using namespace ferry::mqtt;

[[noreturn]] void Mismatch(const char* what) {
  std::fprintf(stderr, "round-trip mismatch: %s\n", what);
  std::abort();
}

#define CHECK_SAME(a, b, what) \
  do {                         \
    if (!((a) == (b))) Mismatch(what); \
  } while (0)

void RoundTripConnect(const Connect& c) {
  std::string wire;
  if (!EncodeConnect(wire, c)) return;
  FrameReader r(static_cast<uint32_t>(wire.size()) + 8);
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  if (!f || !*f) Mismatch("CONNECT does not frame");
  auto d = DecodeConnect(**f);
  if (!d) {
    std::fprintf(stderr, "%s\n", d.error().message.c_str());
    Mismatch("CONNECT does not decode");
  }
  CHECK_SAME(d->version, c.version, "CONNECT version");
  CHECK_SAME(d->client_id, c.client_id, "CONNECT client id");
  CHECK_SAME(d->clean_start, c.clean_start, "CONNECT clean start");
  CHECK_SAME(d->keep_alive, c.keep_alive, "CONNECT keep alive");
  CHECK_SAME(d->username, c.username, "CONNECT username");
  CHECK_SAME(d->password, c.password, "CONNECT password");
  CHECK_SAME(d->will_flag, c.will_flag, "CONNECT will flag");
  CHECK_SAME(d->will_qos, c.will_qos, "CONNECT will qos");
  CHECK_SAME(d->will_retain, c.will_retain, "CONNECT will retain");
  CHECK_SAME(d->will_topic, c.will_topic, "CONNECT will topic");
  CHECK_SAME(d->will_payload, c.will_payload, "CONNECT will payload");
  CHECK_SAME(d->will_delay_interval, c.will_delay_interval, "CONNECT will delay");
  CHECK_SAME(d->session_expiry, c.session_expiry, "CONNECT session expiry");
  CHECK_SAME(d->receive_maximum, c.receive_maximum, "CONNECT receive maximum");
  CHECK_SAME(d->maximum_packet_size, c.maximum_packet_size, "CONNECT maximum packet size");
  CHECK_SAME(d->topic_alias_maximum, c.topic_alias_maximum, "CONNECT topic alias maximum");
  CHECK_SAME(d->request_problem_information, c.request_problem_information, "CONNECT request problem info");
  CHECK_SAME(d->request_response_information, c.request_response_information, "CONNECT request response info");
  CHECK_SAME(d->auth_method, c.auth_method, "CONNECT auth method");
  CHECK_SAME(d->auth_data, c.auth_data, "CONNECT auth data");
  CHECK_SAME(d->user_properties, c.user_properties, "CONNECT user properties");
}

void RoundTripPublish(const Publish& p, Version v) {
  std::string wire;
  if (!EncodePublish(wire, v, p)) return;
  FrameReader r(static_cast<uint32_t>(wire.size()) + 8);
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  if (!f || !*f) Mismatch("PUBLISH does not frame");
  auto d = DecodePublish(**f, v);
  if (!d) {
    std::fprintf(stderr, "%s\n", d.error().message.c_str());
    Mismatch("PUBLISH does not decode");
  }
  CHECK_SAME(d->qos, p.qos, "PUBLISH qos");
  CHECK_SAME(d->dup, p.dup, "PUBLISH dup");
  CHECK_SAME(d->retain, p.retain, "PUBLISH retain");
  CHECK_SAME(d->topic, p.topic, "PUBLISH topic");
  CHECK_SAME(d->packet_id, p.packet_id, "PUBLISH packet id");
  CHECK_SAME(d->payload, p.payload, "PUBLISH payload");
  CHECK_SAME(d->payload_format_indicator, p.payload_format_indicator, "PUBLISH payload format");
  CHECK_SAME(d->message_expiry, p.message_expiry, "PUBLISH message expiry");
  CHECK_SAME(d->topic_alias, p.topic_alias, "PUBLISH topic alias");
  CHECK_SAME(d->content_type, p.content_type, "PUBLISH content type");
  CHECK_SAME(d->response_topic, p.response_topic, "PUBLISH response topic");
  CHECK_SAME(d->correlation_data, p.correlation_data, "PUBLISH correlation data");
  CHECK_SAME(d->user_properties, p.user_properties, "PUBLISH user properties");
}

void RoundTripSubscribe(const Subscribe& s, Version v) {
  std::string wire;
  if (!EncodeSubscribe(wire, v, s)) return;
  FrameReader r(static_cast<uint32_t>(wire.size()) + 8);
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  if (!f || !*f) Mismatch("SUBSCRIBE does not frame");
  auto d = DecodeSubscribe(**f, v);
  if (!d) Mismatch("SUBSCRIBE does not decode");
  CHECK_SAME(d->packet_id, s.packet_id, "SUBSCRIBE packet id");
  CHECK_SAME(d->subscription_identifier, s.subscription_identifier, "SUBSCRIBE subscription id");
  CHECK_SAME(d->filters.size(), s.filters.size(), "SUBSCRIBE filters");
  for (size_t i = 0; i < s.filters.size(); ++i) {
    CHECK_SAME(d->filters[i].filter, s.filters[i].filter, "SUBSCRIBE filter");
    CHECK_SAME(d->filters[i].max_qos, s.filters[i].max_qos, "SUBSCRIBE qos");
    CHECK_SAME(d->filters[i].no_local, s.filters[i].no_local, "SUBSCRIBE no local");
    CHECK_SAME(d->filters[i].retain_handling, s.filters[i].retain_handling, "SUBSCRIBE retain handling");
  }
  // The server's answer must frame and decode as a SUBACK with one code per filter.
  std::string ack;
  EncodeSuback(ack, v, s.packet_id, s.filter_count, ReasonCode::kNotAuthorized);
  FrameReader ar(static_cast<uint32_t>(ack.size()) + 8);
  ar.Append(ack.data(), ack.size());
  auto af = ar.Next();
  if (!af || !*af) Mismatch("SUBACK does not frame");
  auto a = DecodeSuback(**af, v);
  if (!a || a->reason_codes.size() != s.filter_count) Mismatch("SUBACK does not decode");
}

void RoundTripConnack(const Connack& c, Version v) {
  std::string wire;
  EncodeConnack(wire, v, c.session_present, c.code, c.props);
  FrameReader r(static_cast<uint32_t>(wire.size()) + 8);
  r.Append(wire.data(), wire.size());
  auto f = r.Next();
  if (!f || !*f) Mismatch("CONNACK does not frame");
  auto d = DecodeConnack(**f, v);
  if (!d) Mismatch("CONNACK does not decode");
  CHECK_SAME(d->code, c.code, "CONNACK code");
  CHECK_SAME(d->session_present, c.session_present && c.code == 0, "CONNACK session present");
  if (v == Version::kV5) {
    CHECK_SAME(d->props.receive_maximum, c.props.receive_maximum, "CONNACK receive maximum");
    CHECK_SAME(d->props.maximum_qos, c.props.maximum_qos, "CONNACK maximum qos");
    CHECK_SAME(d->props.retain_available, c.props.retain_available, "CONNACK retain available");
    CHECK_SAME(d->props.maximum_packet_size, c.props.maximum_packet_size, "CONNACK maximum packet size");
    CHECK_SAME(d->props.topic_alias_maximum, c.props.topic_alias_maximum, "CONNACK topic alias maximum");
    CHECK_SAME(d->props.session_expiry, c.props.session_expiry, "CONNACK session expiry");
    CHECK_SAME(d->props.server_keep_alive, c.props.server_keep_alive, "CONNACK server keep alive");
    CHECK_SAME(d->props.assigned_client_identifier, c.props.assigned_client_identifier, "CONNACK assigned id");
    CHECK_SAME(d->props.reason_string, c.props.reason_string, "CONNACK reason string");
  }
}

void DecodeEverything(const Frame& f) {
  if (auto c = DecodeConnect(f)) {
    RoundTripConnect(*c);
  } else if (c.error().version && c.error().code == ReasonCode::kUnsupportedProtocolVersion) {
    Mismatch("CONNECT: unsupported version reported with a version");
  }
  for (Version v : {Version::kV311, Version::kV5}) {
    if (auto p = DecodePublish(f, v)) {
      RoundTripPublish(*p, v);
      std::string ack;
      EncodePuback(ack, v, p->packet_id, ReasonCode::kQuotaExceeded);
    }
    if (auto a = DecodePuback(f, v)) {
      if (a->type == PacketType::kPuback) {
        std::string wire;
        EncodePuback(wire, v, a->packet_id, a->reason);
      }
    }
    if (auto s = DecodeSubscribe(f, v)) RoundTripSubscribe(*s, v);
    if (auto u = DecodeUnsubscribe(f, v)) {
      std::string wire;
      EncodeUnsubscribe(wire, v, *u);
      EncodeUnsuback(wire, v, u->packet_id, u->filter_count, ReasonCode::kNotAuthorized);
    }
    if (auto d = DecodeDisconnect(f, v)) {
      std::string wire;
      EncodeClientDisconnect(wire, v, d->reason, d->session_expiry);
      EncodeDisconnect(wire, v, d->reason, d->reason_string);
    }
    if (auto a = DecodeAuth(f, v)) (void)a;
    if (auto c = DecodeConnack(f, v)) RoundTripConnack(*c, v);
    if (auto s = DecodeSuback(f, v)) (void)s;
  }
  (void)DecodePingreq(f);
  (void)DecodePingresp(f);
}

const uint32_t kLimits[] = {2, 16, 128, 1024, 65536, 1u << 20, 268435460u, 300};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t config = data[0];
  const uint32_t limit = kLimits[config & 0x07];
  const size_t chunk = (config >> 3) == 0 ? size : (config >> 3);  // 0: all at once, else 1..31 bytes
  const bool zero_copy = (config & 0x80) != 0;
  FrameReader reader(limit);
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  // Bounded: each round consumes at least one input byte, and each Next() at least one buffered byte.
  while (true) {
    if (left > 0) {
      const size_t n = left < chunk ? left : chunk;
      if (zero_copy) {
        auto [dst, room] = reader.WritableSpan(n);
        if (room < n) Mismatch("WritableSpan too small");
        std::memcpy(dst, p, n);
        reader.Commit(n);
      } else {
        reader.Append(p, n);
      }
      p += n;
      left -= n;
    }
    while (true) {
      auto next = reader.Next();
      if (!next) return 0;  // a framing error ends the connection
      if (!*next) break;
      const Frame& f = **next;
      if (f.wire_size > limit || f.body.size() >= f.wire_size) Mismatch("frame larger than its limit");
      DecodeEverything(f);
    }
    if (left == 0) break;
  }
  return 0;
}
