/* ferry_pub.h — the device-side publisher: stable event ids, a caller-owned ring of unacknowledged
 * messages, MQTT v5 QoS 1 to the gateway's broker (Paho MQTT C async). C99.
 *
 * Contract in one paragraph: ferry_pub_publish() formats the event straight into a ring slot in memory
 * the caller gave to ferry_pub_init() and returns; it never blocks and never allocates. ferry_pub_poll()
 * is the only place that talks to the transport: it applies delivery results, (re)connects with
 * exponential backoff on the injected clock, and sends queued slots. A slot is freed ONLY when the broker
 * has acknowledged it (PUBACK, i.e. Paho's delivery-complete). Anything sent but not acknowledged when the
 * connection drops is sent again after the reconnect, so the receiver may see an id twice: it must
 * deduplicate on the id (the hub and the centre do).
 *
 * Threads: one owner thread calls every ferry_pub_* function on a given instance (publish, poll, wait,
 * stats, destroy). The transport's threads (Paho's) only record results (an atomic token per slot, event
 * counters under an internal mutex); they never touch the ring layout. Different instances are independent. ferry_dev_* and ferry_id_* are plain
 * functions on caller data: no threads, no globals.
 *
 * Memory: ferry_pub_mem_size() bytes supplied by the caller (static array or one malloc at boot); nothing
 * else is allocated by this library. Paho itself allocates when it copies a message for sending and when
 * the client is created; that is outside the ring and bounded by max_inflight.
 *
 * Return codes: every int-returning call returns FERRY_PUB_OK (0) or one negative FERRY_PUB_E* code below.
 */
#ifndef FERRY_PUB_H
#define FERRY_PUB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  FERRY_PUB_OK = 0,
  FERRY_PUB_EINVAL = -1,   /* bad argument: NULL, bad device id / kind, buffer too small for the config */
  FERRY_PUB_EFULL = -2,    /* ring full and overflow policy is FERRY_PUB_OVERFLOW_REJECT (event not taken) */
  FERRY_PUB_ETOOBIG = -3,  /* event larger than max_payload, or id/topic longer than their fixed maxima */
  FERRY_PUB_EIO = -4,      /* state file could not be read/written/fsynced (errno is kept) */
  FERRY_PUB_ECORRUPT = -5, /* state file exists but fails its format or checksum check */
  FERRY_PUB_ETRANSPORT = -6, /* transport could not be created (bad URI, Paho error) */
  FERRY_PUB_EAGAIN = -7    /* transport busy; used by transports, never returned by publish */
};

/* Fixed maxima. A device id is 1..FERRY_DEV_ID_MAX chars of [A-Za-z0-9._-]; a kind 1..FERRY_KIND_MAX chars
 * of the same set. They appear in topics, file names and ids, hence the restricted alphabet. */
#define FERRY_DEV_ID_MAX 48
#define FERRY_KIND_MAX 32
/* "<device>/b<boot>/<seq>" : 48 + 2 + 10 + 1 + 20 + NUL, rounded up. */
#define FERRY_ID_MAX 88
#define FERRY_TOPIC_MAX 128

/* ---- Event ids ------------------------------------------------------------------------------------------
 * Format (docs/firmware.md): "<device_id>/b<boot>/<seq>", boot in decimal without padding (1..2^32-1),
 * seq in decimal zero-padded to at least 9 digits, starting at 1 in every boot. Example "dev-0007/b12/000000042".
 */
typedef struct ferry_dev {
  char device_id[FERRY_DEV_ID_MAX + 1];
  uint32_t boot;     /* this boot's counter, >= 1 */
  uint64_t last_seq; /* last sequence number handed out in this boot; 0 before the first event */
} ferry_dev;

/* Loads "<state_dir>/<device_id>.boot", increments the counter and persists it atomically (write .new,
 * fsync, rename, fsync dir) BEFORE returning, so no two inits ever hand out the same boot number.
 * A missing file means first boot (boot = 1). state_dir NULL: boot = 1, nothing persisted (tests only).
 * Returns OK, EINVAL (bad id), EIO (read/write/fsync/rename failed), ECORRUPT (file damaged; not touched:
 * an operator must decide, since reusing a boot number would make the centre drop new events as dups). */
