// uplink_engine.cc: the engine's bookkeeping -- the link as the engine sees it, completions and what they do
// to cursors, poison isolation, persistence, replay requests and gauges. Filling the window (reading,
// cutting units, the rate cap) is in uplink_drain.cc. See ferry/uplink_engine.h for the contract.
#include "ferry/uplink_engine.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "ferry/log.h"

namespace ferry {
namespace {

// Each persist is a small commit of its own when ingest is idle: once a second bounds the fsyncs a drain adds,
// and a crash then re-sends at most a second of acknowledged events (the centre drops them by id).
constexpr auto kPersistInterval = std::chrono::seconds(1);
// Gauges, replay requests, and the safety net for appends that bypassed the writer's announcements.
constexpr auto kChoreInterval = std::chrono::seconds(1);

unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

std::string UplinkCursorName(const std::string& uplink) { return "uplink." + uplink; }

std::string ReplayRequestKey(const std::string& uplink, const std::string& stream) {
  return "replay:" + uplink + ":" + stream;
}

std::string PoisonedStateKey(const std::string& uplink, const std::string& stream, Seq first) {
  char seq[32];
  std::snprintf(seq, sizeof seq, "%020" PRIu64, first.value);
  return "uplink/" + uplink + "/poisoned/" + stream + "/" + seq;
}

UplinkEngine::UplinkEngine(const Config& config, const UplinkConfig& uplink, EventLog& log,
                           GroupCommitWriter& writer, MetricsRegistry& metrics, const Clock& clock,
                           UplinkTransport& transport)
    : config_(config), uplink_(uplink), log_(log), writer_(writer), metrics_(metrics), clock_(clock),
      transport_(transport), cursor_name_(UplinkCursorName(uplink.name)),
      backoff_(uplink.backoff.min, uplink.backoff.max,
               std::hash<std::string>{}(config.gateway.id + uplink.name) ^ static_cast<uint64_t>(clock.Now().ns)),
      rate_(uplink.bytes_per_sec) {
  Labels l{{"uplink", uplink.name}};
  link_gauge_ = &DeclaredGauge(metrics_, "ferry_uplink_link_up", l);
  inflight_gauge_ = &DeclaredGauge(metrics_, "ferry_uplink_inflight_messages", l);
  bytes_total_ = &DeclaredCounter(metrics_, "ferry_uplink_bytes_total", l);
  retries_ = &DeclaredCounter(metrics_, "ferry_uplink_retries_total", l);
  reconnects_ = &DeclaredCounter(metrics_, "ferry_uplink_reconnects_total", l);
}

UplinkEngine::~UplinkEngine() = default;

Seq UplinkEngine::cursor(const std::string& stream) const {
  for (const auto& s : streams_)
    if (s.name == stream) return s.cursor;
  return Seq{};
}

Status UplinkEngine::Start() {
  std::vector<std::string> names = uplink_.streams;
  if (names.empty())
    for (const auto& s : config_.streams) names.push_back(s.name);
  for (const auto& name : names) {
    const StreamConfig* sc = config_.FindStream(name);
    if (!sc) return InvalidArgument("uplink " + uplink_.name + ": stream \"" + name + "\" is not declared");
    auto stats = log_.GetStreamStats(name);
    if (!stats) return tl::make_unexpected(stats.error());
    StreamState s;
    s.name = name;
    s.priority = sc->priority;
    auto cur = log_.GetCursor(name, cursor_name_);
    if (cur) s.cursor = *cur;
    else if (cur.error().code == ErrorCode::kNotFound) s.cursor = Seq{1};
    else return tl::make_unexpected(cur.error());
    s.persisted = s.cursor;
    s.next_backfill = s.cursor;
    Labels l{{"uplink", uplink_.name}, {"stream", name}};
    s.sent = &DeclaredCounter(metrics_, "ferry_uplink_sent_total", l);
    s.acked_total = &DeclaredCounter(metrics_, "ferry_uplink_acked_total", l);
    s.poisoned = &DeclaredCounter(metrics_, "ferry_uplink_poisoned_total", l);
    s.backlog = &DeclaredGauge(metrics_, "ferry_uplink_backlog_events", l);
    s.oldest_age = &DeclaredGauge(metrics_, "ferry_uplink_oldest_unsent_age_seconds", l);
    streams_.push_back(std::move(s));
  }
  std::stable_sort(streams_.begin(), streams_.end(),
                   [](const StreamState& a, const StreamState& b) { return a.priority > b.priority; });

  EncoderOptions eo;
  eo.compression_level = static_cast<int>(uplink_.compression_level);
  if (!uplink_.hmac_key_file.empty()) {
    auto key = ReadHmacKeyFile(uplink_.hmac_key_file);
    if (!key) return InvalidArgument("uplink " + uplink_.name + ": " + key.error().message);
    eo.hmac_key = std::move(*key);
  }
  encoder_ = std::make_unique<BatchEncoder>(eo);
  next_connect_ = clock_.Steady();
  started_ = true;
  UpdateGauges();
  return Ok();
}

void UplinkEngine::Step() {
  if (!started_) return;
  const SteadyTime now = clock_.Steady();
  // Completions first: acks that arrived just before a loss still count.
  CollectCompletions(now);
  FollowLink(now);
  if (up_) {
    PersistCursors(false);
    while (!draining_ && SendOne(now)) {
    }
  }
  if (now - last_gauges_ >= kChoreInterval) UpdateGauges();
}

SteadyTime UplinkEngine::NextWakeup() const {
  const SteadyTime now = clock_.Steady();
  SteadyTime t = last_gauges_ + kChoreInterval;
  // Only times still ahead: a passed one that Step() could not act on (say, a batch deadline behind the rate
  // cap) must not make the owner's loop spin; the hold that blocked it is in the list too.
  auto consider = [&](SteadyTime at) {
    if (at > now) t = std::min(t, at);
  };
  if (!up_) {
    if (!connecting_) consider(next_connect_);
  } else {
    for (const auto& s : streams_) {
      if (s.cursor != s.persisted) consider(last_persist_ + kPersistInterval);
    }
    if (!draining_ && !busy_ && inflight_.size() < Window()) {
      consider(rate_hold_until_);
      consider(retry_hold_until_);
      for (const auto& s : streams_) consider(s.batch_deadline);
    }
  }
  return std::max(t, now + std::chrono::milliseconds(1));
}

bool UplinkEngine::wants_commits() const {
  const SteadyTime now = clock_.Steady();
  return up_ && !draining_ && !busy_ && inflight_.size() < Window() && now >= rate_hold_until_ &&
         now >= retry_hold_until_;
}

void UplinkEngine::Drain() { draining_ = true; }

bool UplinkEngine::drained() const { return !up_ || inflight_.empty(); }

void UplinkEngine::Shutdown() {
  if (!started_) return;
  PersistCursors(true);
  link_up_ = false;
  link_gauge_->Set(0);
}

// ---- The link ----------------------------------------------------------------------------------------------

void UplinkEngine::FollowLink(SteadyTime now) {
  const LinkState state = transport_.link_state();
  if (up_ && (state != LinkState::kUp || transport_.session() != session_)) OnLinkLost(now);
  if (up_) return;
  if (state == LinkState::kUp) {
    OnLinkUp();
    return;
  }
  if (state == LinkState::kConnecting) return;  // the transport wakes us with the outcome
  if (connecting_) {  // the attempt failed
    connecting_ = false;
    next_connect_ = std::max(next_connect_, now + backoff_.Next());
  }
  if (now < next_connect_) return;
  connecting_ = true;
  reconnects_->Inc();
  transport_.Connect();
  if (transport_.link_state() == LinkState::kUp) OnLinkUp();  // a transport that connects at once
}

void UplinkEngine::OnLinkUp() {
  up_ = true;
  connecting_ = false;
  busy_ = false;
  session_ = transport_.session();
  link_up_ = true;
  backoff_.Reset();
  link_gauge_->Set(1);  // link changes show at once; the other gauges follow every kChoreInterval
  FERRY_LOG_INFO("uplink %s: connected to %s", uplink_.name.c_str(), uplink_.address.c_str());
  if (uplink_.drain_order == DrainOrder::kNewestFirst) {
    const uint64_t unit = uplink_.mode == UplinkMode::kBatched ? static_cast<uint64_t>(uplink_.batch.max_events) : 1;
    for (auto& s : streams_) {
      auto stats = log_.GetStreamStats(s.name);
      s.live_start = Seq{0};
      // Only a backlog worth reordering: two units or more behind.
      if (stats && stats->last_seq.value >= s.cursor.value + 2 * unit)
        s.live_start = Seq{stats->last_seq.value + 1 - unit};
    }
  }
  ResetSending();
}

void UplinkEngine::OnLinkLost(SteadyTime now) {
  up_ = false;
  connecting_ = false;
  busy_ = false;
  link_up_ = false;
  link_gauge_->Set(0);
  ++stats_.link_losses;
  FERRY_LOG_WARN("uplink %s: link to %s down (%zu unit(s) in flight)", uplink_.name.c_str(), uplink_.address.c_str(),
                 inflight_.size());
  // What was in flight may or may not have arrived: forget it and send again from the acked positions.
  retries_->Inc(static_cast<uint64_t>(inflight_.size()));
  if (inflight_.size() == 1) {
    // Alone on the wire and the link died right after: it may be what the broker choked on.
    const Inflight u = inflight_.begin()->second;
    inflight_.clear();
    if (now - u.sent_at <= kUplinkStrikeWindow) Strike(u, /*link_lost=*/true, "link lost with it alone in flight");
  } else {
    // Suspects are the units that were in flight at the previous loss too: a message the centre chokes on
    // drops the link every time it is sent, an unreliable link drops it whatever is in flight. Probing after
    // every loss made a link that flaps every few seconds drain one unit per round trip (the satellite fault
    // test); now the first loss re-sends the whole window, and only what was lost twice in a row is probed.
    std::vector<LostUnit> lost;
    for (const auto& [handle, u] : inflight_) {
      lost.push_back({u.stream, u.first, u.last});
      for (const LostUnit& before : lost_with_) {
        if (before.stream == u.stream && before.first <= u.last && u.first <= before.last) {
          suspects_.insert({u.stream, u.first});
          break;
        }
      }
    }
    lost_with_ = std::move(lost);
    inflight_.clear();
  }
  for (auto& s : streams_) s.retry.clear();  // everything above the cursor goes again anyway
  ResetSending();
  next_connect_ = std::max(next_connect_, now + backoff_.Next());
  PersistCursors(true);
}

void UplinkEngine::ResetSending() {
  for (auto& s : streams_) {
    s.next_backfill = s.cursor;
    s.next_live = s.live_start;
    s.batch_deadline = {};
  }
}

// ---- Completions and what they mean -----------------------------------------------------------------------

void UplinkEngine::CollectCompletions(SteadyTime now) {
  std::vector<Completion> done;
  if (transport_.Completions(&done) == 0) return;
  busy_ = false;  // a completion makes room in the transport's queue
  for (const Completion& c : done) {
    auto it = inflight_.find(c.handle);
    if (it == inflight_.end()) continue;  // of an earlier session, or forgotten by a replay
    const Inflight u = it->second;
    inflight_.erase(it);
    StreamState& s = streams_[u.stream];
    const PublishVerdict& v = c.verdict;
    switch (v.kind) {
      case PublishVerdict::kOk:
        MarkAcked(s, u.first, u.last);
        s.acked_total->Inc(u.events);
        acked_events_ += u.events;
        ++acked_units_;
        strikes_.erase({u.stream, u.first});
        break;
      case PublishVerdict::kDrop:
        Poison(u.stream, u.first, u.last, u.events, v.reason);
        break;
      case PublishVerdict::kRetry:
        retries_->Inc();
        {
          uint64_t& last = s.retry[u.first];
          last = std::max(last, u.last);
        }
        retry_hold_until_ = std::max(retry_hold_until_, now + v.retry_after);
        Strike(u, /*link_lost=*/false, v.reason);
        break;
    }
    // The broker answered: whatever it was, this unit did not take the link down.
    suspects_.erase({u.stream, u.first});
  }
}

void UplinkEngine::MarkAcked(StreamState& s, uint64_t first, uint64_t last) {
  if (first <= s.cursor.value) {
    s.cursor = Seq{std::max(s.cursor.value, last + 1)};
  } else {
    auto& hi = s.acked[first];
    hi = std::max(hi, last);
  }
  while (!s.acked.empty() && s.acked.begin()->first <= s.cursor.value) {
    s.cursor = Seq{std::max(s.cursor.value, s.acked.begin()->second + 1)};
    s.acked.erase(s.acked.begin());
  }
}

void UplinkEngine::Strike(const Inflight& u, bool link_lost, const std::string& reason) {
  Strikes& st = strikes_[{u.stream, u.first}];
  if (st.failures++ == 0) st.acked_at_first = acked_units_;
  st.link_lost |= link_lost;
  FERRY_LOG_DEBUG("uplink %s: %s seq %llu-%llu failed (%s), %u of %u", uplink_.name.c_str(),
                  streams_[u.stream].name.c_str(), U(u.first), U(u.last), reason.c_str(), st.failures,
                  kUplinkPoisonStrikes);
  if (st.failures < kUplinkPoisonStrikes) return;
  // Refusals count against the unit only while the centre takes others: one that refuses everything (an ACL,
  // a quota) is an outage, not a poison message. A link that died with the unit alone on it is evidence enough.
  if (!st.link_lost && acked_units_ == st.acked_at_first) return;
  Poison(u.stream, u.first, u.last, u.events, "repeated_failure");
}

void UplinkEngine::Poison(size_t stream, uint64_t first, uint64_t last, uint64_t events, const std::string& reason) {
  StreamState& s = streams_[stream];
  strikes_.erase({stream, first});
  for (auto it = suspects_.begin(); it != suspects_.end();) {
    it = it->first == stream && it->second >= first && it->second <= last ? suspects_.erase(it) : std::next(it);
  }
  for (auto it = s.retry.lower_bound(first); it != s.retry.end() && it->first <= last;) it = s.retry.erase(it);
  MarkAcked(s, first, last);
  s.poisoned->Inc(events);
  DroppedCounter(s, reason).Inc(events);
  ++stats_.poisoned_units;
  // Recorded where ferryctl can list it; the records themselves stay in the log until retention.
  std::string key = PoisonedStateKey(uplink_.name, s.name, Seq{first});
  std::string value = std::to_string(first) + "-" + std::to_string(last) + " " + reason;
  writer_.Submit([key = std::move(key), value = std::move(value)](WriteTxn& txn) { return txn.PutState(key, value); });
  FERRY_LOG_ERROR("uplink %s: %s seq %llu-%llu set aside (%s): the stream moves on without it; the records stay in "
                  "the log (state key %s)",
                  uplink_.name.c_str(), s.name.c_str(), U(first), U(last), reason.c_str(),
                  PoisonedStateKey(uplink_.name, s.name, Seq{first}).c_str());
}

Counter& UplinkEngine::DroppedCounter(const StreamState& s, const std::string& reason) {
  return DeclaredCounter(metrics_, "ferry_uplink_dropped_total",
                           {{"uplink", uplink_.name}, {"stream", s.name}, {"reason", reason}});
}

// ---- Persistence, replay requests, gauges -----------------------------------------------------------------

void UplinkEngine::PersistCursors(bool force) {
  const SteadyTime now = clock_.Steady();
  if (!force && now - last_persist_ < kPersistInterval) return;
  last_persist_ = now;
  for (auto& s : streams_) {
    if (s.cursor == s.persisted) continue;
    s.persisted = s.cursor;
    // Rides in the next group commit: no fsync of its own. Losing it in a crash only means re-sending.
    writer_.Submit([stream = s.name, name = cursor_name_, pos = s.cursor](WriteTxn& txn) {
      return txn.SetCursor(stream, name, pos);
    });
  }
}

void UplinkEngine::ApplyReplayRequests() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    StreamState& s = streams_[i];
    std::string key = ReplayRequestKey(uplink_.name, s.name);
    auto req = log_.GetState(key);
    if (!req) {
      s.replay_applied.clear();
      continue;
    }
    if (*req == s.replay_applied) continue;  // applied; the writer has not committed the delete yet
    char* end = nullptr;
    unsigned long long v = std::strtoull(req->c_str(), &end, 10);
    if (req->empty() || *end != '\0' || v == 0) {
      FERRY_LOG_ERROR("uplink %s: ignoring malformed replay request %s=\"%s\"", uplink_.name.c_str(), key.c_str(),
                      req->c_str());
      writer_.Submit([key](WriteTxn& txn) { return txn.DeleteState(key); });
      s.replay_applied = *req;
      continue;
    }
    // Forget what is in flight for this stream: its acks must not mark the replayed range as done.
    for (auto it = inflight_.begin(); it != inflight_.end();) it = it->second.stream == i ? inflight_.erase(it) : std::next(it);
    for (auto it = strikes_.begin(); it != strikes_.end();) it = it->first.first == i ? strikes_.erase(it) : std::next(it);
    for (auto it = suspects_.begin(); it != suspects_.end();) it = it->first == i ? suspects_.erase(it) : std::next(it);
    s.cursor = Seq{v};
    s.persisted = s.cursor;
    s.acked.clear();
    s.retry.clear();
    s.live_start = Seq{0};
    s.next_backfill = s.cursor;
    s.next_live = Seq{0};
    s.batch_deadline = {};
    s.replay_applied = *req;
    writer_.Submit([key, stream = s.name, name = cursor_name_, pos = s.cursor](WriteTxn& txn) -> Status {
      if (Status st = txn.SetCursor(stream, name, pos); !st) return st;
      return txn.DeleteState(key);
    });
    FERRY_LOG_INFO("uplink %s: replaying %s from seq %llu", uplink_.name.c_str(), s.name.c_str(), v);
  }
}

