// sd_notify without libsystemd (see the header).
#include "ferry/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace ferry {

bool SdNotify(const char* state) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr || state == nullptr) return false;
  const size_t len = std::strlen(name);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // "@name" is Linux's abstract namespace: a leading NUL, no terminator, the length says where it ends.
  if (len < 2 || len >= sizeof(addr.sun_path) || (name[0] != '/' && name[0] != '@')) return false;
  std::memcpy(addr.sun_path, name, len);
  if (name[0] == '@') addr.sun_path[0] = '\0';
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  const size_t n = std::strlen(state);
  ssize_t sent = ::sendto(fd, state, n, MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), addr_len);
  ::close(fd);
  return sent == static_cast<ssize_t>(n);
}

}  // namespace ferry
