// What a parsed configuration needs from the machine it runs on (ferryd --check-config). See ferry/config.h.
//
// Only looks: stat, access and open-for-reading, getaddrinfo. Nothing is created, bound or connected, so the
// check can run beside a live ferryd on the same files.
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "ferry/config.h"

namespace ferry {
namespace {

using Level = ConfigFinding::Level;

class Checker {
 public:
  explicit Checker(std::vector<ConfigFinding>* out) : out_(out) {}

  void Add(Level level, std::string key, std::string message) {
    out_->push_back({level, std::move(key), std::move(message)});
  }

  // ferryd makes only the last level of storage.path (one mkdir, as LMDB's directory), so its parent must
  // exist; the nearest existing ancestor is named either way, as that is where the operator has to look.
  void StoragePath(const std::string& path) {
    const std::string key = "storage.path";
    if (path.empty()) return Add(Level::kError, key, "is empty");
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return Add(Level::kError, key, path + " exists and is not a directory");
      if (::access(path.c_str(), W_OK | X_OK) != 0) NotWritable(path + " is a directory");
      return;
    }
    // ENOTDIR: a file where a parent directory should be; found as the nearest existing parent below.
    if (errno != ENOENT && errno != ENOTDIR) return Add(Level::kError, key, path + ": " + std::strerror(errno));
    std::string parent = Parent(path);
    std::string existing = parent;
    while (::stat(existing.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR) && existing != "/" &&
           existing != ".")
      existing = Parent(existing);
    if (::stat(existing.c_str(), &st) != 0)
      return Add(Level::kError, key, path + ": its parent " + existing + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode))
      return Add(Level::kError, key, path + " does not exist, and its nearest existing parent " + existing +
                                         " is not a directory");
    if (existing != parent) {
      return Add(Level::kError, key, path + " does not exist, nor does " + parent + " (ferryd creates only the last "
                                         "level); the nearest existing parent is " + existing +
                                         ": create the directories first (mkdir -p " + parent + ")");
    }
    if (::access(existing.c_str(), W_OK | X_OK) != 0) {
      return NotWritable(path + " does not exist, and its parent " + existing + " is a directory");
    }
    Add(Level::kNote, key, path + " does not exist; ferryd will create it in " + existing + " (a writable directory)");
  }

  // Whether the directory is writable depends on who runs ferryd: root sees the truth (a read-only file
  // system), anyone else may be checking a directory that belongs to ferryd's own user (systemd's
  // DynamicUser= and StateDirectory=), so for them it is a warning.
  void NotWritable(const std::string& what) {
    const int err = errno;
    const uid_t uid = ::geteuid();
    std::string msg = what + " that uid " + std::to_string(uid) + " cannot write (" + std::strerror(err) + ")";
    if (uid == 0) return Add(Level::kError, "storage.path", msg);
    Add(Level::kWarning, "storage.path", msg + "; fine if ferryd runs as a user that can (systemd: StateDirectory=)");
  }

  // A file ferryd opens at start: it must be a readable regular file.
  void ReadableFile(const std::string& key, const std::string& path) {
    if (path.empty()) return;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return Add(Level::kError, key, path + ": cannot be read: " + std::strerror(errno));
    struct stat st {};
    bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    ::close(fd);
    if (!regular) Add(Level::kError, key, path + " is not a regular file");
  }

  // host:port ferryd binds. The host must be an address or a name this machine resolves.
  void ListenAddress(const std::string& key, const std::string& address) {
    std::string host, port;
    if (!SplitHostPort(address, &host, &port)) return Add(Level::kError, key, "\"" + address + "\" is not host:port");
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return Add(Level::kError, key, "\"" + address + "\": " + ::gai_strerror(rc));
    ::freeaddrinfo(res);
    auto [it, inserted] = ports_.emplace(port, key);
    if (!inserted && port != "0") Add(Level::kError, key, "port " + port + " is also " + it->second + "'s");
  }

  // A broker URI ferryd connects to. A name that does not resolve now is a warning only: a gateway's DNS may
  // come and go, and ferryd retries.
  void BrokerAddress(const std::string& key, const std::string& uri) {
    auto scheme = uri.find("://");
    std::string rest = scheme == std::string::npos ? uri : uri.substr(scheme + 3);
    std::string host = rest, port = "1883";
    if (rest.find(':') != std::string::npos && !SplitHostPort(rest, &host, &port))
      return Add(Level::kError, key, "\"" + uri + "\": the port is not a number from 1 to 65535");
    if (host.empty()) return Add(Level::kError, key, "\"" + uri + "\" names no host");
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      return Add(Level::kWarning, key, "host \"" + host + "\" does not resolve here now (" + ::gai_strerror(rc) +
                                           "); ferryd keeps retrying");
    }
    ::freeaddrinfo(res);
  }

 private:
  static std::string Parent(const std::string& path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    auto slash = p.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return p.substr(0, slash);
  }

  // "host:port", "[v6]:port", ":port". Port: digits, 0..65535.
  static bool SplitHostPort(const std::string& s, std::string* host, std::string* port) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || colon + 1 == s.size()) return false;
    *host = s.substr(0, colon);
    *port = s.substr(colon + 1);
    if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
    if (port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos) return false;
    return std::stoi(*port) <= 65535;
  }

  std::vector<ConfigFinding>* out_;
  std::map<std::string, std::string> ports_;  // port -> the key that binds it
};

}  // namespace

