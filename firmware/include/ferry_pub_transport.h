/* ferry_pub_transport.h — the seam between the ring/state machine (ferry_pub.c) and the wire.
 * The default transport is Paho MQTT C async with MQTT v5 (ferry_pub_paho.c). Tests plug in a fake that
 * records sends and reports acks on demand, so ring and reconnect logic can be stepped deterministically.
 *
 * Threads: the ops are called only from the instance's owner thread (inside ferry_pub_poll/init/destroy).
 * The ferry_pub_on_* notifications may be called from any thread, including from inside an op; they take
 * the instance's internal mutex, record the fact, wake ferry_pub_wait(), and return. They never call ops.
 */
#ifndef FERRY_PUB_TRANSPORT_H
#define FERRY_PUB_TRANSPORT_H

#include "ferry_pub.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_transport_ops {
  /* Extra bytes of the caller's memory block the transport needs (may be NULL: 0). */
  size_t (*mem_size)(const ferry_pub_config *cfg);
  /* Prepares the transport in tmem (mem_size bytes, 16-aligned). *tctx_out is passed to the other ops.
   * Returns OK or ETRANSPORT. */
  int (*init)(void *tmem, ferry_pub *pub, const ferry_pub_config *cfg, void **tctx_out);
  /* Starts a connection attempt; the result comes through ferry_pub_on_connect(). Returns OK or an error
   * (treated as a failed attempt). */
  int (*connect)(void *tctx);
  /* Starts a QoS 1 send of ring slot `slot`; the PUBACK (or failure) comes through ferry_pub_on_delivery()
   * with the same token. payload and strings are only valid during the call. Returns OK (token set),
   * EAGAIN (busy or not connected: retry later, nothing sent) or ETRANSPORT. */
  int (*send)(void *tctx, uint32_t slot, const char *topic, const char *id, const void *payload, size_t len,
              int *token);
  /* Closes the connection and frees what init created; no notifications after it returns. */
  void (*destroy)(void *tctx);
} ferry_transport_ops;

/* ok != 0: the connection is up. ok == 0: the attempt failed (backoff applies). */
void ferry_pub_on_connect(ferry_pub *pub, int ok);
/* The broker's limit on unacknowledged QoS 1 messages (MQTT v5 CONNACK "Receive Maximum"), reported before
 * ferry_pub_on_connect(pub, 1). The instance sends at most min(config.max_inflight, n) until the next one. */
void ferry_pub_on_receive_maximum(ferry_pub *pub, uint32_t n);
/* An established connection dropped: every unacked message will be sent again after the reconnect. */
void ferry_pub_on_connection_lost(ferry_pub *pub);
/* The send of `slot` identified by `token` completed: ok != 0 means PUBACK (success reason code). Results
 * whose token no longer matches the slot (stale, from an earlier connection) are ignored. */
void ferry_pub_on_delivery(ferry_pub *pub, uint32_t slot, int token, int ok);

/* The Paho MQTT C async transport (the default when config.transport is NULL). */
extern const ferry_transport_ops ferry_transport_paho;

#ifdef __cplusplus
}
#endif
#endif /* FERRY_PUB_TRANSPORT_H */
