// central_receiver_fuzz.cc: libFuzzer target for the centre's reference consumer (central/src/receiver.cc):
// CentralReceiver::Receive, which classifies a message (per-event CloudEvent, FRYB batch, bridged device
// JSON), takes its events out, deduplicates their ids and counts. No broker: Receive is what the Paho
// callback calls. See ../README.md.
//
// Input: one options byte, then messages.
//   options: bit 0 accept device JSON; bit 1 HMAC key; bit 2 remember id hashes, not ids; bit 3 sign a payload
//   that starts with "FRYB" before it is received (fryb_sign.h), so batches get past their digest
//   message: content_type_len u8 | topic_len u8 | property_count u8 | payload_len u16 (big-endian)
//            | content_type | topic | property_count x (name_len u8 | value_len u8 | name | value) | payload
//
// The counters must add up, and agree with a second EventExtractor and a plain set of the ids seen.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "../fryb_sign.h"
#include "../fuzz_bytes.h"
#include "ferry/receiver.h"

namespace {

using namespace ferry;
using fuzz::Fail;

const std::string kKey = "ferry-fuzz-key";
constexpr size_t kMaxMessages = 256;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzBytes in(data, size);
  const uint8_t options = in.U8();
  CentralReceiverOptions opt;
  opt.kinds.device_json = (options & 0x01) != 0;
  if (options & 0x02) opt.hmac_key = kKey;
  opt.hash_ids = (options & 0x04) != 0;
  opt.record_arrivals = true;
  size_t warnings = 0;
  opt.warn = [&warnings](const std::string&) { ++warnings; };
  size_t new_ids = 0;
  opt.on_new_id = [&new_ids](std::string_view) { ++new_ids; };
  CentralReceiver receiver(opt);
  receiver.KeepEvents(true);
  EventExtractor extractor(opt.kinds, opt.hmac_key);

  std::set<std::string> ids;
  uint64_t messages = 0, events = 0, bad = 0;
  for (size_t n = 0; n < kMaxMessages && !in.empty(); ++n) {
    const uint8_t ct_len = in.U8();
    const uint8_t topic_len = in.U8();
    const uint8_t props = in.U8();
    const uint16_t payload_len = in.U16();
    CentralMessage m;
    m.content_type = in.Take(ct_len);
    m.topic = in.Take(topic_len);
    for (uint8_t i = 0; i < props && !in.empty(); ++i) {
      const uint8_t klen = in.U8();
      const uint8_t vlen = in.U8();
      std::string k(in.Take(klen));
      m.user_properties.emplace_back(std::move(k), std::string(in.Take(vlen)));
    }
    std::string payload(in.Take(payload_len));
    if ((options & 0x08) && payload.compare(0, 4, "FRYB") == 0) fuzz::SignFryb(payload, opt.hmac_key);
    m.payload = payload;

    auto expect = extractor.Extract(m);
    receiver.Receive(m);
    ++messages;
    if (!expect) {
      ++bad;
    } else {
      for (const WireEvent& e : *expect) {
        ++events;
        ids.insert(e.id);
        if (!receiver.Has(e.id)) Fail("received id \"%s\" is not known", e.id.c_str());
      }
    }
    if (receiver.messages() != messages || receiver.bad() != bad || receiver.events() != events)
      Fail("counters: messages %llu/%llu bad %llu/%llu events %llu/%llu", (unsigned long long)receiver.messages(),
           (unsigned long long)messages, (unsigned long long)receiver.bad(), (unsigned long long)bad,
           (unsigned long long)receiver.events(), (unsigned long long)events);
  }
  if (receiver.unique() + receiver.duplicates() != receiver.events()) Fail("unique + duplicates != events");
  if (warnings != bad) Fail("%zu warnings for %llu bad messages", warnings, (unsigned long long)bad);
  if (new_ids != receiver.unique()) Fail("on_new_id called %zu times for %llu new ids", new_ids,
                                         (unsigned long long)receiver.unique());
  if (receiver.Arrivals().size() != receiver.events()) Fail("arrivals != events");
  if (!opt.hash_ids) {
    if (receiver.unique() != ids.size()) Fail("%llu unique ids, expected %zu", (unsigned long long)receiver.unique(),
                                             ids.size());
    if (receiver.ById().size() != ids.size()) Fail("ById holds %zu events for %zu ids", receiver.ById().size(),
                                                   ids.size());
  }
  return 0;
}
