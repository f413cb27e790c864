// mqtt_blast: a lean MQTT 5 QoS 1 publisher, to measure what ferryd's ingest listener takes when the load
// generator costs little. ferry-sim (Paho C underneath) spends ~100 us of CPU per event itself: on 2 cores it
// bounds the listener's figure before ferryd does. One thread, raw sockets, packets encoded by hand; each
// connection keeps min(--window, the CONNACK's Receive Maximum) PUBLISHes unacknowledged.
//
//   mqtt_blast --port 1883 --count 100000 --connections 16 --window 512
//   mqtt_blast --port 1883 --count 3000 --rate 2000 --id-log ids.txt --progress   # as bench/compare drives it
//
// Prints one line: events, seconds, events/s, its own CPU per event, PUBACKs refused (reason >= 0x80), and
// produced/acked/unacked in ferry-sim's words (ferry_compare reads either). --rate paces the PUBLISHes (events/s
// over all connections; 0: as fast as the windows allow), --duration stops producing after that many seconds,
// --id-log writes each id as it is published, --progress prints `t= produced= acked=` to stderr every second.
// Payloads are 200-byte JSON objects with a unique "id" (blast-RUN-CONN-SEQ), topic telemetry/dev-CONN/engine.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void PutVarint(std::string& out, uint32_t v) {
  do {
    uint8_t b = v % 128;
    v /= 128;
    if (v > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v > 0);
}
void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void PutStr(std::string& out, const std::string& s) {
  PutU16(out, static_cast<uint16_t>(s.size()));
  out += s;
}

