// mqtt_test_client.h: a blocking MQTT client made of the codec's client-side encoders, for tests that need to
// see every packet (a PUBACK's timing, its reason code, a DISCONNECT) or to send what no library would.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "ferry/mqtt/packet.h"

namespace ferry::test {

class MqttTestClient {
 public:
  explicit MqttTestClient(mqtt::Version v = mqtt::Version::kV5) : version_(v), reader_(1 << 20) {}
  ~MqttTestClient() { Close(); }

  bool Open(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  // CONNECT, then the CONNACK (nullopt: none came, or the connection closed).
  std::optional<mqtt::Connack> Connect(const std::string& client_id, uint16_t keep_alive = 60,
                                       std::optional<std::string> user = std::nullopt,
                                       std::optional<std::string> password = std::nullopt) {
    mqtt::Connect c;
    c.version = version_;
    c.client_id = client_id;
    c.keep_alive = keep_alive;
    if (user) c.username = *user;
    if (password) c.password = *password;
    std::string out;
    mqtt::EncodeConnect(out, c);
    if (!Send(out)) return std::nullopt;
    auto f = Read(std::chrono::seconds(10));
    if (!f || f->type != mqtt::PacketType::kConnack) return std::nullopt;
    auto ack = mqtt::DecodeConnack(*f, version_);
    if (!ack) return std::nullopt;
    connack_props_ = ack->props;
    return *ack;
  }
  bool Publish(const std::string& topic, const std::string& payload, uint8_t qos, uint16_t packet_id,
               bool retain = false) {
    mqtt::Publish p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = packet_id;
    p.retain = retain;
    std::string out;
    return mqtt::EncodePublish(out, version_, p) && Send(out);
  }
  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += static_cast<size_t>(w);
    }
    return true;
  }
  // The next packet within `timeout`; nullopt on timeout or when the server closed the connection (closed()).
  // The Frame's views last until the next Read.
  std::optional<mqtt::Frame> Read(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto next = reader_.Next();
      if (!next) return std::nullopt;
      if (*next) return **next;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      auto [buf, cap] = reader_.WritableSpan(4096);
      ssize_t r = ::recv(fd_, buf, cap, 0);
      if (r <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      reader_.Commit(static_cast<size_t>(r));
    }
  }
  // The next PUBACK (packet id and reason), skipping nothing else: another packet type is a failure.
  std::optional<mqtt::PubAck> ReadPuback(std::chrono::milliseconds timeout) {
    auto f = Read(timeout);
    if (!f || f->type != mqtt::PacketType::kPuback) return std::nullopt;
    auto a = mqtt::DecodePuback(*f, version_);
    if (!a) return std::nullopt;
    return *a;
  }
  // True once the server has closed the connection (waits up to `timeout` for it).
  bool WaitClosed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      auto f = Read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (f && f->type == mqtt::PacketType::kDisconnect) {
        auto d = mqtt::DecodeDisconnect(*f, version_);
        if (d) disconnect_reason_ = d->reason;
      }
    }
    return closed_;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool closed() const { return closed_; }
  std::optional<mqtt::ReasonCode> disconnect_reason() const { return disconnect_reason_; }
  const mqtt::ConnackProperties& connack_props() const { return connack_props_; }
  mqtt::Version version() const { return version_; }

 private:
  mqtt::Version version_;
  int fd_ = -1;
  mqtt::FrameReader reader_;
  bool closed_ = false;
  std::optional<mqtt::ReasonCode> disconnect_reason_;
  mqtt::ConnackProperties connack_props_;
};

}  // namespace ferry::test
