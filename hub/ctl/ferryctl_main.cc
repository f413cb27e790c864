// ferryctl: status, tail and replay on a gateway's event log (docs/ferryctl.md). The commands are in
// hub/ctl/src/ctl.cc; this file parses the command line, opens the log and turns SIGINT into a stop.
//
// Exit status: 0 ok, 1 runtime error (no log, unknown stream/uplink, corrupt record), 2 usage error.
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdint>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/password_file.h"

namespace {

volatile sig_atomic_t g_stop = 0;  // set by SIGINT/SIGTERM; the only global, as a signal handler needs one

void OnSignal(int) { g_stop = 1; }

void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: poll() returns early with EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool WaitOrStop(std::chrono::milliseconds d) {
  if (g_stop != 0) return false;
  ::poll(nullptr, 0, static_cast<int>(d.count()));
  return g_stop == 0;
}

// "5s", "500ms", "1m": the config's duration syntax.
bool ParseDurationArg(const std::string& name, const std::string& text, std::chrono::nanoseconds* out) {
  auto d = ferry::ParseDuration(text);
  if (!d) {
    std::cerr << "ferryctl: " << name << " " << text << ": " << d.error().message << "\n";
    return false;
  }
  *out = *d;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ctl = ferry::ctl;
  CLI::App app{"ferryctl: inspect a Ferry gateway's event log, tail its streams, replay an uplink"};
  app.require_subcommand(1);
  app.fallthrough();  // -c / --log may follow the subcommand

  std::string config_path = ctl::kDefaultConfigPath;
  std::string log_path;
  CLI::Option* config_opt =
      app.add_option("-c,--config", config_path, "ferryd's config (storage.path, uplink names)")->capture_default_str();
  app.add_option("--log", log_path, "The event log directory; overrides storage.path (no config needed)");

  CLI::App* status = app.add_subcommand("status", "Log usage, streams, cursors and uplink backlogs (read-only)");
  ctl::StatusOptions status_opts;
  status->add_flag("--json", status_opts.json, "One JSON object instead of tables");

  CLI::App* tail = app.add_subcommand("tail", "Print records of a stream (read-only)");
  ctl::TailOptions tail_opts;
  uint64_t tail_n = 0;
  uint64_t tail_count = 0;
  std::string tail_max_wait;
  tail->add_option("stream", tail_opts.stream, "Stream name")->required();
  tail->add_option("--from", tail_opts.from, "Start at a seq number or an RFC 3339 time (ingest time)");
  CLI::Option* n_opt = tail->add_option("-n", tail_n, "Records in the first batch (default 10; all with --from)");
  tail->add_flag("-f,--follow", tail_opts.follow, "Keep polling for new records until SIGINT");
  tail->add_flag("--json", tail_opts.json, "CloudEvents JSON, one object per line, as an uplink sends it");
  CLI::Option* gateway_opt =
      tail->add_option("--gateway", tail_opts.gateway, "With --json: the gateway id (default: the config's gateway.id)");
  tail->add_flag("--full", tail_opts.full, "Do not truncate payloads");
  tail->add_option("--width", tail_opts.payload_width, "Payload characters shown without --full")
      ->capture_default_str();
  CLI::Option* count_opt = tail->add_option("--count", tail_count, "Stop after printing this many records");
  CLI::Option* max_wait_opt = tail->add_option("--max-wait", tail_max_wait, "With --follow: stop after this long (30s)");

  CLI::App* poisoned = app.add_subcommand("poisoned", "Events uplinks set aside as undeliverable (read-only)");
  ctl::PoisonedOptions poisoned_opts;
  poisoned->add_option("uplink", poisoned_opts.uplink, "Only this uplink");
  poisoned->add_flag("--json", poisoned_opts.json, "One JSON object per line");
  CLI::App* pipelines = app.add_subcommand("pipelines", "Each pipeline's cursors, lag and failed events (read-only)");
  ctl::PipelinesOptions pipelines_opts;
  pipelines->add_flag("--json", pipelines_opts.json, "One JSON object per pipeline and input");

  CLI::App* pipeline = app.add_subcommand("pipeline", "Change one pipeline (writes to the log)");
  pipeline->require_subcommand(1);
  CLI::App* pipeline_reset =
      pipeline->add_subcommand("reset", "Reprocess from a point: move the pipeline's cursor, clear its window state");
  ctl::PipelineResetOptions reset_opts;
  pipeline_reset->add_option("name", reset_opts.pipeline, "Pipeline name (from the config)")->required();
  pipeline_reset->add_option("--from", reset_opts.from, "Seq number or RFC 3339 time (ingest time)")->required();

  CLI::App* downlink = app.add_subcommand("downlink", "Change one downlink (writes to the log)");
  downlink->require_subcommand(1);
  CLI::App* downlink_reset = downlink->add_subcommand(
      "reset", "Fetch the downlink's whole table again and delete the rows the source no longer has");
  ctl::DownlinkResetOptions downlink_reset_opts;
  downlink_reset->add_option("name", downlink_reset_opts.downlink, "Downlink name (from the config)")->required();

  CLI::App* table = app.add_subcommand("table", "A table stream's rows, or one key's, and its downlinks' positions "
                                                "(read-only)");
  ctl::TableOptions table_opts;
  table->add_option("table", table_opts.table, "Table stream name")->required();
  table->add_option("key", table_opts.key, "Only this key's row");
  table->add_flag("--json", table_opts.json, "One JSON object per row: key, seq, time, value");
  table->add_option("--width", table_opts.width, "Cut longer values (not with --json)")->capture_default_str();
  CLI::App* sql = app.add_subcommand("sql", "Query the log with SQLite: a read-only table per stream");
  ctl::SqlOptions sql_opts;
  std::string sql_format = "table", sql_timeout = "30s";
  sql->add_option("query", sql_opts.query, "One SELECT statement")->required();
  sql->add_option("--format", sql_format, "table, csv or json (one object per line)")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  sql->add_option("--max-rows", sql_opts.max_rows, "Print at most this many rows")->capture_default_str();
  sql->add_option("--width", sql_opts.max_width, "table: cut longer cells")->capture_default_str();
  sql->add_option("--timeout", sql_timeout, "Stop the query after this long")->capture_default_str();
  CLI::App* replay = app.add_subcommand("replay", "Ask ferryd to re-send a stream to an uplink from a seq or time");
  ctl::ReplayOptions replay_opts;
  std::string replay_wait = "5s";
  replay->add_option("uplink", replay_opts.uplink, "Uplink name (from the config)")->required();
  replay->add_option("stream", replay_opts.stream, "Stream name")->required();
  replay->add_option("--from", replay_opts.from, "Seq number or RFC 3339 time to re-send from")->required();
  replay->add_flag("-y,--yes", replay_opts.yes, "Do not ask for confirmation");
  replay->add_option("--wait", replay_wait, "How long to wait for ferryd to apply the request")->capture_default_str();

  CLI::App* passwd = app.add_subcommand(
      "passwd", "Print a line for ingest.listen.password_file (the password is read from stdin, not echoed)");
  std::string passwd_user;
  uint32_t passwd_iterations = ferry::PasswordFile::kDefaultIterations;
  passwd->add_option("user", passwd_user, "The device's user name")->required();
  passwd->add_option("--iterations", passwd_iterations, "PBKDF2 iterations")
      ->capture_default_str()
      ->check(CLI::Range(1000u, 10'000'000u));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? ctl::kExitOk : ctl::kExitUsage;  // --help is a ParseError with code 0
  }

