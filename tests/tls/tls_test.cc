// TlsSession (server-side TLS over mbedTLS) driven the way the ingest listener will drive it: a non-blocking
// epoll loop that echoes bytes, with a small read budget per round (so has_buffered_plaintext matters) and
// odd read and write sizes. The clients are real peers nobody here wrote: openssl s_client, Python's ssl
// module, mosquitto_pub (plain TCP to the TLS port). Waits poll with deadlines; nothing sleeps.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"
#include "../support/test_pki.h"
#include "ferry/tls_server.h"

namespace ferry::test {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Io = TlsSession::Io;

const char* IoName(int io) {
  switch (io) {
    case static_cast<int>(Io::kOk): return "kOk";
    case static_cast<int>(Io::kWantRead): return "kWantRead";
    case static_cast<int>(Io::kWantWrite): return "kWantWrite";
    case static_cast<int>(Io::kClosed): return "kClosed";
    case static_cast<int>(Io::kError): return "kError";
    default: return "none";
  }
}

// ---- a throwaway PKI -----------------------------------------------------------------------------------------

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits while we feed its stdin
    pki_ = new TempDir("ferry-tls-pki");
    pki_ok_ = MakeTestPki(pki_->path(), "/O=ferry/CN=ferry-device-7");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(pki_ok_) << "openssl failed, see " << pki_->Sub("pki.log"); }

  static std::string Pki(const std::string& name) { return pki_->Sub(name); }
  static TlsServerOptions Options(bool ca, bool require) {
    TlsServerOptions o;
    o.cert_file = Pki("server.pem");
    o.key_file = Pki("server.key");
    if (ca) o.ca_file = Pki("ca.pem");
    o.require_client_cert = require;
    return o;
  }
  static std::shared_ptr<TlsServerContext> Context(bool ca, bool require) {
    auto ctx = TlsServerContext::Create(Options(ca, require));
    EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().ToString());
    return ctx ? *ctx : nullptr;
  }

  static TempDir* pki_;
  static bool pki_ok_;
};
TempDir* TlsTest::pki_ = nullptr;
bool TlsTest::pki_ok_ = false;

// ---- a child process with pipes --------------------------------------------------------------------------

