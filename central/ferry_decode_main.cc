// ferry-decode: verifies and prints a batched uplink payload (FRYB, docs/wire.md).
//
//   ferry-decode batch.bin                 one CloudEvents JSON object per line
//   ferry-decode --summary < batch.bin     the header only (after verification)
//   ferry-decode --hmac-key-file key batch.bin
//
// Exit status: 0 verified, 1 the payload is damaged or refused, 2 usage or I/O error.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "ferry/wire.h"

namespace {

bool ReadAll(const std::string& path, std::string* out) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    *out = ss.str();
    return !std::cin.bad();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferry-decode: verify and print a Ferry batched uplink payload (FRYB)"};
  std::string input = "-";
  std::string key_file;
  bool summary = false;
  app.add_option("file", input, "Payload file; - or nothing reads stdin");
  app.add_option("--hmac-key-file", key_file,
                 "Key file for HMAC-signed batches (its bytes, trailing newlines removed, as ferryd reads it)");
  app.add_flag("-s,--summary", summary, "Print the header instead of the events");
  CLI11_PARSE(app, argc, argv);

  std::string key;
  if (!key_file.empty()) {
    auto k = ferry::ReadHmacKeyFile(key_file);
    if (!k) {
      std::fprintf(stderr, "ferry-decode: %s\n", k.error().message.c_str());
      return 2;
    }
    key = std::move(*k);
  }
  std::string payload;
  if (!ReadAll(input, &payload)) {
    std::fprintf(stderr, "ferry-decode: cannot read %s\n", input.c_str());
    return 2;
  }
  auto decoded = ferry::DecodeBatch(payload, key);
  if (!decoded) {
    std::fprintf(stderr, "ferry-decode: %s\n", decoded.error().ToString().c_str());
    return 1;
  }
  const ferry::BatchHeader& h = decoded->header;
  if (summary) {
    std::printf("format: FRYB v%u\ngateway: %s\nstream: %s\nfirst_seq: %llu\nlast_seq: %llu\ncount: %u\n"
                "body_bytes: %u\ncompressed_bytes: %u\ndigest: %s %s (verified)\n",
                static_cast<unsigned>(h.version), h.gateway.c_str(), h.stream.c_str(),
                static_cast<unsigned long long>(h.first_seq.value), static_cast<unsigned long long>(h.last_seq.value),
                h.count, h.body_bytes, h.compressed_bytes, h.hmac() ? "hmac-sha256" : "sha256",
                Hex(h.digest.data(), h.digest.size()).c_str());
    return 0;
  }
  for (const auto& e : decoded->batch.events) std::printf("%s\n", ferry::EventToJson(e).c_str());
  return 0;
}