void UplinkEngine::UpdateGauges() {
  last_gauges_ = clock_.Steady();
  ApplyReplayRequests();
  link_gauge_->Set(up_ ? 1 : 0);
  inflight_gauge_->Set(static_cast<int64_t>(inflight_.size()));
  for (auto& s : streams_) {
    // The safety net: an append that did not go through the writer (a tool's own transaction) announces no
    // commit; a look once a second finds it anyway.
    s.backfill_ahead.at_end_commit = UINT64_MAX;
    s.live_ahead.at_end_commit = UINT64_MAX;
    auto stats = log_.GetStreamStats(s.name);
    if (!stats) continue;
    uint64_t first = std::max(s.cursor.value, stats->first_seq.value);
    uint64_t backlog = stats->last_seq.value >= first ? std::min(stats->count, stats->last_seq.value - first + 1) : 0;
    s.backlog->Set(static_cast<int64_t>(backlog));
    int64_t age = 0;
    if (backlog > 0) {
      auto recs = log_.Read(s.name, Seq{first}, 1);
      if (recs && !recs->empty()) age = (clock_.Now().ns - recs->front().ingest_time.ns) / 1'000'000'000;
    }
    s.oldest_age->Set(std::max<int64_t>(age, 0));
  }
}

}  // namespace ferry