// stdin and stdout are pipes the test pumps (stdout read, stdin written in chosen chunk sizes); stderr goes to
// a file for the failure message. Exit is observed through a pidfd, so waits are polls with deadlines.
class Child {
 public:
  Child() = default;
  ~Child() {
    Kill();
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool Start(const std::vector<std::string>& argv, const std::string& stderr_file) {
    stderr_file_ = stderr_file;
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return false;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int err = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      if (err >= 0) ::dup2(err, 2);
      ::signal(SIGPIPE, SIG_DFL);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
    ::fcntl(in_, F_SETFL, O_NONBLOCK);
    ::fcntl(out_, F_SETFL, O_NONBLOCK);
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // glibc 2.36's header lacks extern "C"
    return pidfd_ >= 0;
  }

  int out_fd() const { return out_; }
  const std::string& out() const { return output_; }
  std::string err() const {
    std::ifstream f(stderr_file_);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }

  // Queues bytes for stdin, written in these chunk sizes (cycling): the child sees odd splits.
  void Feed(const std::string& bytes, std::vector<size_t> chunks = {1 << 16}) {
    pending_ += bytes;
    chunks_ = std::move(chunks);
  }
  void CloseStdin() { close_after_feed_ = true; MaybeCloseStdin(); }

  // Reads whatever stdout holds now. False once stdout is at EOF.
  bool ReadSome() {
    char buf[65536];
    while (out_ >= 0) {
      ssize_t r = ::read(out_, buf, sizeof buf);
      if (r > 0) {
        output_.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) return true;
      ::close(out_);
      out_ = -1;
    }
    return false;
  }

  // Feeds stdin and reads stdout until pred(stdout) holds, stdout ends, or the timeout passes.
  bool PumpUntil(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (pred(output_)) return true;
      if (out_ < 0) return false;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      pollfd p[2] = {{out_, POLLIN, 0}, {in_, POLLOUT, 0}};
      nfds_t n = (in_ >= 0 && !pending_.empty()) ? 2 : 1;
      if (::poll(p, n, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
      if (n == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) WriteChunk();
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ReadSome();
    }
  }

  // Writes what Feed queued.
  bool FlushStdin(std::chrono::milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    while (in_ >= 0 && !pending_.empty() && SteadyClock::now() < deadline) {
      pollfd p{in_, POLLOUT, 0};
      if (::poll(&p, 1, 100) > 0) WriteChunk();
    }
    return pending_.empty();
  }

  // Waits for the exit; kills it after the timeout. The exit status, or -1 (killed, or not started).
  int Wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return exit_status_;
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        Kill();
        return -1;
      }
      pollfd p[3] = {{pidfd_, POLLIN, 0}, {out_, POLLIN, 0}, {in_, POLLOUT, 0}};
      if (::poll(p, (in_ >= 0 && !pending_.empty()) ? 3 : 2, static_cast<int>(left.count())) < 0 && errno != EINTR)
        return -1;
      if (p[2].revents) WriteChunk();
      if (out_ >= 0 && p[1].revents) ReadSome();
      if (p[0].revents & POLLIN) {
        ReadSome();
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return exit_status_;
      }
    }
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  void WriteChunk() {
    if (in_ < 0 || pending_.empty()) return;
    size_t n = std::min(pending_.size(), chunks_[next_chunk_ % chunks_.size()]);
    ssize_t w = ::write(in_, pending_.data(), n);
    if (w > 0) {
      pending_.erase(0, static_cast<size_t>(w));
      if (static_cast<size_t>(w) == n) ++next_chunk_;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      pending_.clear();  // the child closed its stdin
    }
    MaybeCloseStdin();
  }
  void MaybeCloseStdin() {
    if (close_after_feed_ && pending_.empty() && in_ >= 0) {
      ::close(in_);
      in_ = -1;
    }
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int in_ = -1;
  int out_ = -1;
  int exit_status_ = -1;
  std::string output_;
  std::string pending_;
  std::vector<size_t> chunks_{1 << 16};
  size_t next_chunk_ = 0;
  bool close_after_feed_ = false;
  std::string stderr_file_;
};

// ---- the echo server: TlsSession in an epoll loop ------------------------------------------------------------

int ListenLocal(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

// What the listener will do, minus MQTT: accept, Handshake() until kOk with EPOLLIN/EPOLLOUT as asked, then
// Read() at most reads_per_round times per round (re-running the connection without waiting while
// has_buffered_plaintext()), and Write() the echo from the front of an output buffer, advancing on kOk only.
class EchoServer {
 public:
  struct Options {
    size_t read_cap = 777;      // odd: records are read in pieces
    size_t write_cap = 5003;    // odd: records are written in pieces
    int reads_per_round = 2;    // small: a record's rest waits in the session, epoll would not say
    int sndbuf = 0;             // > 0: a small socket send buffer, so Write meets kWantWrite
  };
  struct Outcome {
    uint64_t id = 0;
    bool handshake_ok = false;
    bool finished = false;
    int last_handshake = -1;  // the last Handshake() result
    int end = -1;             // the Io that ended the connection
    std::string cn, error, label;
    size_t echoed = 0;
  };

  EchoServer(std::shared_ptr<TlsServerContext> ctx, Options o) : ctx_(std::move(ctx)), opt_(o) {
    listen_fd_ = ListenLocal(&port_);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.u64 = UINT64_MAX;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
  ~EchoServer() {
    Stop();
    for (auto& [id, c] : conns_) ::close(c->fd);
    ::close(listen_fd_);
    ::close(epoll_fd_);
    ::close(wake_fd_);
  }
  bool ok() const { return listen_fd_ >= 0 && epoll_fd_ >= 0 && wake_fd_ >= 0; }
  uint16_t port() const { return port_; }

  void Start() {
    thread_ = std::thread([this] {
      while (!stop_.load()) Step(1000);
    });
  }
  void Stop() {
    stop_.store(true);
    uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) {
    }
    if (thread_.joinable()) thread_.join();
  }

  std::vector<Outcome> outcomes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_;
  }
  // Waits until pred(outcomes) holds; false after the timeout.
  bool WaitFor(const std::function<bool(const std::vector<Outcome>&)>& pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(outcomes_); });
  }
  bool WaitFinished(size_t n, std::chrono::milliseconds timeout = 30s) {
    return WaitFor(
        [n](const std::vector<Outcome>& o) {
          size_t f = 0;
          for (const auto& x : o) f += x.finished;
          return f >= n;
        },
        timeout);
  }
  Outcome Get(size_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return i < outcomes_.size() ? outcomes_[i] : Outcome{};
  }

  std::atomic<int> rereads{0};          // rounds re-run for has_buffered_plaintext()
  std::atomic<int> write_wants{0};      // Write() returned kWantWrite
  std::atomic<int> sealed_waits{0};     // ... with a sealed record pending
  std::atomic<int> read_wants_write{0};

  void Step(int timeout_ms) {
    epoll_event events[32];
    int n = ::epoll_wait(epoll_fd_, events, 32, ready_.empty() ? timeout_ms : 0);
    for (int i = 0; i < n; ++i) {
      uint64_t key = events[i].data.u64;
      if (key == 0) {
        Accept();
      } else if (key == UINT64_MAX) {
        uint64_t v;
        while (::read(wake_fd_, &v, sizeof v) > 0) {
        }
      } else if (auto it = conns_.find(key); it != conns_.end() && !it->second->dead) {
        Drive(*it->second);
      }
    }
    std::set<uint64_t> again;
    again.swap(ready_);
    for (uint64_t id : again) {
      auto it = conns_.find(id);
      if (it != conns_.end() && !it->second->dead) Drive(*it->second);
    }
    for (uint64_t id : dead_) conns_.erase(id);
    dead_.clear();
  }

 private:
  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    std::unique_ptr<TlsSession> tls;
    bool open = false;
    bool dead = false;
    bool read_wants_write = false;
    std::string out;
    size_t off = 0;
    uint32_t events = 0;
  };

  void Update(const Conn& c, const std::function<void(Outcome&)>& f) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      f(outcomes_[c.id - 1]);
    }
    cv_.notify_all();
  }

  void Accept() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      if (opt_.sndbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt_.sndbuf, sizeof opt_.sndbuf);
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->tls = std::make_unique<TlsSession>(ctx_, fd);
      {
        std::lock_guard<std::mutex> lock(mu_);
        outcomes_.emplace_back();
        c->id = outcomes_.size();
        outcomes_.back().id = c->id;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = c->id;
      c->events = EPOLLIN;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
      Conn& ref = *c;
      conns_.emplace(c->id, std::move(c));
      Drive(ref);
    }
  }

  void Arm(Conn& c, uint32_t events) {
    if (c.dead || events == c.events) return;
    c.events = events;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void Finish(Conn& c, Io io) {
    if (io == Io::kClosed) c.tls->CloseNotify();
    Update(c, [&](Outcome& o) {
      o.finished = true;
      o.end = static_cast<int>(io);
      o.error = c.tls->error();
      o.label = c.tls->error_label();
    });
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.dead = true;
    ready_.erase(c.id);
    dead_.push_back(c.id);
  }

  void Drive(Conn& c) {
    if (!c.open) {
      Io io = c.tls->Handshake();
      Update(c, [&](Outcome& o) { o.last_handshake = static_cast<int>(io); });
      if (io == Io::kWantRead) return Arm(c, EPOLLIN);
      if (io == Io::kWantWrite) return Arm(c, EPOLLOUT);
      if (io != Io::kOk) return Finish(c, io);
      c.open = true;
      Update(c, [&](Outcome& o) {
        o.handshake_ok = true;
        o.cn = c.tls->peer_common_name();
      });
    }
    Flush(c);
    if (c.dead) return;
    c.read_wants_write = false;
    char buf[64 * 1024];
    for (int i = 0; i < opt_.reads_per_round; ++i) {
      size_t got = 0;
      Io io = c.tls->Read(buf, std::min(opt_.read_cap, sizeof buf), &got);
      if (io == Io::kOk) {
        c.out.append(buf, got);
        continue;
      }
      if (io == Io::kWantRead) break;
      if (io == Io::kWantWrite) {
        c.read_wants_write = true;
        ++read_wants_write;
        break;
      }
      return Finish(c, io);
    }
    if (c.tls->has_buffered_plaintext()) {
      ready_.insert(c.id);
      ++rereads;
    }
    Flush(c);
    if (c.dead) return;
    bool want_out = c.off < c.out.size() || c.read_wants_write || c.tls->has_pending_output();
    Arm(c, EPOLLIN | (want_out ? uint32_t{EPOLLOUT} : 0u));
  }

  void Flush(Conn& c) {
    while (c.off < c.out.size()) {
      size_t wrote = 0;
      Io io = c.tls->Write(c.out.data() + c.off, std::min(opt_.write_cap, c.out.size() - c.off), &wrote);
      if (io == Io::kOk) {
        c.off += wrote;
        Update(c, [&](Outcome& o) { o.echoed += wrote; });
        continue;
      }
      if (io == Io::kWantWrite) {
        ++write_wants;
        if (c.tls->has_pending_output()) ++sealed_waits;
        break;
      }
      if (io == Io::kWantRead) break;
      return Finish(c, io);
    }
    if (c.off == c.out.size()) {
      c.out.clear();
      c.off = 0;
    }
  }

  std::shared_ptr<TlsServerContext> ctx_;
  Options opt_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::set<uint64_t> ready_;
  std::vector<uint64_t> dead_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<EchoServer::Outcome> outcomes_;
};

