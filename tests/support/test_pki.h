// A throwaway PKI for the TLS tests, made with the openssl command (EC prime256v1, valid two days), in `dir`:
//   ca.pem / ca.key              the test CA
//   other-ca.pem / other-ca.key  a second CA, that signed only rogue.pem
//   server.pem / server.key      signed by the CA, CN and IP SAN 127.0.0.1
//   client.pem / client.key      signed by the CA, subject `client_subject`
//   rogue.pem / rogue.key        the same subject, signed by the other CA
//   garbage.pem                  text that is not a certificate
// Files are world-readable: Mosquitto, started as root, reads them after dropping to its own user. openssl's
// output goes to pki.log in `dir`. Returns false if openssl failed.
#pragma once

#include <cstdlib>
#include <string>

namespace ferry::test {

inline bool MakeTestPki(const std::string& dir, const std::string& client_subject = "/CN=ferryd-it") {
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  const std::string script =
      "set -e; cd '" + dir + "'; exec 2>pki.log >&2; "
      "openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=ferry-test-ca; "
      "openssl req -x509" + ec + "-keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=ferry-other-ca; "
      "openssl req" + ec + "-keyout server.key -out server.csr -subj /CN=127.0.0.1; "
      "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      "-extfile server.ext; "
      "openssl req" + ec + "-keyout client.key -out client.csr -subj " + client_subject + "; "
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2; "
      "openssl req" + ec + "-keyout rogue.key -out rogue.csr -subj " + client_subject + "; "
      "openssl x509 -req -in rogue.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out rogue.pem "
      "-days 2; "
      "printf 'this is not a certificate\\n' > garbage.pem; "
      "chmod 0755 .; chmod 0644 *";
  return std::system(("/bin/sh -c \"" + script + "\"").c_str()) == 0;
}

}  // namespace ferry::test
