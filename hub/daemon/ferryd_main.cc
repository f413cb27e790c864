// ferryd: the Ferry daemon. See docs/config.md for the configuration and docs/operations.md for running it.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <CLI/CLI.hpp>

#include "ferry/config.h"
#include "ferry/daemon.h"
#include "ferry/log.h"
#include "ferry/pipeline.h"
#include "ferry/version.h"

namespace {

// An empty gateway.id means this host's name: unique per gateway without per-device config files.
void DefaultGatewayId(ferry::Config& config) {
  if (!config.gateway.id.empty()) return;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "gateway");
  config.gateway.id = host;
}

int CheckConfig(const std::string& path) {
  auto config = ferry::LoadConfigFile(path);
  if (!config) {
    std::fprintf(stderr, "ferryd: %s\n", config.error().message.c_str());
    return 1;
  }
  auto router = ferry::IngestRouter::Create(*config);
  if (!router) {
    std::fprintf(stderr, "ferryd: %s: %s\n", path.c_str(), router.error().message.c_str());
    return 1;
  }
  // Every pipeline's Lua compiles (the error names the pipeline and the step), as at start.
  for (const auto& pc : config->pipelines) {
    auto p = ferry::Pipeline::Compile(pc);
    if (!p) {
      std::fprintf(stderr, "ferryd: %s: %s\n", path.c_str(), p.error().message.c_str());
      return 1;
    }
  }
  // What the text cannot show: paths, files, addresses, a config that would do nothing. Nothing is created.
  size_t errors = 0;
  for (const auto& f : ferry::CheckConfigEnvironment(*config)) {
    const bool error = f.level == ferry::ConfigFinding::Level::kError;
    errors += error ? 1 : 0;
    std::fprintf(error ? stderr : stdout, "%s: %s\n", path.c_str(), ferry::FormatFinding(f).c_str());
  }
  if (errors > 0) {
    std::fprintf(stderr, "%s: %zu error(s): ferryd would not start or would do nothing\n", path.c_str(), errors);
    return 1;
  }
  std::printf("%s: ok (%zu routes, %zu streams, %zu uplinks)\n", path.c_str(), config->routes.size(),
              config->streams.size(), config->uplinks.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ferryd: store-and-forward event hub for edge gateways"};
  bool version = false;
  std::string config_path = "/etc/ferry/ferry.toml";
  std::string check_path;
  app.add_flag("--version", version, "Print the version and exit");
  app.add_option("-c,--config", config_path, "Configuration file")->capture_default_str();
  app.add_option("--check-config", check_path, "Check a configuration file and exit (0: valid)");
  bool reference = false;
  app.add_flag("--config-reference", reference, "Print the reference of every configuration key (markdown)");
  CLI11_PARSE(app, argc, argv);
  if (reference) {
    std::fputs(ferry::RenderConfigDocs().c_str(), stdout);
    return 0;
  }
  if (version) {
    std::printf("ferryd %s (board %s, %s)\n", FERRY_VERSION, FERRY_BOARD, FERRY_SYSTEM_PROCESSOR);
    return 0;
  }
  if (!check_path.empty()) return CheckConfig(check_path);

  auto config = ferry::LoadConfigFile(config_path);
  if (!config) {
    std::fprintf(stderr, "ferryd: %s\n", config.error().message.c_str());
    return 1;
  }
  DefaultGatewayId(*config);

  // A handful of threads (Paho's, the writer, the uplinks) would each get a malloc arena of their own; two keep
  // the heap small on a 256 MB board at no measurable cost.
  mallopt(M_ARENA_MAX, 2);
  // A fixed mmap threshold: blocks from 64 KiB up (an uplink batch's body, its compressed copy) are mapped and
  // unmapped on their own instead of glibc raising the threshold after the first free and parking them in the
  // arenas, where they would hold the heap several MB above its working size while a backlog drains. Trim the
  // heap's top once 256 KiB are free there.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);

  // Signals are taken synchronously by the main loop (sigtimedwait): block them before any thread starts so
  // every thread inherits the mask and no handler runs at an arbitrary point.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ferry::Daemon daemon;
  if (auto st = daemon.Open(*config); !st) {
    std::fprintf(stderr, "ferryd: %s\n", st.error().ToString().c_str());
    return 1;
  }
  if (auto st = daemon.Start(); !st) {
    std::fprintf(stderr, "ferryd: %s\n", st.error().ToString().c_str());
    return 1;
  }
  auto last_trim = std::chrono::steady_clock::now();
  for (;;) {
    daemon.Step();
    if (std::chrono::steady_clock::now() - last_trim >= std::chrono::seconds(2)) {
      // Hand freed heap pages back to the kernel: batches come and go, and on a small board the high-water
      // mark of a burst should not stay resident.
      malloc_trim(0);
      last_trim = std::chrono::steady_clock::now();
    }
    timespec wait{0, 10'000'000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig < 0) continue;  // EAGAIN (timeout) or EINTR
    if (sig == SIGHUP) {
      auto next = ferry::LoadConfigFile(config_path);
      if (!next) {
        FERRY_LOG_ERROR("reload: %s; keeping the running configuration", next.error().message.c_str());
        daemon.metrics().GetCounter("ferry_config_reloads_total", ferry::FerryMetric("ferry_config_reloads_total").help,
                                    {{"result", "error"}}).Inc();
        continue;
      }
      DefaultGatewayId(*next);
      auto plan = daemon.Reload(*next);
      if (!plan) {
        FERRY_LOG_ERROR("reload: %s", plan.error().ToString().c_str());
        daemon.metrics().GetCounter("ferry_config_reloads_total", ferry::FerryMetric("ferry_config_reloads_total").help,
                                    {{"result", "error"}}).Inc();
        continue;
      }
      for (const auto& k : plan->reload) FERRY_LOG_INFO("reload: applied %s", k.c_str());
      for (const auto& k : plan->restart) FERRY_LOG_WARN("reload: %s changed; it takes effect at restart", k.c_str());
      daemon.metrics().GetCounter("ferry_config_reloads_total", ferry::FerryMetric("ferry_config_reloads_total").help,
                                  {{"result", "ok"}}).Inc();
      continue;
    }
    FERRY_LOG_INFO("signal %d: stopping", sig);
    break;
  }
  daemon.Stop();
  // Everything is committed and both MQTT clients are disconnected. Leave without running destructors: Paho C
  // tears down its global state when its last client is destroyed and can race its own threads doing so (a
  // rare SIGSEGV at exit, caught in a core dump under load), and nothing left needs releasing that process exit
  // does not release. The log needs no close: every commit is already durable.
  std::fflush(nullptr);
  std::_Exit(0);
}