std::string Describe(const EchoServer::Outcome& o) {
  return "conn " + std::to_string(o.id) + ": handshake_ok=" + std::to_string(o.handshake_ok) +
         " last_handshake=" + IoName(o.last_handshake) + " finished=" + std::to_string(o.finished) +
         " end=" + IoName(o.end) + " cn=\"" + o.cn + "\" label=" + o.label + " echoed=" + std::to_string(o.echoed) +
         " error=" + o.error;
}

// ---- the peers -----------------------------------------------------------------------------------------------

// Python's ssl module: connects (optionally with a client certificate), sends `total` bytes in odd-sized
// writes, then reads the echo (a small receive buffer, so the server meets a full socket), closes with
// close_notify. Prints "ECHO OK <version> <cipher>" or "HANDSHAKE-FAILED ...".
const char* kPyEcho = R"PY(
import socket, ssl, sys
port, ca, cert, key, total = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.settimeout(60)
raw.connect(('127.0.0.1', port))
try:
    s = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
    s.sendall(b'')
    s.getpeercert()
except Exception as e:
    print('HANDSHAKE-FAILED', type(e).__name__, e, flush=True)
    sys.exit(3)
data = bytes((i * 31 + (i >> 9)) & 255 for i in range(total))
sizes = [1, 7, 1000, 4097, 16385, 333, 16383, 65, 2, 9999]
off = k = 0
try:
    while off < total:
        n = sizes[k % len(sizes)]
        k += 1
        s.sendall(data[off:off + n])
        off += n
    got = bytearray()
    while len(got) < total:
        b = s.recv(7777)
        if not b:
            break
        got += b