std::vector<ConfigFinding> CheckConfigEnvironment(const Config& c) {
  std::vector<ConfigFinding> out;
  Checker check(&out);

  if (c.streams.empty())
    check.Add(Level::kError, "stream", "no [[stream]] is declared: ferryd would have nowhere to store events");
  if (c.routes.empty()) {
    check.Add(Level::kError, "route",
              "no [[route]] is declared: ferryd would map no topic to a stream (every message would be unrouted)");
  }
  if (c.uplinks.empty())
    check.Add(Level::kWarning, "uplink", "no [[uplink]] is declared: events are stored but never forwarded");

  check.StoragePath(c.storage.path);

  const bool subscribe = c.ingest.mode != IngestMode::kListen;
  const bool listen = c.ingest.mode != IngestMode::kSubscribe;
  if (listen) {
    check.ListenAddress("ingest.listen.address", c.ingest.listen.address);
    check.ReadableFile("ingest.listen.password_file", c.ingest.listen.password_file);
    if (c.ingest.listen.tls_enabled) {
      check.ReadableFile("ingest.listen.tls.cert_file", c.ingest.listen.tls_cert_file);
      check.ReadableFile("ingest.listen.tls.key_file", c.ingest.listen.tls_key_file);
      check.ReadableFile("ingest.listen.tls.ca_file", c.ingest.listen.tls_ca_file);
    }
  }
  if (subscribe) {
    check.BrokerAddress("ingest.address", c.ingest.address);
    if (c.ingest.tls.enabled) {
      check.ReadableFile("ingest.tls.ca_file", c.ingest.tls.ca_file);
      check.ReadableFile("ingest.tls.cert_file", c.ingest.tls.cert_file);
      check.ReadableFile("ingest.tls.key_file", c.ingest.tls.key_file);
    }
  }
  if (c.metrics.enabled) check.ListenAddress("metrics.listen", c.metrics.listen);
  if (c.console.enabled) {
    check.ListenAddress("console.listen", c.console.listen);
    if (!c.console.token_file.empty()) check.ReadableFile("console.token_file", c.console.token_file);
    if (!c.console.tls_cert_file.empty()) check.ReadableFile("console.tls_cert_file", c.console.tls_cert_file);
    if (!c.console.tls_key_file.empty()) check.ReadableFile("console.tls_key_file", c.console.tls_key_file);
    if (!c.console.tls_ca_file.empty()) check.ReadableFile("console.tls_ca_file", c.console.tls_ca_file);
  }

  for (size_t i = 0; i < c.routes.size(); ++i) {
    const RouteConfig& r = c.routes[i];
    const std::string path = "route[" + std::to_string(i) + "]";
    auto names = TemplatePlaceholders(r.stream);
    if (names && !names->empty()) {
      check.Add(Level::kNote, path + ".stream",
                "\"" + r.stream + "\" is a template: the streams it names are checked at run time (a message for an "
                "undeclared one is dead-lettered, reason undeclared_stream)");
    }
    if (!r.id_json_field.empty() || !r.id_user_property.empty()) {
      check.Add(Level::kNote, path + (r.id_user_property.empty() ? ".id_json_field" : ".id_user_property"),
                "checked at run time: events that carry no id are counted in ferry_ingest_missing_id_total{stream} "
                "and logged once per route");
    }
  }

  for (size_t i = 0; i < c.uplinks.size(); ++i) {
    const UplinkConfig& u = c.uplinks[i];
    const std::string path = "uplink[" + std::to_string(i) + "]";
    if (u.type == UplinkType::kMqtt) check.BrokerAddress(path + ".address", u.address);
    if (u.tls.enabled) {
      check.ReadableFile(path + ".tls.ca_file", u.tls.ca_file);
      check.ReadableFile(path + ".tls.cert_file", u.tls.cert_file);
      check.ReadableFile(path + ".tls.key_file", u.tls.key_file);
    }
    check.ReadableFile(path + ".hmac_key_file", u.hmac_key_file);
  }
  for (size_t i = 0; i < c.downlinks.size(); ++i) {
    const DownlinkConfig& d = c.downlinks[i];
    const std::string path = "downlink[" + std::to_string(i) + "]";
    if (d.tls.enabled) {
      check.ReadableFile(path + ".tls.ca_file", d.tls.ca_file);
      check.ReadableFile(path + ".tls.cert_file", d.tls.cert_file);
      check.ReadableFile(path + ".tls.key_file", d.tls.key_file);
    }
  }
  return out;
}

std::string FormatFinding(const ConfigFinding& f) {
  const char* level = f.level == ConfigFinding::Level::kError     ? "error"
                      : f.level == ConfigFinding::Level::kWarning ? "warning"
                                                                  : "note";
  return std::string(level) + ": " + f.key + ": " + f.message;
}

}  // namespace ferry
