// fake_transport.h: an UplinkTransport for engine tests. Connects at once (unless told to refuse), records
// every unit published, and completes units only when the test says so, in any order. A `policy` can make it
// behave like a broker that refuses a unit or drops the link on it (Mosquitto on a malformed UTF-8 string).
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ferry/uplink_transport.h"
#include "ferry/wire.h"

namespace ferry::test {

// The ferryseq of a per-event unit; the seqs of a batch (decoded).
inline std::vector<uint64_t> UnitSeqs(const OutboundUnit& u) {
  std::vector<uint64_t> out;
  if (u.content_type == kBatchContentType) {
    auto b = DecodeBatch(u.payload);
    if (b)
      for (const auto& e : b->batch.events) out.push_back(e.seq.value);
    return out;
  }
  for (const auto& [k, v] : u.attributes)
    if (k == "ferryseq") out.push_back(std::stoull(v));
  return out;
}

inline std::string UnitAttribute(const OutboundUnit& u, const std::string& name) {
  for (const auto& [k, v] : u.attributes)
    if (k == name) return v;
  return "";
}

class FakeTransport final : public UplinkTransport {
 public:
  // What the "broker" does with a unit as it is published.
  enum class Reaction { kHold, kDropLink };
  struct Sent {
    PublishHandle handle;
    OutboundUnit unit;
    uint64_t session;
  };

  void Connect() override {
    ++connects;
    if (refuse_connect) return;  // stays kDown: the attempt failed
    state_ = LinkState::kUp;
    ++session_;
  }
  LinkState link_state() const override { return state_; }
  uint64_t session() const override { return session_; }

  Result<PublishHandle> Publish(OutboundUnit unit) override {
    if (state_ != LinkState::kUp) return Unavailable("fake: link down");
    if (busy) return MakeError(ErrorCode::kBusy, "fake: queue full");
    PublishHandle h{next_handle_++};
    const Reaction r = policy ? policy(unit) : Reaction::kHold;
    sent.push_back(Sent{h, std::move(unit), session_});
    if (r == Reaction::kDropLink) {
      DropLink();
    } else {
      outstanding_.push_back(h);
    }
    return h;
  }
  size_t Completions(std::vector<Completion>* out) override {
    size_t n = ready_.size();
    out->insert(out->end(), ready_.begin(), ready_.end());
    ready_.clear();
    return n;
  }
  void Disconnect() override {
    ++disconnects;
    DropLink();
  }
  void SetWakeup(std::function<void()> fn) override { wakeup_ = std::move(fn); }

  // ---- Test controls -----------------------------------------------------------------------------------------
  // The link dies: what is outstanding never completes.
  void DropLink() {
    state_ = LinkState::kDown;
    outstanding_.clear();
  }
  // Completes one outstanding unit with `v`.
  void Complete(PublishHandle h, PublishVerdict v = {}) {
    auto it = std::find(outstanding_.begin(), outstanding_.end(), h);
    if (it == outstanding_.end()) return;
    outstanding_.erase(it);
    ready_.push_back(Completion{h, std::move(v)});
  }
  // Completes every outstanding unit: Ok, or what `verdict_for` says for it.
  void CompleteAll(const std::function<PublishVerdict(const OutboundUnit&)>& verdict_for = nullptr) {
    auto handles = outstanding_;
    for (auto h : handles) Complete(h, verdict_for ? verdict_for(UnitOf(h)) : PublishVerdict{});
  }
  const OutboundUnit& UnitOf(PublishHandle h) const {
    for (const auto& s : sent)
      if (s.handle == h) return s.unit;
    static const OutboundUnit kNone;
    return kNone;
  }
  // The handle of the outstanding unit carrying `seq` (per-event), if any.
  std::optional<PublishHandle> OutstandingWithSeq(uint64_t seq) const {
    for (auto h : outstanding_) {
      auto seqs = UnitSeqs(UnitOf(h));
      if (std::find(seqs.begin(), seqs.end(), seq) != seqs.end()) return h;
    }
    return std::nullopt;
  }
  // Every seq sent, in send order (a seq sent twice appears twice).
  std::vector<uint64_t> SentSeqs(size_t from = 0) const {
    std::vector<uint64_t> out;
    for (size_t i = from; i < sent.size(); ++i)
      for (uint64_t s : UnitSeqs(sent[i].unit)) out.push_back(s);
    return out;
  }
  size_t outstanding() const { return outstanding_.size(); }

  std::vector<Sent> sent;
  std::function<Reaction(const OutboundUnit&)> policy;
  bool refuse_connect = false;
  bool busy = false;
  int connects = 0;
  int disconnects = 0;

 private:
  LinkState state_ = LinkState::kDown;
  uint64_t session_ = 0;
  uint64_t next_handle_ = 1;
  std::vector<PublishHandle> outstanding_;
  std::vector<Completion> ready_;
  std::function<void()> wakeup_;
};

}  // namespace ferry::test
