// ferry/password_file.h: device logins for the ingest listener (ingest.listen.password_file).
//
// One line per user: `user:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX` (PBKDF2-HMAC-SHA256, mbedTLS; the hash
// is 32 bytes). `#` starts a comment line; blank lines are skipped. `ferryctl passwd USER` prints a line.
// PBKDF2 makes a stolen file expensive to crack, and makes each check cost milliseconds on a board: a user's
// last accepted password is remembered as a SHA-256, so a reconnect storm does not redo PBKDF2 per device.
//
// Threads: Check is not thread-safe (the listener's loop thread calls it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ferry/error.h"

namespace ferry {

class PasswordFile {
 public:
  PasswordFile() = default;  // disabled: Check is never called
  // Errors: NotFound / IoError (unreadable file), InvalidArgument naming the line ("file:3: ...").
  static Result<PasswordFile> Load(const std::string& path);
  bool enabled() const { return enabled_; }
  size_t users() const { return users_.size(); }

  // True when `user` is listed and `password` matches. Compares in constant time.
  bool Check(std::string_view user, std::string_view password);

  // A line for the file (random 16-byte salt from /dev/urandom). Errors: IoError (no randomness),
  // InvalidArgument (a user name with ':' or a newline, or empty).
  static Result<std::string> MakeEntry(std::string_view user, std::string_view password,
                                       uint32_t iterations = kDefaultIterations);
  static constexpr uint32_t kDefaultIterations = 10'000;

 private:
  struct User {
    uint32_t iterations = 0;
    std::string salt;          // raw bytes
    std::string hash;          // raw 32 bytes
    std::string verified_sha;  // SHA-256 of the last password that passed, or empty
  };
  bool enabled_ = false;
  std::unordered_map<std::string, User> users_;
};

}  // namespace ferry
