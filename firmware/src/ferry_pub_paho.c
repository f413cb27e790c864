/* The default transport: Paho MQTT C async, MQTT v5, clean start, QoS 1, no Paho-side buffering (the ring
 * is the buffer) and no Paho persistence (the ring is RAM by design; the boot counter is the durable part).
 * Each message carries the user property ce_id=<event id> and content type application/json. */
#define _POSIX_C_SOURCE 200809L
#include "ferry_pub.h"
#include "ferry_pub_transport.h"

#include <MQTTAsync.h>
#include <string.h>

typedef struct paho_slot_ctx {
  struct paho_transport *t;
  uint32_t slot;
} paho_slot_ctx;

typedef struct paho_transport {
  MQTTAsync client;
  ferry_pub *pub;
  int keepalive;
  int max_inflight;
  int qos;
  paho_slot_ctx ctx[]; /* one per ring slot: the context of that slot's send callbacks */
} paho_transport;

static size_t paho_mem_size(const ferry_pub_config *cfg) {
  return sizeof(paho_transport) + (size_t)cfg->capacity * sizeof(paho_slot_ctx);
}

static void on_connection_lost(void *context, char *cause) {
  paho_transport *t = (paho_transport *)context;
  (void)cause;
  ferry_pub_on_connection_lost(t->pub);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m) {
  (void)context;
  (void)topic_len;
  MQTTAsync_freeMessage(&m);
  MQTTAsync_free(topic);
  return 1;
}

static void on_connect_ok(void *context, MQTTAsync_successData5 *r) {
  paho_transport *t = (paho_transport *)context;
  /* Sending past the broker's Receive Maximum makes Paho hold messages back and crawl (measured: 400
   * messages took 15 s against Mosquitto's 20 instead of 60 ms), so the cap follows the CONNACK. */
  int rm = r != NULL ? MQTTProperties_getNumericValue(&r->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM) : -1;
  ferry_pub_on_receive_maximum(t->pub, rm > 0 ? (uint32_t)rm : 65535u);
  ferry_pub_on_connect(t->pub, 1);
}

static void on_connect_fail(void *context, MQTTAsync_failureData5 *r) {
  (void)r;
  ferry_pub_on_connect(((paho_transport *)context)->pub, 0);
}

static void on_sent_ok(void *context, MQTTAsync_successData5 *r) {
  paho_slot_ctx *c = (paho_slot_ctx *)context;
  /* MQTT v5 PUBACK reason codes >= 0x80 are refusals (quota, not authorized, ...): keep the message. */
  ferry_pub_on_delivery(c->t->pub, c->slot, r->token, r->reasonCode < 0x80);
}

static void on_sent_fail(void *context, MQTTAsync_failureData5 *r) {
  paho_slot_ctx *c = (paho_slot_ctx *)context;
  ferry_pub_on_delivery(c->t->pub, c->slot, r->token, 0);
}

static int paho_init(void *tmem, ferry_pub *pub, const ferry_pub_config *cfg, void **tctx_out) {
  paho_transport *t = (paho_transport *)tmem;
  MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
  uint32_t i;
  if (cfg->server_uri == NULL || cfg->client_id == NULL) return FERRY_PUB_EINVAL;
  t->pub = pub;
  t->qos = cfg->qos0 ? 0 : 1;
  t->keepalive = cfg->keepalive_s == 0 ? 30 : (int)cfg->keepalive_s;
  t->max_inflight = cfg->max_inflight == 0 ? 64 : (int)cfg->max_inflight;
  if ((uint32_t)t->max_inflight > cfg->capacity) t->max_inflight = (int)cfg->capacity;
  for (i = 0; i < cfg->capacity; ++i) {
    t->ctx[i].t = t;
    t->ctx[i].slot = i;
  }
  co.sendWhileDisconnected = 0;
  /* Applies to queued commands while connected too; the ring bounds what we hand over. */
  co.maxBufferedMessages = t->max_inflight + 16;
  if (MQTTAsync_createWithOptions(&t->client, cfg->server_uri, cfg->client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                  NULL, &co) != MQTTASYNC_SUCCESS)
    return FERRY_PUB_ETRANSPORT;
  if (MQTTAsync_setCallbacks(t->client, t, on_connection_lost, on_message, NULL) != MQTTASYNC_SUCCESS) {
    MQTTAsync_destroy(&t->client);
    return FERRY_PUB_ETRANSPORT;
  }
  *tctx_out = t;
  return FERRY_PUB_OK;
}

static int paho_connect(void *tctx) {
  paho_transport *t = (paho_transport *)tctx;
  MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
  o.keepAliveInterval = t->keepalive;
  o.cleanstart = 1;
  o.maxInflight = t->max_inflight;
  o.connectTimeout = 5;
  o.automaticReconnect = 0;
  o.onSuccess5 = on_connect_ok;
  o.onFailure5 = on_connect_fail;
  o.context = t;
  return MQTTAsync_connect(t->client, &o) == MQTTASYNC_SUCCESS ? FERRY_PUB_OK : FERRY_PUB_ETRANSPORT;
}

static int paho_send(void *tctx, uint32_t slot, const char *topic, const char *id, const void *payload,
                     size_t len, int *token) {
  static char ce_id[] = "ce_id";
  static char json[] = "application/json";
  paho_transport *t = (paho_transport *)tctx;
  MQTTAsync_message m = MQTTAsync_message_initializer;
  MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
  MQTTProperty prop[2];
  int id_len = (int)strlen(id), rc;

  /* Built on the stack; Paho copies properties and payload inside sendMessage. */
  memset(prop, 0, sizeof prop);
  prop[0].identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
  prop[0].value.data.len = (int)sizeof ce_id - 1;
  prop[0].value.data.data = ce_id;
  prop[0].value.value.len = id_len;
  prop[0].value.value.data = (char *)(uintptr_t)id;
  prop[1].identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
  prop[1].value.data.len = (int)sizeof json - 1;
  prop[1].value.data.data = json;
  m.properties.count = 2;
  m.properties.max_count = 2;
  m.properties.length = (1 + 2 + (int)sizeof ce_id - 1 + 2 + id_len) + (1 + 2 + (int)sizeof json - 1);
  m.properties.array = prop;
  m.payload = (void *)(uintptr_t)payload;
  m.payloadlen = (int)len;
  m.qos = t->qos;
  m.retained = 0;
  ro.onSuccess5 = on_sent_ok;
  ro.onFailure5 = on_sent_fail;
  ro.context = &t->ctx[slot];
  rc = MQTTAsync_sendMessage(t->client, topic, &m, &ro);
  switch (rc) {
    case MQTTASYNC_SUCCESS:
      *token = ro.token;
      return FERRY_PUB_OK;
    case MQTTASYNC_DISCONNECTED:
    case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
    case MQTTASYNC_MAX_BUFFERED_MESSAGES:
    case MQTTASYNC_NO_MORE_MSGIDS:
      return FERRY_PUB_EAGAIN;
    default:
      return FERRY_PUB_ETRANSPORT;
  }
}

static void paho_destroy(void *tctx) {
  paho_transport *t = (paho_transport *)tctx;
  if (MQTTAsync_isConnected(t->client)) {
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    d.timeout = 0;
    MQTTAsync_disconnect(t->client, &d);
  }
  MQTTAsync_destroy(&t->client);
}

const ferry_transport_ops ferry_transport_paho = {paho_mem_size, paho_init, paho_connect, paho_send, paho_destroy};