except Exception as e:
    print('IO-FAILED', type(e).__name__, e, flush=True)
    sys.exit(4)
verdict = 'OK' if bytes(got) == data else 'MISMATCH got %d of %d' % (len(got), total)
print('ECHO', verdict, s.version(), s.cipher()[0], flush=True)
s.unwrap()
print('BYE', flush=True)
)PY";

// Sends a ClientHello (made in memory, so the TLS object never sees the answer and cannot go on), waits for
// the server's first flight, then says "stalled" and goes quiet until its stdin closes.
const char* kPyStall = R"PY(
import select, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname='127.0.0.1')
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(outgoing.read())  # the ClientHello; what the server answers is never given to the TLS object
select.select([s], [], [], 60)
print('stalled', flush=True)
sys.stdin.read()
)PY";

// n connections with a client certificate: ClientHellos, "hellos" once every server flight arrived, then
// (after a line on stdin) the rest of every handshake, "established", and a close when stdin closes.
const char* kPyMany = R"PY(
import select, socket, ssl, sys
port, ca, cert, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ss = []
for i in range(n):
    t = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='127.0.0.1',
                        do_handshake_on_connect=False)
    t.setblocking(False)
    try:
        t.do_handshake()
    except ssl.SSLWantReadError:
        pass
    ss.append(t)
for t in ss:
    select.select([t], [], [], 60)
print('hellos', flush=True)
sys.stdin.readline()
pending = list(ss)
while pending:
    nxt = []
    for t in pending:
        try:
            t.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            nxt.append(t)
    pending = nxt
    if pending:
        select.select(pending, [], [], 60)
print('established', flush=True)
sys.stdin.read()
for t in ss:
    t.close()
)PY";

std::vector<std::string> PyEcho(uint16_t port, const std::string& ca, const std::string& cert,
                                const std::string& key, size_t total) {
  return {"python3", "-c", kPyEcho, std::to_string(port), ca, cert, key, std::to_string(total)};
}

std::vector<std::string> SClient(uint16_t port, const std::string& ca, const std::string& cert = "",
                                 const std::string& key = "") {
  std::vector<std::string> a = {"openssl",  "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                                "-CAfile",  ca,         "-verify_return_error", "-verify_ip", "127.0.0.1",
                                "-quiet",   "-no_ign_eof", "-nocommands"};
  if (!cert.empty()) a.insert(a.end(), {"-cert", cert, "-key", key});
  return a;
}

std::string Pattern(size_t n) {  // printable lines: what a terminal tool passes through untouched
  std::string s;
  s.reserve(n);
  for (size_t i = 0; s.size() < n; ++i) {
    s += "line " + std::to_string(i) + " of the ferry tls echo test abcdefghijklmnopqrstuvwxyz\n";
  }
  s.resize(n);
  return s;
}

constexpr size_t k100K = 100 * 1024;

// ---- tests ---------------------------------------------------------------------------------------------------

TEST_F(TlsTest, PythonEchoes100KWithClientCertAndReportsItsCommonName) {
  EchoServer::Options o;
  o.sndbuf = 4096;
  EchoServer srv(Context(true, true), o);
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  Child py;
  ASSERT_TRUE(py.Start(
      PyEcho(srv.port(), Pki("ca.pem"), Pki("client.pem"), Pki("client.key"), k100K),
      tmp.Sub("py.err")));
  EXPECT_TRUE(py.PumpUntil([](const std::string& out) { return out.find("BYE") != std::string::npos; }, 60s))
      << py.out() << py.err() << Describe(srv.Get(0));
  EXPECT_NE(py.out().find("ECHO OK TLSv1.2"), std::string::npos) << py.out();
  EXPECT_EQ(py.Wait(30s), 0) << py.err();
  ASSERT_TRUE(srv.WaitFinished(1)) << Describe(srv.Get(0));
  auto c = srv.Get(0);
  EXPECT_TRUE(c.handshake_ok) << Describe(c);
  EXPECT_EQ(c.cn, "ferry-device-7");
  EXPECT_EQ(c.echoed, k100K);
  EXPECT_EQ(c.end, static_cast<int>(Io::kClosed)) << Describe(c);
  // The paths this loop exists for were taken: a record read in pieces across rounds, and a full socket
  // with a sealed record (the echo arrives intact, so none was lost or sent twice).
  EXPECT_GT(srv.rereads.load(), 0);
  EXPECT_GT(srv.sealed_waits.load(), 0);
  std::printf("rereads=%d write_wants=%d sealed_waits=%d\n", srv.rereads.load(), srv.write_wants.load(),
              srv.sealed_waits.load());
}