  if (n_opt->count() > 0) tail_opts.limit = tail_n;
  if (count_opt->count() > 0) tail_opts.max_count = tail_count;
  if (max_wait_opt->count() > 0) {
    std::chrono::nanoseconds d{};
    if (!ParseDurationArg("--max-wait", tail_max_wait, &d)) return ctl::kExitUsage;
    tail_opts.max_wait = d;
  }
  if (!ParseDurationArg("--wait", replay_wait, &replay_opts.wait)) return ctl::kExitUsage;

  if (passwd->parsed()) {
    // No echo when a person types it; a script may pipe it in.
    termios saved{};
    const bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
      std::cerr << "password for " << passwd_user << ": ";
    }
    std::string password;
    std::getline(std::cin, password);
    if (tty) {
      tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      std::cerr << "\n";
    }
    if (password.empty()) {
      std::cerr << "ferryctl passwd: an empty password\n";
      return ctl::kExitUsage;
    }
    auto line = ferry::PasswordFile::MakeEntry(passwd_user, password, passwd_iterations);
    if (!line) {
      std::cerr << "ferryctl passwd: " << line.error().message << "\n";
      return ctl::kExitUsage;
    }
    std::cout << *line << "\n";
    return ctl::kExitOk;
  }

  // replay must know the uplinks: it always reads the config, --log only moves the log.
  const bool need_config = config_opt->count() > 0 || replay->parsed() || pipelines->parsed() || pipeline->parsed() ||
                           downlink->parsed();
  auto target = ctl::ResolveTarget(config_path, need_config, log_path);
  if (!target) {
    std::cerr << "ferryctl: " << target.error().message
              << (replay->parsed() ? " (replay reads the config for the uplinks; pass -c FILE)" : "") << "\n";
    return ctl::kExitRuntime;
  }

  InstallSignals();
  ctl::CtlEnv env;
  env.wait = WaitOrStop;

  if (replay->parsed()) {
    auto log = ctl::OpenReadWrite(target->log_path);
    if (!log) {
      std::cerr << "ferryctl: " << log.error().message << "\n";
      return ctl::kExitRuntime;
    }
    return ctl::RunReplay(**log, *target->config, replay_opts, env, std::cin, std::cout, std::cerr);
  }
  if (pipeline->parsed()) {
    auto log = ctl::OpenReadWrite(target->log_path);
    if (!log) {
      std::cerr << "ferryctl: " << log.error().message << "\n";
      return ctl::kExitRuntime;
    }
    return ctl::RunPipelineReset(**log, *target->config, reset_opts, std::cout, std::cerr);
  }
  if (downlink->parsed()) {
    auto log = ctl::OpenReadWrite(target->log_path);
    if (!log) {
      std::cerr << "ferryctl: " << log.error().message << "\n";
      return ctl::kExitRuntime;
    }
    return ctl::RunDownlinkReset(**log, *target->config, downlink_reset_opts, std::cout, std::cerr);
  }
  auto log = ctl::OpenReadOnly(target->log_path);
  if (!log) {
    std::cerr << "ferryctl: " << log.error().message << "\n";
    return ctl::kExitRuntime;
  }
  if (status->parsed()) {
    return ctl::RunStatus(**log, target->config ? &*target->config : nullptr, status_opts, env, std::cout, std::cerr);
  }
  if (poisoned->parsed()) return ctl::RunPoisoned(**log, poisoned_opts, std::cout, std::cerr);
  if (table->parsed())
    return ctl::RunTable(**log, target->config ? &*target->config : nullptr, table_opts, std::cout, std::cerr);
  if (pipelines->parsed()) return ctl::RunPipelines(**log, *target->config, pipelines_opts, std::cout, std::cerr);
  if (sql->parsed()) {
    sql_opts.format = sql_format == "csv"    ? ctl::SqlOptions::Format::kCsv
                      : sql_format == "json" ? ctl::SqlOptions::Format::kJson
                                             : ctl::SqlOptions::Format::kTable;
    std::chrono::nanoseconds d{};
    if (!ParseDurationArg("--timeout", sql_timeout, &d)) return ctl::kExitUsage;
    sql_opts.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(d);
    return ctl::RunSql(**log, sql_opts, env, std::cout, std::cerr);
  }
  if (gateway_opt->count() == 0 && target->config) tail_opts.gateway = target->config->gateway.id;
  return ctl::RunTail(**log, tail_opts, env, std::cout, std::cerr);
}
