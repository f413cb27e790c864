// ferry/pipeline.h: one [[pipeline]]'s steps, compiled once, applied to one input record at a time.
//
// Stateless: Process() depends only on the record (and on a script's own globals, which a script should not
// use for results: after a crash the records of an uncommitted batch are processed again by a fresh state).
// The runner (ferry/pipeline_runner.h) makes the outputs durable with the input cursor, exactly once.
//
// An event is the record's JSON payload (an object) as a Lua table; the steps change it in order; what is
// left is serialised back to JSON (docs/processing.md "Values"). Every failure (the payload is not a JSON
// object, a Lua error, the instruction or memory limit, a schema version nobody upgrades, an output JSON
// cannot hold) fails that one record: Process returns the failing step and the reason, and the runner sends
// the record, unchanged, to the dead-letter stream.
//
// Threads: one thread at a time (the runner's).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/lua_sandbox.h"
#include "ferry/record.h"
#include "ferry/window.h"

namespace ferry {

// Header names on what a pipeline writes.
inline constexpr const char* kPipelineInputHeader = "ferry_input";  // "<stream>/<seq>" of the input record
inline constexpr const char* kPipelineDlqReason = "pipeline_step";  // ferry_dlq_reason of a failed record
inline constexpr const char* kPipelineDlqPipelineHeader = "ferry_dlq_pipeline";
inline constexpr const char* kPipelineDlqStepHeader = "ferry_dlq_step";

struct PipelineOutput {
  std::string stream;
  Event event;
};

struct PipelineFailure {
  std::string step;     // a step's name, or "input" (the payload) / "output" (serialisation)
  std::string message;  // Lua's message or ours
};

struct ProcessOutcome {
  std::vector<PipelineOutput> outputs;  // empty and no failure: the steps dropped the event
  std::optional<PipelineFailure> failure;
  // A window step: events it found late, threshold alerts raised, threshold evaluations that failed (by step).
  size_t late = 0;
  size_t alerts = 0;
  std::vector<std::string> threshold_failures;
  // Lookup steps that found no row (or no key) for the event, whatever their `missing` says.
  size_t lookup_misses = 0;
};

// What a lookup step asks: the current row (payload) of `table` for `key`, nullopt when there is none (never
// written, or deleted). An error fails the event (dead letter), as any step failure does.
using TableLookup = std::function<Result<std::optional<std::string>>(const std::string& table, const std::string& key)>;

// Where a windowed pipeline keeps its state, in the log's state table (docs/processing.md "Window state"):
// one record per key under the prefix, and one meta record.
std::string PipelineWindowStatePrefix(const std::string& pipeline);  // "pipeline/<name>/window/"
std::string PipelineWindowMetaKey(const std::string& pipeline);      // "pipeline/<name>/window-meta"
inline constexpr size_t kMaxWindowKeySize = 256;

class Pipeline {
 public:
  // Compiles every expression and script. Errors (InvalidArgument) name the pipeline and the step:
  // "pipeline hot: step 1:filter: where: [string ...]:1: unexpected symbol near ')'".
  static Result<std::unique_ptr<Pipeline>> Compile(const PipelineConfig& config);
  ~Pipeline();

  // A windowed pipeline changes its window state here (and only here or in Tick); its results, alerts and
  // late events are among the outputs. Processing time (idle timeouts) moves to the record's ingest time.
  ProcessOutcome Process(std::string_view input_stream, const RecordView& record);
  // Windowed pipelines: processing time moves to `now` (the runner's clock when it is caught up), closing the
  // windows of keys idle since. Outputs: their results and alerts. Others: nothing.
  ProcessOutcome Tick(TimeNs now);
  WindowOperator* window() { return window_.get(); }
  const WindowOperator* window() const { return window_.get(); }

  // The dead-letter event for a record a step failed on: the record's payload and attributes unchanged, the
  // reason in ferry_dlq_* headers (as ingest's dead letters, reason pipeline_step).
  Event DeadLetter(std::string_view input_stream, const RecordView& record, const PipelineFailure& failure) const;

  // Lookup steps read tables through `lookup` (the runner gives the log's LookupLatest). Without one, every
  // lookup fails the event.
  void SetTableLookup(TableLookup lookup) { lookup_ = std::move(lookup); }

  const PipelineConfig& config() const { return config_; }
  // "0:filter", or the step's own name; in step order.
  const std::vector<std::string>& step_names() const { return step_names_; }
  size_t lua_memory() const { return lua_->memory_in_use(); }

 private:
  struct Step;
  explicit Pipeline(const PipelineConfig& config);
  Status CompileStep(size_t index, const PipelineStepConfig& sc);
  ProcessOutcome ProcessSteps(std::string_view input_stream, const RecordView& record);
  // Applies step i to one event; appends what it becomes to *next (nothing: dropped).
  struct Work {
    LuaSandbox::Slot slot;
    int output;  // index into outputs_ (0: the pipeline's output)
  };
  Status Apply(const Step& step, Work work, std::vector<Work>* next);
  // Window results to events (and threshold alerts) in *outcome.
  void EmitResults(std::vector<WindowResult>* results, ProcessOutcome* outcome);
  std::string ResultJson(const WindowResult& r) const;

  PipelineConfig config_;
  TableLookup lookup_;
  size_t lookup_misses_ = 0;  // since Process began (Apply counts, Process reports)
  std::unique_ptr<LuaSandbox> lua_;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<std::string> step_names_;
  std::vector<std::string> outputs_;  // [0] = config.output, then the route steps' outputs

  // The window step, if any: steps_[window_index_] and the threshold steps after it.
  size_t window_index_ = SIZE_MAX;
  std::unique_ptr<WindowOperator> window_;
  std::vector<std::pair<std::string, double>> quantiles_;  // ("p95", 0.95)
  std::vector<std::string> aggregates_;                   // sum min max avg first last, in config order
  struct Threshold {
    std::string name;
    std::string output;
    LuaSandbox::Handle expr;
    uint32_t bit;
    const PipelineStepConfig* config = nullptr;  // table, into, missing: the window key's row from a table
    LuaSandbox::Handle default_expr{};           // missing = "default": the value `into` gets
  };
  // Puts `table`'s row for `key` into field `into` of `slot` (a JSON object row as a table, anything else as a
  // string). nullopt: no row (counted as a lookup miss); an error: the lookup or the Lua side failed.
  Result<bool> PutRow(const std::string& table, const std::string& key, LuaSandbox::Handle slot,
                      const std::string& into);
  std::vector<Threshold> thresholds_;
};

// Unit conversion of the `units` step. Units: C F K (temperature), Pa kPa bar psi (pressure). nullopt when the
// units are unknown or of different dimensions.
std::optional<double> ConvertUnits(double value, std::string_view from, std::string_view to);

}  // namespace ferry