struct Conn {
  int fd = -1;
  std::string topic, in, out;
  uint64_t to_send = 0, sent = 0, acked = 0;
  uint32_t window = 0, inflight = 0;
  uint16_t next_pid = 1;
  bool connected = false;
};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 1883, nconn = 16;
  uint64_t count = 100000;
  uint32_t window = 512, payload_size = 200;
  double rate = 0, duration = 0;
  bool progress = false;
  std::string run = std::to_string(::getpid()), id_log_path;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--progress") {
      progress = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "mqtt_blast: %s needs a value\n", k.c_str());
      return 2;
    }
    std::string v = argv[i + 1];
    if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--count") count = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--connections") nconn = std::atoi(v.c_str());
    else if (k == "--window") window = static_cast<uint32_t>(std::atoi(v.c_str()));
    else if (k == "--payload-size") payload_size = static_cast<uint32_t>(std::atoi(v.c_str()));
    else if (k == "--run") run = v;
    else if (k == "--rate") rate = std::strtod(v.c_str(), nullptr);
    else if (k == "--duration") duration = std::strtod(v.c_str(), nullptr);
    else if (k == "--id-log") id_log_path = v;
    else {
      std::fprintf(stderr, "mqtt_blast: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  FILE* id_log = nullptr;
  if (!id_log_path.empty()) {
    id_log = std::fopen(id_log_path.c_str(), "w");
    if (id_log == nullptr) {
      std::perror("mqtt_blast: --id-log");
      return 2;
    }
    std::setvbuf(id_log, nullptr, _IOFBF, 1 << 20);
  }
  std::vector<Conn> conns(static_cast<size_t>(nconn));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconn; ++i) {
    Conn& c = conns[static_cast<size_t>(i)];
    c.to_send = count / static_cast<uint64_t>(nconn) + (static_cast<uint64_t>(i) < count % static_cast<uint64_t>(nconn));
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::perror("mqtt_blast: connect");
      return 1;
    }
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char dev[32];
    std::snprintf(dev, sizeof dev, "dev-%04d", i);
    c.topic = std::string("telemetry/") + dev + "/engine";
    std::string body;
    PutStr(body, "MQTT");
    body.push_back(5);     // protocol version
    body.push_back(0x02);  // clean start
    PutU16(body, 60);      // keep alive
    PutVarint(body, 0);    // properties
    PutStr(body, "blast-" + run + "-" + std::to_string(i));
    c.out.push_back(0x10);
    PutVarint(c.out, static_cast<uint32_t>(body.size()));
    c.out += body;
  }
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<pollfd> pfds(conns.size());
  uint64_t acked = 0, refused = 0, produced = 0;
  std::string payload;
  auto last_progress = t0, next_report = t0 + std::chrono::seconds(1);
  size_t first = 0;  // paced: the connection served first turns, so every device gets its share
  for (;;) {
    bool all_done = true;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    if (duration > 0 && elapsed >= duration) {
      for (Conn& c : conns) c.to_send = c.sent;  // the cap: what is out still gets its PUBACK
    }
    // Paced: how many PUBLISHes are due by now over all connections.
    uint64_t budget = UINT64_MAX;
    if (rate > 0) {
      const auto due = static_cast<uint64_t>(rate * elapsed) + 1;
      budget = due > produced ? due - produced : 0;
    }
    if (progress && now >= next_report) {
      std::fprintf(stderr, "mqtt_blast: t=%.0fs produced=%llu acked=%llu\n", elapsed,
                   static_cast<unsigned long long>(produced), static_cast<unsigned long long>(acked));
      next_report += std::chrono::seconds(1);
    }
    first = (first + 1) % conns.size();
    for (size_t k = 0; k < conns.size(); ++k) {
      const size_t i = (first + k) % conns.size();
      Conn& c = conns[i];
      // Fill the window: one write per round carries every PUBLISH that fits.
      while (c.connected && c.sent < c.to_send && c.inflight < c.window && budget > 0) {
        char id[64];
        int idn = std::snprintf(id, sizeof id, "blast-%s-%zu-%llu", run.c_str(), i,
                                static_cast<unsigned long long>(c.sent));
        payload.assign("{\"id\":\"");
        payload.append(id, static_cast<size_t>(idn));
        payload += "\",\"rpm\":2450,\"temp\":81.5,\"pad\":\"";
        if (payload.size() + 2 < payload_size) payload.append(payload_size - payload.size() - 2, 'x');
        payload += "\"}";
        uint16_t pid = c.next_pid;
        c.next_pid = static_cast<uint16_t>(c.next_pid == 65535 ? 1 : c.next_pid + 1);
        c.out.push_back(0x32);  // PUBLISH, QoS 1
        PutVarint(c.out, static_cast<uint32_t>(2 + c.topic.size() + 2 + 1 + payload.size()));
        PutStr(c.out, c.topic);
        PutU16(c.out, pid);
        PutVarint(c.out, 0);
        c.out += payload;
        if (id_log != nullptr) {
          std::fwrite(id, 1, static_cast<size_t>(idn), id_log);
          std::fputc('\n', id_log);
        }
        ++c.sent;
        ++c.inflight;
        ++produced;
        --budget;
      }
      if (!c.out.empty()) {
        ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) c.out.erase(0, static_cast<size_t>(w));
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          std::perror("mqtt_blast: send");
          return 1;
        }
      }
      if (c.acked < c.to_send) all_done = false;
      pfds[i].fd = c.fd;
      pfds[i].events = static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT));
      pfds[i].revents = 0;
    }
    if (all_done) break;
    // Paced and holding PUBLISHes back: look again in a millisecond.
    const bool held = rate > 0 && budget == 0;
    int timeout_ms = 30000;
    if (progress) {
      const auto to_report = std::chrono::duration_cast<std::chrono::milliseconds>(next_report - now).count();
      timeout_ms = static_cast<int>(std::max<long long>(1, to_report));
    }
    if (held) timeout_ms = 1;
    const int ready = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      std::perror("mqtt_blast: poll");
      return 1;
    }
    if (ready > 0) last_progress = std::chrono::steady_clock::now();
    if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(30)) {
      std::fprintf(stderr, "mqtt_blast: no progress for 30 s (acked %llu of %llu)\n",
                   static_cast<unsigned long long>(acked), static_cast<unsigned long long>(count));
      return 1;
    }
    for (size_t i = 0; i < conns.size(); ++i) {
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Conn& c = conns[i];
      char buf[65536];
      ssize_t r = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        std::fprintf(stderr, "mqtt_blast: connection %zu closed by ferryd\n", i);
        return 1;
      }
      if (r < 0) continue;
      c.in.append(buf, static_cast<size_t>(r));
      size_t off = 0;
      for (;;) {  // whole packets only
        size_t p = off + 1;
        uint32_t len = 0, mul = 1;
        bool complete = false;
        while (p < c.in.size()) {
          uint8_t b = static_cast<uint8_t>(c.in[p++]);
          len += (b & 0x7f) * mul;
          mul *= 128;
          if (!(b & 0x80)) {
            complete = true;
            break;
          }
        }
        if (!complete || c.in.size() - p < len) break;
        uint8_t type = static_cast<uint8_t>(c.in[off]) >> 4;
        const char* body = c.in.data() + p;
        if (type == 2) {  // CONNACK: flags, reason, properties (Receive Maximum 0x21)
          if (len < 2 || body[1] != 0) {
            std::fprintf(stderr, "mqtt_blast: CONNACK refused (0x%02x)\n", len >= 2 ? static_cast<uint8_t>(body[1]) : 0);
            return 1;
          }
          c.window = window;
          size_t q = 2, plen = 0, shift = 0;
          while (q < len) {
            uint8_t b = static_cast<uint8_t>(body[q++]);
            plen |= static_cast<size_t>(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) break;
          }
          for (size_t e = q + plen; q < e && q < len;) {
            uint8_t id = static_cast<uint8_t>(body[q++]);
            if (id == 0x21) {
              uint32_t rm = (static_cast<uint8_t>(body[q]) << 8) | static_cast<uint8_t>(body[q + 1]);
              if (rm < c.window) c.window = rm;
              break;
            }
            // Skip the other properties ferryd sends: 1-byte (0x24 0x25 0x28 0x29 0x2A), 2-byte (0x13 0x22),
            // 4-byte (0x27 0x11), strings (0x12 ...). Stop at anything else: the window is then --window.
            if (id == 0x24 || id == 0x25 || id == 0x28 || id == 0x29 || id == 0x2A) q += 1;
            else if (id == 0x13 || id == 0x22) q += 2;
            else if (id == 0x27 || id == 0x11) q += 4;
            else if (id == 0x12 || id == 0x1F || id == 0x1A || id == 0x1C) q += 2 + ((static_cast<uint8_t>(body[q]) << 8) | static_cast<uint8_t>(body[q + 1]));
            else break;
          }
          c.connected = true;
        } else if (type == 4) {  // PUBACK
          if (len >= 3 && static_cast<uint8_t>(body[2]) >= 0x80) ++refused;
          ++c.acked;
          ++acked;
          --c.inflight;
        } else if (type == 14) {
          std::fprintf(stderr, "mqtt_blast: DISCONNECT from ferryd (0x%02x)\n", len ? static_cast<uint8_t>(body[0]) : 0);
          return 1;
        }
        off = p + len;
      }
      c.in.erase(0, off);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = CpuSeconds() - cpu0;
  if (id_log != nullptr) std::fclose(id_log);
  std::printf("mqtt_blast: events=%llu seconds=%.3f eps=%.0f cpu_us_per_event=%.2f refused=%llu window=%u connections=%d "
              "produced=%llu acked=%llu unacked=%llu\n",
              static_cast<unsigned long long>(acked), secs, static_cast<double>(acked) / secs,
              cpu / static_cast<double>(acked) * 1e6, static_cast<unsigned long long>(refused), conns[0].window, nconn,
              static_cast<unsigned long long>(produced), static_cast<unsigned long long>(acked - refused),
              static_cast<unsigned long long>(produced - (acked - refused)));
  for (Conn& c : conns) ::close(c.fd);
  return refused == 0 ? 0 : 1;
}
