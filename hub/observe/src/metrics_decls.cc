// The metrics ferryd exposes: declared once here; docs/metrics.md lists them and a test checks it.
#include <cstdlib>

#include "ferry/log.h"
#include "ferry/metrics.h"

namespace ferry {

const std::vector<MetricDecl>& FerryMetricDecls() {
  using T = MetricType;
  static const std::vector<MetricDecl> kDecls = {
      // Ingest and streams
      {"ferry_stream_ingested_total", T::kCounter, "stream", "Events accepted from MQTT into the stream."},
      {"ferry_stream_stored_total", T::kCounter, "stream", "Events committed to the stream (durable)."},
      {"ferry_stream_evicted_total", T::kCounter, "stream,reason",
       "Events removed from the stream; reason is retention_age, retention_bytes, compaction or budget."},
      {"ferry_stream_rejected_total", T::kCounter, "stream",
       "Events refused because the disk budget or the map is full (full_policy reject_new, or nothing left to "
       "evict)."},
      {"ferry_stream_dead_lettered_total", T::kCounter, "stream,reason",
       "Messages sent to a dead-letter stream; stream is the intended stream (or the route's filter when "
       "it could not be resolved); reason is bad_topic, oversize, bad_content, too_deep, undeclared_stream, bad_event_id, bad_subject or poison."},
      {"ferry_stream_events", T::kGauge, "stream", "Events currently stored in the stream."},
      {"ferry_stream_bytes", T::kGauge, "stream", "Bytes currently stored in the stream."},
      {"ferry_ingest_messages_total", T::kCounter, "",
       "MQTT messages received: PUBLISHes on the ingest listener, and messages from the local broker."},
      {"ferry_ingest_duplicates_dropped_total", T::kCounter, "stream",
       "Messages dropped because their device event id was seen within ingest.dedupe_window."},
      {"ferry_ingest_unrouted_total", T::kCounter, "", "Messages whose topic matched no route."},
      {"ferry_ingest_missing_id_total", T::kCounter, "stream",
       "Events stored without a device event id although their route names one (id_json_field or "
       "id_user_property): not de-duplicated. Non-zero usually means a misspelt field; the first one per route "
       "is logged."},
      {"ferry_ingest_time_replaced_total", T::kCounter, "stream,reason",
       "Events whose producer time (a route's time_json_field / time_user_property) was replaced by the ingest "
       "time: reason unreadable, future (past ingest.max_future_skew) or before_floor (before ingest.time_floor). "
       "The event is stored with header ferry_time_replaced."},
      {"ferry_ingest_link_up", T::kGauge, "",
       "1 while ingest can take events: the listener is listening, or ferryd is subscribed to the local broker "
       "(mode subscribe), else 0."},
      {"ferry_ingest_listener_connections", T::kGauge, "", "Device connections open on the ingest listener."},
      {"ferry_ingest_listener_connections_total", T::kCounter, "", "Connections the ingest listener accepted."},
      {"ferry_ingest_listener_closed_total", T::kCounter, "reason",
       "Listener connections closed, by reason (docs/ingest-listener.md lists them)."},
      {"ferry_ingest_listener_refused_total", T::kCounter, "reason",
       "Requests the listener refused without closing: subscribe (SUBSCRIBE on an ingest endpoint), "
       "not_authorized (a subject other than the device's own under listen.topic_must_match_client)."},
      {"ferry_ingest_refused_total", T::kCounter, "reason",
       "QoS 1 messages not acknowledged as stored because the log could not store them: quota_exceeded (disk "
       "budget or map full) or unspecified_error (an I/O error). The device keeps them and re-sends."},
      {"ferry_ingest_reconnects_total", T::kCounter, "", "Reconnect attempts to the local broker."},
      // Storage
      {"ferry_storage_commit_seconds", T::kHistogram, "", "Latency of one group commit, fsync included."},
      {"ferry_storage_commit_events", T::kCounter, "", "Events written by group commits."},
      {"ferry_storage_commits_total", T::kCounter, "", "Group commits (write transactions) completed."},
      {"ferry_storage_append_errors_total", T::kCounter, "stream,error",
       "Events the log failed to store for a reason other than a full budget (those are "
       "ferry_stream_rejected_total); error is io_error or other. /healthz is 503 while a stream fails."},
      {"ferry_storage_map_used_bytes", T::kGauge, "", "Bytes of the LMDB map in use."},
      {"ferry_storage_map_size_bytes", T::kGauge, "", "Size of the LMDB map (the disk budget)."},
      // Uplinks
      {"ferry_uplink_link_up", T::kGauge, "uplink", "1 while the uplink is connected, else 0."},
      {"ferry_uplink_backlog_events", T::kGauge, "uplink,stream", "Stored events the uplink has not had acked."},
      {"ferry_uplink_oldest_unsent_age_seconds", T::kGauge, "uplink,stream",
       "Age (by ingest time) of the oldest event the uplink has not had acked; 0 when caught up."},
      {"ferry_uplink_inflight_messages", T::kGauge, "uplink", "Messages sent and not yet acknowledged."},
      {"ferry_uplink_sent_total", T::kCounter, "uplink,stream", "Events published by the uplink."},
      {"ferry_uplink_acked_total", T::kCounter, "uplink,stream",
       "Events acknowledged by the central broker (the cursor moved past them)."},
      {"ferry_uplink_bytes_total", T::kCounter, "uplink", "Payload bytes published (after compression)."},
      {"ferry_uplink_retries_total", T::kCounter, "uplink", "Publishes retried after a failure or timeout."},
      {"ferry_uplink_dropped_total", T::kCounter, "uplink,stream,reason",
       "Events the uplink gave up on (classified Drop), by reason."},
      {"ferry_uplink_poisoned_total", T::kCounter, "uplink,stream",
       "Events the uplink set aside so the stream behind them could move on: refused by the centre for good, or "
       "failed again and again while others passed. Each is recorded under the state key "
       "uplink/UPLINK/poisoned/STREAM/SEQ."},
      {"ferry_uplink_reconnects_total", T::kCounter, "uplink", "Reconnect attempts to the central broker."},
      // Process
      // Pipelines (docs/processing.md)
      {"ferry_pipeline_events_in_total", T::kCounter, "pipeline",
       "Input records the pipeline processed (committed with its cursor)."},
      {"ferry_pipeline_events_out_total", T::kCounter, "pipeline", "Events the pipeline appended to its outputs."},
      {"ferry_pipeline_events_dropped_total", T::kCounter, "pipeline",
       "Input records that produced no output (a filter, or a script returning nil)."},
      {"ferry_pipeline_events_failed_total", T::kCounter, "pipeline,step",
       "Input records a step failed on, sent to the pipeline's dead_letter stream (or dropped without one); step "
       "is the step's name, input (the payload is not a JSON object) or output (the result cannot be JSON). A batch "
       "whose commit failed is counted again when it is retried."},
      {"ferry_pipeline_lag_events", T::kGauge, "pipeline", "Input records not yet processed, over all inputs."},
      {"ferry_pipeline_lookup_misses_total", T::kCounter, "pipeline",
       "Events for which a lookup step found no row in its table (or no key field): dead-lettered, given the "
       "step's default, or kept as they were, as its missing says."},
      {"ferry_pipeline_window_late_total", T::kCounter, "pipeline",
       "Events a window step found late (behind the key's watermark, in no open window); sent to its late_output "
       "or dropped."},
      {"ferry_pipeline_windows_closed_total", T::kCounter, "pipeline,reason",
       "Windows closed with a final result; reason is watermark, idle (idle_timeout), max_keys or max_windows (closed "
       "early at a state bound)."},
      {"ferry_pipeline_window_keys", T::kGauge, "pipeline", "Keys a window step holds state for."},
      {"ferry_pipeline_windows_open", T::kGauge, "pipeline", "Open windows over all keys."},
      {"ferry_pipeline_window_state_bytes", T::kGauge, "pipeline",
       "Estimated heap bytes of a window step's state (keys, windows, sketches, indexes)."},
      {"ferry_pipeline_alerts_total", T::kCounter, "pipeline,stream",
       "Alerts threshold steps appended, by the stream they went to."},
      {"ferry_downlink_records_total", T::kCounter, "downlink",
       "Records of the central table written to the local table stream (rows and deletions; Kafka: each with the source position it moves, in one transaction)."},
      {"ferry_downlink_deletes_total", T::kCounter, "downlink",
       "Of those, deletions (a tombstone in the table stream: a null Kafka value, an empty retained MQTT message, or a row a full MQTT sync no longer found)."},
      {"ferry_downlink_bytes_total", T::kCounter, "downlink",
       "Key and value bytes fetched from the central source: what a resynchronisation cost."},
      {"ferry_downlink_skipped_total", T::kCounter, "downlink,reason",
       "Records not written: reason no_key (a row needs a key), bad_key (longer than 511 bytes or not printable UTF-8), too_large (key and value over `max_row_bytes`) or refused (the log refused the row as invalid; logged with its key)."},
      {"ferry_downlink_lag_records", T::kGauge, "downlink",
       "Kafka: records the source holds beyond the local table's position, over all partitions (from the last fetch). MQTT: always 0 (the broker does not say)."},
      {"ferry_downlink_last_sync_timestamp_seconds", T::kGauge, "downlink",
       "Unix time when the table was last known to be current: Kafka, when it caught up with the end of every partition; MQTT, at the end of a full sync, a resumed session, or an update; 0 before the first time."},
      {"ferry_downlink_link_up", T::kGauge, "downlink",
       "1 while the central source answers (Kafka: the table is assigned and fetching; MQTT: connected, and any full sync finished), else 0."},
      {"ferry_build_info", T::kGauge, "version,board", "Always 1; the labels carry the build."},
      {"ferry_config_reloads_total", T::kCounter, "result", "SIGHUP reloads; result is ok or error."},
  };
  return kDecls;
}

const MetricDecl& FerryMetric(std::string_view name) {
  for (const auto& d : FerryMetricDecls()) {
    if (name == d.name) return d;
  }
  FERRY_LOG_ERROR("metrics: %.*s is not declared in FerryMetricDecls()", static_cast<int>(name.size()), name.data());
  std::abort();
}

}  // namespace ferry