int ferry_dev_init(ferry_dev *dev, const char *device_id, const char *state_dir);

/* Next sequence number of this boot (1, 2, ...). */
uint64_t ferry_dev_next_seq(ferry_dev *dev);

/* Writes the id for (device_id, boot, seq) into out. Returns OK, EINVAL, ETOOBIG (out too small). */
int ferry_id_format(const char *device_id, uint32_t boot, uint64_t seq, char *out, size_t out_len);

/* Reads the boot counter file without changing it. Returns OK (counter in *boot), EIO (missing: errno
 * ENOENT), ECORRUPT. */
int ferry_dev_read_boot(const char *device_id, const char *state_dir, uint32_t *boot);

/* Returns 1 when s is a valid device id / kind. */
int ferry_dev_id_valid(const char *s);
int ferry_kind_valid(const char *s);

/* ---- Event payload ---------------------------------------------------------------------------------------
 * JSON object: {"id":"<id>","dev":"<device>","kind":"<kind>","boot":B,"seq":S[,"ts":T][,<fields>][,"pad":"…"]}
 * fields: JSON members without the braces (e.g. "\"temp_c\":81.5,\"rpm\":2450"), copied verbatim: the
 * caller owns their validity. time_ms: device wall clock in ms since 1970 (may be wrong, e.g. 1970 on a
 * device without RTC); FERRY_NO_TIME omits "ts". pad_to > 0: a "pad" member of 'x's makes the payload at
 * least pad_to bytes (for benchmarks). */
#define FERRY_NO_TIME INT64_MIN
typedef struct ferry_event {
  const char *kind;   /* required; also the last topic level */
  const char *fields; /* may be NULL */
  int64_t time_ms;
  size_t pad_to;
} ferry_event;

/* Formats the payload into buf (not NUL-terminated is not relied on; a NUL is written when it fits).
 * *len_out gets the payload length. Returns OK, EINVAL, ETOOBIG (buf too small). */
int ferry_event_format(const char *device_id, uint32_t boot, uint64_t seq, const ferry_event *ev,
                       char *buf, size_t buf_len, size_t *len_out);

/* ---- Publisher -----------------------------------------------------------------------------------------*/
typedef struct ferry_pub ferry_pub;

typedef enum ferry_overflow {
  FERRY_PUB_OVERFLOW_REJECT = 0, /* default: publish returns EFULL, stats.rejected++ (caller keeps the event) */
  FERRY_PUB_OVERFLOW_DROP_OLDEST = 1 /* the oldest unacknowledged message is discarded, stats.dropped++ */
} ferry_overflow;

/* Monotonic milliseconds. Used for backoff only (never written into events). */
typedef uint64_t (*ferry_clock_fn)(void *ctx);

struct ferry_transport_ops; /* ferry_pub_transport.h: the seam tests use to replace Paho */

typedef struct ferry_pub_config {
  const char *server_uri;   /* "tcp://127.0.0.1:1883"; required with the Paho transport */
  const char *client_id;    /* MQTT client id; required with the Paho transport, unique per connection */
  const char *topic_prefix; /* default "telemetry": topic = "<prefix>/<device_id>/<kind>" */
  uint32_t capacity;        /* ring slots, >= 1 */
  uint32_t max_payload;     /* bytes per slot for the payload, >= 64 */
  uint32_t max_inflight;    /* sent-but-unacked cap (default 64 when 0), <= capacity is enforced; lowered
                               to the broker's MQTT v5 Receive Maximum at each connect (Mosquitto: 20) */
  ferry_overflow overflow;
  uint32_t backoff_min_ms;  /* first reconnect delay (default 100) */
  uint32_t backoff_max_ms;  /* cap (default 10000); doubles per failed attempt; +-jitter_pct % jitter */
  uint32_t jitter_pct;      /* 0..50, default 0 (deterministic) */
  uint32_t keepalive_s;     /* default 30 */
  int qos0;                 /* 0: QoS 1 (the contract). Non-zero: QoS 0, for benchmarks only: a slot is
                               freed when Paho has written it to the socket, nothing is resent */
  ferry_clock_fn clock;     /* default CLOCK_MONOTONIC */
  void *clock_ctx;
  const struct ferry_transport_ops *transport; /* NULL: Paho MQTT C async, MQTT v5 */
  void *transport_ctx;
} ferry_pub_config;