TEST_F(TlsTest, SClientEchoes100KWithAndWithoutClientCert) {
  EchoServer srv(Context(true, false), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  const std::string data = Pattern(k100K);
  for (bool with_cert : {true, false}) {
    SCOPED_TRACE(with_cert ? "with -cert" : "without -cert");
    Child sc;
    ASSERT_TRUE(sc.Start(with_cert ? SClient(srv.port(), Pki("ca.pem"), Pki("client.pem"), Pki("client.key"))
                                   : SClient(srv.port(), Pki("ca.pem")),
                         tmp.Sub("s_client.err")));
    sc.Feed(data, {1, 7, 1000, 4097, 16385, 333, 65, 9999});
    EXPECT_TRUE(sc.PumpUntil([&](const std::string& out) { return out.size() >= data.size(); }, 60s))
        << sc.out().size() << "\n" << sc.err();
    EXPECT_TRUE(sc.out() == data) << "echo differs: " << sc.out().size() << " bytes";
    sc.CloseStdin();
    EXPECT_EQ(sc.Wait(30s), 0) << sc.err();
  }
  ASSERT_TRUE(srv.WaitFinished(2)) << Describe(srv.Get(0)) << "\n" << Describe(srv.Get(1));
  auto a = srv.Get(0), b = srv.Get(1);
  EXPECT_TRUE(a.handshake_ok && b.handshake_ok) << Describe(a) << "\n" << Describe(b);
  EXPECT_EQ(a.cn, "ferry-device-7");
  EXPECT_EQ(b.cn, "");  // none sent: optional
  EXPECT_EQ(a.echoed, k100K);
  EXPECT_EQ(b.echoed, k100K);
  EXPECT_EQ(a.end, static_cast<int>(Io::kClosed)) << Describe(a);
}

TEST_F(TlsTest, RequiredClientCertRefusesNoCertAndAnotherCasCert) {
  EchoServer srv(Context(true, true), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  {
    Child py;  // no certificate
    ASSERT_TRUE(py.Start(PyEcho(srv.port(), Pki("ca.pem"), "", "", 10), tmp.Sub("py1.err")));
    EXPECT_NE(py.Wait(30s), 0) << py.out();
    EXPECT_NE(py.out().find("FAILED"), std::string::npos) << py.out();
  }
  {
    Child py;  // a certificate with the same CN from a CA the server does not trust
    ASSERT_TRUE(py.Start(
      PyEcho(srv.port(), Pki("ca.pem"), Pki("rogue.pem"), Pki("rogue.key"), 10),
      tmp.Sub("py2.err")));
    EXPECT_NE(py.Wait(30s), 0) << py.out();
    EXPECT_NE(py.out().find("FAILED"), std::string::npos) << py.out();
  }
  {
    Child sc;  // openssl without -cert
    ASSERT_TRUE(sc.Start(SClient(srv.port(), Pki("ca.pem")), tmp.Sub("sc.err")));
    sc.Feed("hello\n");
    ASSERT_TRUE(srv.WaitFinished(3)) << Describe(srv.Get(2));
    sc.CloseStdin();
    sc.Wait(30s);
  }
  auto none = srv.Get(0), rogue = srv.Get(1), sc = srv.Get(2);
  EXPECT_FALSE(none.handshake_ok);
  EXPECT_EQ(none.end, static_cast<int>(Io::kError)) << Describe(none);
  EXPECT_EQ(none.label, "tls_no_client_cert") << Describe(none);
  EXPECT_FALSE(rogue.handshake_ok);
  EXPECT_EQ(rogue.end, static_cast<int>(Io::kError)) << Describe(rogue);
  EXPECT_EQ(rogue.label, "tls_bad_client_cert") << Describe(rogue);
  EXPECT_NE(rogue.error.find("not correctly signed"), std::string::npos) << rogue.error;
  EXPECT_FALSE(sc.handshake_ok);
  EXPECT_EQ(sc.label, "tls_no_client_cert") << Describe(sc);
  std::printf("no cert: %s\nother CA: %s\n", none.error.c_str(), rogue.error.c_str());
}

TEST_F(TlsTest, OptionalClientCertNamesOnlyAVerifiedOne) {
  EchoServer srv(Context(true, false), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  for (const char* who : {"rogue", "client"}) {
    Child py;
    ASSERT_TRUE(py.Start(PyEcho(srv.port(), Pki("ca.pem"), Pki(std::string(who) + ".pem"),
                                Pki(std::string(who) + ".key"), 1000),
                         tmp.Sub("py.err")));
    EXPECT_EQ(py.Wait(30s), 0) << py.out() << py.err();
    EXPECT_NE(py.out().find("ECHO OK"), std::string::npos) << py.out();
  }
  ASSERT_TRUE(srv.WaitFinished(2));
  EXPECT_TRUE(srv.Get(0).handshake_ok);
  EXPECT_EQ(srv.Get(0).cn, "") << "a certificate that does not verify names nobody";
  EXPECT_EQ(srv.Get(1).cn, "ferry-device-7");
}

TEST_F(TlsTest, NoCaFileAsksForNoCertificate) {
  EchoServer srv(Context(false, false), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  Child py;
  ASSERT_TRUE(py.Start(
      PyEcho(srv.port(), Pki("ca.pem"), Pki("client.pem"), Pki("client.key"), 1000),
      tmp.Sub("py.err")));
  EXPECT_EQ(py.Wait(30s), 0) << py.out() << py.err();
  ASSERT_TRUE(srv.WaitFinished(1));
  EXPECT_TRUE(srv.Get(0).handshake_ok);
  EXPECT_EQ(srv.Get(0).cn, "");
}

TEST_F(TlsTest, PlainMqttToTheTlsPortFailsCleanly) {
  EchoServer srv(Context(true, false), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  {
    // mosquitto_pub speaking plain MQTT: the server fails the handshake and closes; the client gives up.
    Child pub;
    ASSERT_TRUE(pub.Start({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(srv.port()), "-t", "t/1", "-m",
                           "hello", "-q", "1", "-i", "dev-plain"},
                          tmp.Sub("pub.err")));
    ASSERT_TRUE(srv.WaitFinished(1)) << Describe(srv.Get(0));
    EXPECT_NE(pub.Wait(30s), 0) << pub.err();
  }
  {
    // The same bytes from a raw socket: the server's close is seen as EOF (or a reset) within the deadline.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(srv.port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const unsigned char connect_packet[] = {0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
                                            0x00, 0x3c, 0x00, 0x04, 'd',  'e', 'v', '1'};
    ASSERT_EQ(::send(fd, connect_packet, sizeof connect_packet, MSG_NOSIGNAL),
              static_cast<ssize_t>(sizeof connect_packet));
    bool ended = false;
    auto deadline = SteadyClock::now() + 10s;
    while (!ended && SteadyClock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[256];
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      ended = r <= 0;  // 0: EOF; < 0: reset. Bytes (an alert) are read past.
    }
    EXPECT_TRUE(ended);
    ::close(fd);
  }
  ASSERT_TRUE(srv.WaitFinished(2));
  for (size_t i = 0; i < 2; ++i) {
    auto c = srv.Get(i);
    EXPECT_FALSE(c.handshake_ok);
    EXPECT_EQ(c.end, static_cast<int>(Io::kError)) << Describe(c);
    EXPECT_EQ(c.label, "tls_not_tls") << Describe(c);
    EXPECT_NE(c.error.find("0x10"), std::string::npos) << c.error;
  }
  std::printf("plain MQTT: %s\n", srv.Get(0).error.c_str());
}

TEST_F(TlsTest, AClientThatStopsMidHandshakeLeavesTheSessionWaitingToRead) {
  EchoServer srv(Context(true, true), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  Child stall;
  ASSERT_TRUE(stall.Start({"python3", "-c", kPyStall, std::to_string(srv.port())}, tmp.Sub("stall.err")));
  ASSERT_TRUE(stall.PumpUntil([](const std::string& o) { return o.find("stalled") != std::string::npos; }, 30s))
      << stall.err();
  auto waiting = [](const auto& o) { return !o.empty() && o[0].last_handshake == static_cast<int>(Io::kWantRead); };
  ASSERT_TRUE(srv.WaitFor(waiting, 10s))
      << Describe(srv.Get(0)) << stall.err();
  // The loop goes on serving others meanwhile: a full echo on a second connection.
  Child py;
  ASSERT_TRUE(py.Start(
      PyEcho(srv.port(), Pki("ca.pem"), Pki("client.pem"), Pki("client.key"), 5000),
      tmp.Sub("py.err")));
  EXPECT_EQ(py.Wait(30s), 0) << py.out() << py.err();
  ASSERT_TRUE(srv.WaitFinished(1));
  auto stalled = srv.Get(0);
  EXPECT_FALSE(stalled.finished) << Describe(stalled);
  EXPECT_FALSE(stalled.handshake_ok);
  EXPECT_EQ(stalled.last_handshake, static_cast<int>(Io::kWantRead)) << "the caller's timeout ends it";
  EXPECT_TRUE(srv.Get(1).finished && srv.Get(1).handshake_ok) << Describe(srv.Get(1));
  // When the peer goes away, the session says so: it closes with our flight unread, so its kernel sends a
  // reset (kError, tls_io_error); a FIN alone would be kClosed.
  stall.CloseStdin();
  EXPECT_EQ(stall.Wait(30s), 0);
  ASSERT_TRUE(srv.WaitFinished(2)) << Describe(srv.Get(0));
  auto gone = srv.Get(0);
  EXPECT_TRUE(gone.end == static_cast<int>(Io::kClosed) ||
              (gone.end == static_cast<int>(Io::kError) && gone.label == "tls_io_error"))
      << Describe(gone);
}

TEST_F(TlsTest, ARenegotiationRequestIsRefusedWithoutHangingTheLoop) {
  EchoServer srv(Context(false, false), {});
  ASSERT_TRUE(srv.ok());
  srv.Start();
  TempDir tmp("ferry-tls");
  Child sc;  // s_client's "R" command: a client-initiated TLS 1.2 renegotiation
  std::vector<std::string> args = {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(srv.port()),
                                   "-CAfile", Pki("ca.pem"), "-quiet", "-no_ign_eof"};
  ASSERT_TRUE(sc.Start(args, tmp.Sub("sc.err")));
  sc.Feed("before\n");
  ASSERT_TRUE(sc.PumpUntil([](const std::string& o) { return o == "before\n"; }, 30s)) << sc.err();
  sc.Feed("R\nafter\n");
  sc.CloseStdin();
  sc.Wait(30s);
  ASSERT_TRUE(srv.WaitFinished(1)) << Describe(srv.Get(0));
  auto c = srv.Get(0);
  EXPECT_TRUE(c.handshake_ok);
  EXPECT_TRUE(c.end == static_cast<int>(Io::kClosed) || c.end == static_cast<int>(Io::kError)) << Describe(c);
  std::printf("renegotiation: %s; s_client said: %s\n", Describe(c).c_str(), sc.out().c_str());
}

TEST_F(TlsTest, BadFilesAreInvalidArgumentNamingTheFile) {
  struct Case {
    const char* what;
    std::function<void(TlsServerOptions&)> change;
    std::string must_name;
  };
  const std::string missing = pki_->Sub("no-such.pem");
  std::vector<Case> cases = {
      {"missing cert", [&](TlsServerOptions& o) { o.cert_file = missing; }, missing},
      {"cert not PEM", [&](TlsServerOptions& o) { o.cert_file = Pki("garbage.pem"); }, Pki("garbage.pem")},
      {"cert is a key", [&](TlsServerOptions& o) { o.cert_file = Pki("server.key"); }, Pki("server.key")},
      {"cert is a directory", [&](TlsServerOptions& o) { o.cert_file = pki_->path(); }, pki_->path()},
      {"missing key", [&](TlsServerOptions& o) { o.key_file = missing; }, missing},
      {"key not PEM", [&](TlsServerOptions& o) { o.key_file = Pki("garbage.pem"); }, Pki("garbage.pem")},
      {"key is a cert", [&](TlsServerOptions& o) { o.key_file = Pki("server.pem"); }, Pki("server.pem")},
      {"key of another cert", [&](TlsServerOptions& o) { o.key_file = Pki("client.key"); }, Pki("client.key")},
      {"missing ca", [&](TlsServerOptions& o) { o.ca_file = missing; }, missing},
      {"ca not PEM", [&](TlsServerOptions& o) { o.ca_file = Pki("garbage.pem"); }, Pki("garbage.pem")},
      {"require without ca", [&](TlsServerOptions& o) { o.ca_file.clear(); o.require_client_cert = true; }, "ca_file"},
      {"TLS 1.3 minimum", [&](TlsServerOptions& o) { o.min_version = "1.3"; }, "1.3"},
      {"TLS 1.0 minimum", [&](TlsServerOptions& o) { o.min_version = "1.0"; }, "1.0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    TlsServerOptions o = Options(true, true);
    c.change(o);
    auto r = TlsServerContext::Create(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().ToString();
    EXPECT_NE(r.error().message.find(c.must_name), std::string::npos) << r.error().message;
    std::printf("%-20s %s\n", c.what, r.error().message.c_str());
  }
  EXPECT_TRUE(TlsServerContext::Create(Options(true, true)).has_value());
}

// Per-session heap, measured with mallinfo2 on this (the main) thread, which allocates from the main arena:
// 100 sessions fresh (record buffers), mid-handshake (after the server's first flight), established with
// client certificates kept, and the heap after all are closed and freed.
struct HeapRound {
  long fresh = 0, mid = 0, established = 0;  // per session
  long after = 0;                            // the whole heap after the round
  double first_ms = 0, second_ms = 0;        // server CPU per handshake: to the first flight, then to the end
};

long HeapInUse() {
  struct mallinfo2 m = ::mallinfo2();
  return static_cast<long>(m.uordblks + m.hblkhd);
}

double CpuMs(const timespec& a, const timespec& b) {
  return static_cast<double>(b.tv_sec - a.tv_sec) * 1e3 + static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e6;
}

void RunHeapRound(const std::shared_ptr<TlsServerContext>& ctx, const std::string& pki, int n, HeapRound* out) {
  uint16_t port = 0;
  int lfd = ListenLocal(&port);
  ASSERT_GE(lfd, 0);
  TempDir tmp("ferry-tls");
  Child py;
  ASSERT_TRUE(py.Start({"python3", "-c", kPyMany, std::to_string(port), pki + "/ca.pem", pki + "/client.pem",
                        pki + "/client.key", std::to_string(n)},
                       tmp.Sub("many.err")));
  std::vector<int> fds;
  fds.reserve(n);
  std::vector<std::unique_ptr<TlsSession>> sessions;
  sessions.reserve(n);
  std::vector<int> state(n, 0);  // 0 handshaking, 1 established, 2 closed
  std::vector<pollfd> pfds;
  pfds.reserve(n + 1);
  auto deadline = SteadyClock::now() + 60s;
  while (static_cast<int>(fds.size()) < n && SteadyClock::now() < deadline) {
    pollfd p{lfd, POLLIN, 0};
    ::poll(&p, 1, 1000);
    while (static_cast<int>(fds.size()) < n) {
      int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      fds.push_back(fd);
    }
  }
  ASSERT_EQ(static_cast<int>(fds.size()), n) << py.err();
  const long m0 = HeapInUse();
  for (int fd : fds) sessions.push_back(std::make_unique<TlsSession>(ctx, fd));
  const long m1 = HeapInUse();

  // Drives every session on POLLIN, reading the child's stdout on the way, until done() or the deadline.
  auto drive = [&](const std::function<bool()>& done) {
    while (!done() && SteadyClock::now() < deadline) {
      pfds.clear();
      pfds.push_back({py.out_fd(), POLLIN, 0});
      for (int i = 0; i < n; ++i) pfds.push_back({state[i] == 2 ? -1 : fds[i], POLLIN, 0});
      ::poll(pfds.data(), pfds.size(), 1000);
      if (pfds[0].revents) py.ReadSome();
      for (int i = 0; i < n; ++i) {
        if (!pfds[i + 1].revents) continue;
        if (state[i] == 0) {
          Io io = sessions[i]->Handshake();
          if (io == Io::kOk) {
            state[i] = 1;
          } else if (io != Io::kWantRead) {
            ADD_FAILURE() << "handshake " << IoName(static_cast<int>(io)) << " " << sessions[i]->error();
            state[i] = 2;
          }
        } else if (state[i] == 1) {
          char buf[512];
          size_t got;
          Io io = sessions[i]->Read(buf, sizeof buf, &got);
          if (io == Io::kClosed || io == Io::kError) state[i] = 2;
        }
      }
    }
    return done();
  };
  auto said = [&py](const char* word) { return [&py, word] { return py.out().find(word) != std::string::npos; }; };
  auto count = [&state](int s) { return static_cast<int>(std::count(state.begin(), state.end(), s)); };
  timespec c0, c1, c2;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  ASSERT_TRUE(drive(said("hellos"))) << py.err();
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  const long m2 = HeapInUse();
  py.Feed("go\n");
  ASSERT_TRUE(py.FlushStdin(10s));
  ASSERT_TRUE(drive([&] { return count(1) == n; })) << py.err();
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c2);
  ASSERT_TRUE(drive(said("established"))) << py.err();
  const long m3 = HeapInUse();
  for (int i = 0; i < n; ++i) EXPECT_EQ(sessions[i]->peer_common_name(), "ferry-device-7");
  py.CloseStdin();
  ASSERT_TRUE(drive([&] { return count(2) == n; })) << py.err();
  sessions.clear();
  for (int fd : fds) ::close(fd);
  ::close(lfd);
  EXPECT_EQ(py.Wait(30s), 0);
  out->fresh = (m1 - m0) / n;
  out->mid = (m2 - m0) / n;
  out->established = (m3 - m0) / n;
  out->first_ms = CpuMs(c0, c1) / n;
  out->second_ms = CpuMs(c1, c2) / n;
  out->after = HeapInUse();
}

TEST_F(TlsTest, HeapPerSession) {
  constexpr int kSessions = 100;
  auto ctx = Context(true, true);
  ASSERT_TRUE(ctx);
  HeapRound r[2];
  for (auto& round : r) {
    RunHeapRound(ctx, pki_->path(), kSessions, &round);
    if (HasFatalFailure()) return;
    std::printf(
        "heap per session: fresh %ld B, mid-handshake %ld B, established (client cert kept) %ld B; server "
        "handshake CPU each: %.2f ms to the first flight, %.2f ms to the end\n",
        round.fresh, round.mid, round.established, round.first_ms, round.second_ms);
  }
  RecordProperty("fresh_bytes", std::to_string(r[0].fresh));
  RecordProperty("mid_handshake_bytes", std::to_string(r[0].mid));
  RecordProperty("established_bytes", std::to_string(r[0].established));
  EXPECT_LT(r[0].established, 48 * 1024);
  // No session stays behind: a second round of 100 leaves the heap within less than half a session of where
  // the first left it. Not exact: glibc's per-thread cache counts some freed chunks as in use (up to ~36 KB
  // right after a round, a few KB of it varying); the sanitizer build (LeakSanitizer) checks leaks exactly.
  std::printf("heap after round 1: %ld B, after round 2: %ld B\n", r[0].after, r[1].after);
  EXPECT_LT(std::labs(r[1].after - r[0].after), 16 * 1024);
}

}  // namespace
}  // namespace ferry::test
