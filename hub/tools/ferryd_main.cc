// ferryd: the Ferry daemon.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "ferry/version.h"

int main(int argc, char** argv) {
  CLI::App app{"ferryd: store-and-forward event hub for edge gateways"};
  bool version = false;
  std::string config = "/etc/ferry/ferry.toml";
  app.add_flag("--version", version, "Print the version and exit");
  app.add_option("-c,--config", config, "Configuration file");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("ferryd %s (board %s, %s)\n", FERRY_VERSION, FERRY_BOARD, FERRY_SYSTEM_PROCESSOR);
    return 0;
  }
  std::fprintf(stderr, "ferryd: config %s\n", config.c_str());
  return 0;
}
