#include "ferry/password_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>

namespace ferry {
namespace {

constexpr size_t kHashBytes = 32;
constexpr char kScheme[] = "pbkdf2-sha256";

std::string Hex(const std::string& raw) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool Unhex(std::string_view hex, std::string* raw) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  raw->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    raw->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

bool Pbkdf2(std::string_view password, const std::string& salt, uint32_t iterations, std::string* out) {
  mbedtls_md_context_t ctx;
  mbedtls_md_init(&ctx);
  bool ok = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) == 0;
  unsigned char key[kHashBytes];
  ok = ok && mbedtls_pkcs5_pbkdf2_hmac(&ctx, reinterpret_cast<const unsigned char*>(password.data()),
                                       password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                                       salt.size(), iterations, kHashBytes, key) == 0;
  mbedtls_md_free(&ctx);
  if (ok) out->assign(reinterpret_cast<const char*>(key), kHashBytes);
  return ok;
}

std::string Sha256(std::string_view salt, std::string_view data) {
  unsigned char digest[32];
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  mbedtls_sha256_starts_ret(&ctx, 0);
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(salt.data()), salt.size());
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  mbedtls_sha256_finish_ret(&ctx, digest);
  mbedtls_sha256_free(&ctx);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

bool SameBytes(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::vector<std::string_view> Split(std::string_view line, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == sep) {
      parts.push_back(line.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

}  // namespace

Result<PasswordFile> PasswordFile::Load(const std::string& path) {
  PasswordFile pf;
  if (path.empty()) return pf;
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return NotFound("ingest.listen.password_file " + path + ": " + std::strerror(err));
    return IoError("ingest.listen.password_file " + path + ": " + std::strerror(err));
  }
  pf.enabled_ = true;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto where = path + ":" + std::to_string(n) + ": ";
    auto f = Split(line, ':');
    if (f.size() != 5 || f[0].empty())
      return InvalidArgument(where + "expected user:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX");
    if (f[1] != kScheme) return InvalidArgument(where + "unknown scheme \"" + std::string(f[1]) + "\"");
    User u;
    std::string iter(f[2]);
    char* end = nullptr;
    unsigned long it = std::strtoul(iter.c_str(), &end, 10);
    if (iter.empty() || *end != '\0' || it < 1000 || it > 10'000'000)
      return InvalidArgument(where + "iterations must be a number from 1000 to 10000000");
    u.iterations = static_cast<uint32_t>(it);
    if (!Unhex(f[3], &u.salt) || u.salt.size() < 8) return InvalidArgument(where + "salt must be 8 or more bytes in hex");
    if (!Unhex(f[4], &u.hash) || u.hash.size() != kHashBytes)
      return InvalidArgument(where + "hash must be 32 bytes in hex");
    if (!pf.users_.emplace(std::string(f[0]), std::move(u)).second)
      return InvalidArgument(where + "user \"" + std::string(f[0]) + "\" is listed twice");
  }
  return pf;
}

bool PasswordFile::Check(std::string_view user, std::string_view password) {
  auto it = users_.find(std::string(user));
  if (it == users_.end()) return false;
  User& u = it->second;
  std::string sha = Sha256(u.salt, password);
  if (!u.verified_sha.empty() && SameBytes(sha, u.verified_sha)) return true;
  std::string key;
  if (!Pbkdf2(password, u.salt, u.iterations, &key) || !SameBytes(key, u.hash)) return false;
  u.verified_sha = std::move(sha);
  return true;
}

Result<std::string> PasswordFile::MakeEntry(std::string_view user, std::string_view password, uint32_t iterations) {
  if (user.empty() || user.find_first_of(":\n\r") != std::string_view::npos)
    return InvalidArgument("a user name must be non-empty and hold no ':' or line break");
  std::ifstream rnd("/dev/urandom", std::ios::binary);
  std::string salt(16, '\0');
  if (!rnd.read(&salt[0], static_cast<std::streamsize>(salt.size()))) return IoError("/dev/urandom: cannot read");
  std::string key;
  if (!Pbkdf2(password, salt, iterations, &key)) return IoError("PBKDF2 failed");
  return std::string(user) + ":" + kScheme + ":" + std::to_string(iterations) + ":" + Hex(salt) + ":" + Hex(key);
}

}  // namespace ferry