/* Bytes of caller memory an instance with this config needs (instance + ring + transport state).
 * Returns 0 for an invalid config. */
size_t ferry_pub_mem_size(const ferry_pub_config *cfg);

/* Builds an instance inside mem (aligned to 16, at least ferry_pub_mem_size(cfg) bytes). Does not connect:
 * the first ferry_pub_poll() does. mem must stay valid until ferry_pub_destroy().
 * Returns the instance or NULL; *err (if non-NULL) gets OK, EINVAL or ETRANSPORT. */
ferry_pub *ferry_pub_init(void *mem, size_t mem_size, const ferry_pub_config *cfg, int *err);

/* Queues one event of dev: assigns the next sequence number, formats id and payload into a ring slot.
 * id_out (may be NULL) receives the id. Never blocks, never allocates, does no I/O.
 * Returns OK (queued; if the policy dropped the oldest to make room, stats.dropped counts it),
 * EFULL (policy REJECT: nothing consumed, not even a sequence number), ETOOBIG, EINVAL. */
int ferry_pub_publish(ferry_pub *pub, ferry_dev *dev, const ferry_event *ev, char *id_out, size_t id_out_len);

/* Queues a pre-formatted message with a given id (used for re-publishing an id, e.g. the simulator's
 * deliberate duplicates). topic NULL: "<prefix>/<device_id>/raw". Same returns as ferry_pub_publish. */
int ferry_pub_publish_raw(ferry_pub *pub, const char *topic, const char *id, const void *payload, size_t len);

/* One step: applies acks/failures recorded by the transport, handles connection loss (every unacked
 * message goes back to the send queue), starts a connect when the backoff deadline has passed, and sends
 * queued messages up to max_inflight. Never blocks. Returns OK or ETRANSPORT (a send failed for a reason
 * other than "busy"/"disconnected"; the message stays queued). */
int ferry_pub_poll(ferry_pub *pub);

/* Blocks the owner thread until the transport records something (ack, connect result, loss) or timeout_ms
 * passes (real time). Returns 1 if something happened, 0 on timeout. Call ferry_pub_poll() after it. */
int ferry_pub_wait(ferry_pub *pub, int timeout_ms);

typedef struct ferry_pub_stats {
  uint64_t published; /* events accepted into the ring */
  uint64_t acked;     /* PUBACKs: slots freed */
  uint64_t sent;      /* transport sends, first sends and resends */
  uint64_t resent;    /* sends of a message that had been sent before */
  uint64_t dropped;   /* evicted unacked by DROP_OLDEST */
  uint64_t rejected;  /* EFULL returns */
  uint64_t connects;  /* successful connects */
  uint64_t connect_failures;
  uint64_t connection_lost;
  uint64_t send_busy; /* sends the transport refused for now (its in-flight/buffer limit, not connected) */
  uint32_t queued;    /* messages in the ring (unacked, sent or not) */
  uint32_t inflight;  /* sent and waiting for a PUBACK */
  uint32_t max_inflight; /* current cap: min(config, broker's Receive Maximum from the last CONNACK) */
  int connected;
} ferry_pub_stats;

void ferry_pub_get_stats(const ferry_pub *pub, ferry_pub_stats *out);

/* Next reconnect attempt time on the injected clock (0 when connected or connecting). For tests. */
uint64_t ferry_pub_next_connect_ms(const ferry_pub *pub);

/* Disconnects and releases the transport. Unacked messages are lost with the memory (the ring is RAM);
 * call poll until stats.queued == 0 first if that matters. The memory can be reused afterwards. */
void ferry_pub_destroy(ferry_pub *pub);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_PUB_H */
