/* The publisher: a ring of unacknowledged messages in caller memory and the connection state machine.
 *
 * Ring positions are 64-bit counters (never wrap in practice); slot index = position % capacity.
 *   [tail, head)      messages in the ring (queued, in flight, or acked but not yet reclaimed)
 *   [tail, send_next) visited by the sender in this connection; queued slots before send_next exist only
 *                     after a failed send, which rewinds send_next to them
 *   [tail, sent_hi)   slots that may have a pending transport result (scanned when results arrive)
 * A slot leaves the ring only from the tail, after its PUBACK (or eviction under DROP_OLDEST), so acks
 * that arrive out of order just wait for the older ones. */
#define _POSIX_C_SOURCE 200809L
#include "ferry_pub.h"
#include "ferry_pub_transport.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

enum slot_state { SLOT_FREE = 0, SLOT_QUEUED, SLOT_INFLIGHT, SLOT_ACKED };
enum conn_state { CONN_DOWN = 0, CONN_CONNECTING, CONN_UP };

typedef struct slot {
  uint8_t state;     /* owner thread only */
  uint8_t ever_sent; /* owner thread only */
  int token;         /* owner thread only: token of the current send */
  /* Written by transport threads (atomically), read by the owner: the token of the latest PUBACK and of
   * the latest failure for this slot. Two cells, so a stale failure of an earlier send can never hide the
   * PUBACK of the current one; a result counts only when its token is the current send's token. */
  int ok_token;
  int fail_token;
  uint32_t len;
  char id[FERRY_ID_MAX];
  char topic[FERRY_TOPIC_MAX];
  char payload[]; /* max_payload + 1 */
} slot;

struct ferry_pub {
  uint32_t capacity, slot_size, max_payload, max_inflight;
  uint32_t cfg_max_inflight; /* as configured; max_inflight = min(this, broker's receive maximum) */
  ferry_overflow overflow;
  uint32_t backoff_min_ms, backoff_max_ms, jitter_pct;
  char topic_prefix[48];
  ferry_clock_fn clock;
  void *clock_ctx;
  const ferry_transport_ops *ops;
  void *tctx;

  uint64_t tail, head, send_next, sent_hi;
  uint32_t inflight;
  int conn;
  uint64_t next_connect_ms;
  uint32_t backoff_ms;
  uint64_t rng;
  uint64_t seen_events;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Under mu: written by transport threads. */
  uint64_t events;
  uint32_t waiters;
  uint32_t ev_connect_ok, ev_connect_fail, ev_lost, ev_deliveries;
  uint32_t ev_receive_max; /* 0: none reported */

  ferry_pub_stats st;
  unsigned char *slots;
};

#define ALIGN16(x) (((x) + 15u) & ~(size_t)15u)

static slot *slot_at(const ferry_pub *p, uint64_t pos) {
  return (slot *)(void *)(p->slots + (size_t)(pos % p->capacity) * p->slot_size);
}

static uint64_t default_clock(void *ctx) {
  struct timespec ts;
  (void)ctx;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const ferry_transport_ops *ops_of(const ferry_pub_config *cfg) {
  return cfg->transport != NULL ? cfg->transport : &ferry_transport_paho;
}

static int config_valid(const ferry_pub_config *cfg) {
  if (cfg == NULL || cfg->capacity == 0 || cfg->max_payload < 64) return 0;
  if (cfg->topic_prefix != NULL && strlen(cfg->topic_prefix) >= 48) return 0;
  if (cfg->jitter_pct > 50) return 0;
  return 1;
}

static size_t slot_size_of(const ferry_pub_config *cfg) {
  return ALIGN16(sizeof(slot) + (size_t)cfg->max_payload + 1);
}

size_t ferry_pub_mem_size(const ferry_pub_config *cfg) {
  const ferry_transport_ops *ops;
  size_t n;
  if (!config_valid(cfg)) return 0;
  ops = ops_of(cfg);
  n = ALIGN16(sizeof(ferry_pub)) + (size_t)cfg->capacity * slot_size_of(cfg);
  if (ops->mem_size != NULL) n += ALIGN16(ops->mem_size(cfg));
  return n;
}

ferry_pub *ferry_pub_init(void *mem, size_t mem_size, const ferry_pub_config *cfg, int *err) {
  ferry_pub *p = (ferry_pub *)mem;
  pthread_condattr_t ca;
  size_t need = ferry_pub_mem_size(cfg);
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  const char *s;
  int rc;
  if (err != NULL) *err = FERRY_PUB_EINVAL;
  if (mem == NULL || need == 0 || mem_size < need || ((uintptr_t)mem & 15u) != 0) return NULL;
  memset(mem, 0, need);
  p->capacity = cfg->capacity;
  p->slot_size = (uint32_t)slot_size_of(cfg);
  p->max_payload = cfg->max_payload;
  p->max_inflight = cfg->max_inflight == 0 ? 64 : cfg->max_inflight;
  if (p->max_inflight > p->capacity) p->max_inflight = p->capacity;
  p->cfg_max_inflight = p->max_inflight;
  p->overflow = cfg->overflow;
  p->backoff_min_ms = cfg->backoff_min_ms == 0 ? 100 : cfg->backoff_min_ms;
  p->backoff_max_ms = cfg->backoff_max_ms == 0 ? 10000 : cfg->backoff_max_ms;
  if (p->backoff_max_ms < p->backoff_min_ms) p->backoff_max_ms = p->backoff_min_ms;
  p->jitter_pct = cfg->jitter_pct;
  s = cfg->topic_prefix != NULL ? cfg->topic_prefix : "telemetry";
  memcpy(p->topic_prefix, s, strlen(s) + 1);
  p->clock = cfg->clock != NULL ? cfg->clock : default_clock;
  p->clock_ctx = cfg->clock_ctx;
  p->ops = ops_of(cfg);
  p->backoff_ms = p->backoff_min_ms;
  for (s = cfg->client_id; s != NULL && *s != '\0'; ++s) seed = (seed ^ (unsigned char)*s) * 0x100000001B3ull;
  p->rng = seed | 1u;
  p->slots = (unsigned char *)mem + ALIGN16(sizeof(ferry_pub));

  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);

  rc = p->ops->init((unsigned char *)p->slots + (size_t)p->capacity * p->slot_size, p, cfg, &p->tctx);
  if (rc != FERRY_PUB_OK) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    if (err != NULL) *err = rc;
    return NULL;
  }
  if (err != NULL) *err = FERRY_PUB_OK;
  return p;
}

/* ---- notifications from the transport (any thread) ---- */

static void notify_locked(ferry_pub *p) {
  ++p->events;
  if (p->waiters > 0) pthread_cond_signal(&p->cv);
}

void ferry_pub_on_connect(ferry_pub *p, int ok) {
  pthread_mutex_lock(&p->mu);
  if (ok)
    ++p->ev_connect_ok;
  else
    ++p->ev_connect_fail;
  notify_locked(p);
  pthread_mutex_unlock(&p->mu);
}

void ferry_pub_on_receive_maximum(ferry_pub *p, uint32_t n) {
  pthread_mutex_lock(&p->mu);
  p->ev_receive_max = n == 0 ? 1 : n;
  pthread_mutex_unlock(&p->mu);
}

void ferry_pub_on_connection_lost(ferry_pub *p) {
  pthread_mutex_lock(&p->mu);
  ++p->ev_lost;
  notify_locked(p);
  pthread_mutex_unlock(&p->mu);
}

void ferry_pub_on_delivery(ferry_pub *p, uint32_t idx, int token, int ok) {
  slot *s;
  if (idx >= p->capacity) return;
  s = (slot *)(void *)(p->slots + (size_t)idx * p->slot_size);
  __atomic_store_n(ok ? &s->ok_token : &s->fail_token, token, __ATOMIC_RELAXED);
  pthread_mutex_lock(&p->mu); /* orders the store before the owner's read of ev_deliveries */
  ++p->ev_deliveries;
  notify_locked(p);
  pthread_mutex_unlock(&p->mu);
}

/* ---- owner thread ---- */

static void reclaim(ferry_pub *p) {
  while (p->tail < p->head && slot_at(p, p->tail)->state == SLOT_ACKED) {
    slot_at(p, p->tail)->state = SLOT_FREE;
    ++p->tail;
  }
  if (p->send_next < p->tail) p->send_next = p->tail;
  if (p->sent_hi < p->tail) p->sent_hi = p->tail;
}

/* Makes room for one message. Returns OK or EFULL. */
static int make_room(ferry_pub *p) {
  slot *s;
  reclaim(p);
  if (p->head - p->tail < p->capacity) return FERRY_PUB_OK;
  if (p->overflow != FERRY_PUB_OVERFLOW_DROP_OLDEST) {
    ++p->st.rejected;
    return FERRY_PUB_EFULL;
  }
  s = slot_at(p, p->tail);
  /* Its late PUBACK, if any, carries a token the reused slot will not have. */
  if (s->state == SLOT_INFLIGHT) --p->inflight;
  s->state = SLOT_FREE;
  ++p->tail;
  ++p->st.dropped;
  reclaim(p);
  return FERRY_PUB_OK;
}

static int set_topic(const ferry_pub *p, char *out, const char *dev, const char *kind) {
  size_t a = strlen(p->topic_prefix), b = strlen(dev), c = strlen(kind);
  if (a + b + c + 3 > FERRY_TOPIC_MAX) return FERRY_PUB_ETOOBIG;
  memcpy(out, p->topic_prefix, a);
  out[a] = '/';
  memcpy(out + a + 1, dev, b);
  out[a + 1 + b] = '/';
  memcpy(out + a + 2 + b, kind, c + 1);
  return FERRY_PUB_OK;
}

static void commit_slot(ferry_pub *p, slot *s) {
  s->state = SLOT_QUEUED;
  s->ever_sent = 0;
  s->token = 0;
  ++p->head;
  ++p->st.published;
}

int ferry_pub_publish(ferry_pub *p, ferry_dev *dev, const ferry_event *ev, char *id_out, size_t id_out_len) {
  slot *s;
  size_t len = 0;
  uint64_t seq;
  int rc;
  if (p == NULL || dev == NULL || ev == NULL || !ferry_kind_valid(ev->kind)) return FERRY_PUB_EINVAL;
  rc = make_room(p);
  if (rc != FERRY_PUB_OK) return rc;
  s = slot_at(p, p->head);
  seq = dev->last_seq + 1;
  rc = set_topic(p, s->topic, dev->device_id, ev->kind);
  if (rc == FERRY_PUB_OK) rc = ferry_id_format(dev->device_id, dev->boot, seq, s->id, sizeof s->id);
  if (rc == FERRY_PUB_OK)
    rc = ferry_event_format(dev->device_id, dev->boot, seq, ev, s->payload, (size_t)p->max_payload + 1, &len);
  if (rc != FERRY_PUB_OK) return rc;
  if (id_out != NULL) {
    size_t il = strlen(s->id);
    if (il >= id_out_len) return FERRY_PUB_ETOOBIG;
    memcpy(id_out, s->id, il + 1);
  }
  dev->last_seq = seq;
  s->len = (uint32_t)len;
  commit_slot(p, s);
  return FERRY_PUB_OK;
}

int ferry_pub_publish_raw(ferry_pub *p, const char *topic, const char *id, const void *payload, size_t len) {
  slot *s;
  size_t tl, il;
  int rc;
  if (p == NULL || id == NULL || (payload == NULL && len > 0)) return FERRY_PUB_EINVAL;
  il = strlen(id);
  tl = topic != NULL ? strlen(topic) : 0;
  if (il >= FERRY_ID_MAX || tl >= FERRY_TOPIC_MAX || len > p->max_payload) return FERRY_PUB_ETOOBIG;
  rc = make_room(p);
  if (rc != FERRY_PUB_OK) return rc;
  s = slot_at(p, p->head);
  if (topic != NULL) {
    memcpy(s->topic, topic, tl + 1);
  } else {
    /* The device id is the id's first component. */
    char dev[FERRY_DEV_ID_MAX + 1];
    const char *slash = strchr(id, '/');
    size_t dl = slash != NULL ? (size_t)(slash - id) : il;
    if (dl == 0 || dl > FERRY_DEV_ID_MAX) return FERRY_PUB_EINVAL;
    memcpy(dev, id, dl);
    dev[dl] = '\0';
    if (!ferry_dev_id_valid(dev)) return FERRY_PUB_EINVAL;
    rc = set_topic(p, s->topic, dev, "raw");
    if (rc != FERRY_PUB_OK) return rc;
  }
  memcpy(s->id, id, il + 1);
  if (len > 0) memcpy(s->payload, payload, len);
  s->payload[len] = '\0';
  s->len = (uint32_t)len;
  commit_slot(p, s);
  return FERRY_PUB_OK;
}

static uint64_t backoff_delay(ferry_pub *p) {
  uint64_t d = p->backoff_ms;
  if (p->jitter_pct > 0) {
    uint64_t span = d * p->jitter_pct / 100u, r;
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    r = span > 0 ? p->rng % (2 * span + 1) : 0;
    d = d - span + r;
  }
  p->backoff_ms = p->backoff_ms >= p->backoff_max_ms / 2 ? p->backoff_max_ms : p->backoff_ms * 2;
  return d;
}

/* Applies transport results recorded before the last read of ev_deliveries. */
static void apply_deliveries(ferry_pub *p) {
  uint64_t pos;
  for (pos = p->tail; pos < p->sent_hi; ++pos) {
    slot *s = slot_at(p, pos);
    if (s->state != SLOT_INFLIGHT) continue;
    if (__atomic_load_n(&s->ok_token, __ATOMIC_RELAXED) == s->token) {
      --p->inflight;
      s->state = SLOT_ACKED;
      ++p->st.acked;
    } else if (__atomic_load_n(&s->fail_token, __ATOMIC_RELAXED) == s->token) {
      --p->inflight;
      s->state = SLOT_QUEUED;
      if (pos < p->send_next) p->send_next = pos;
    }
  }
}

static void requeue_inflight(ferry_pub *p) {
  uint64_t pos;
  for (pos = p->tail; pos < p->sent_hi; ++pos) {
    slot *s = slot_at(p, pos);
    if (s->state == SLOT_INFLIGHT) s->state = SLOT_QUEUED;
  }
  p->inflight = 0;
  p->send_next = p->tail;
}

static int send_queued(ferry_pub *p) {
  while (p->send_next < p->head && p->inflight < p->max_inflight) {
    uint64_t pos = p->send_next;
    slot *s = slot_at(p, pos);
    int token = 0, rc;
    if (s->state != SLOT_QUEUED) {
      ++p->send_next;
      continue;
    }
    /* Forget results of earlier sends of this slot: Paho reuses message ids. */
    __atomic_store_n(&s->ok_token, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->fail_token, 0, __ATOMIC_RELAXED);
    rc = p->ops->send(p->tctx, (uint32_t)(pos % p->capacity), s->topic, s->id, s->payload, s->len, &token);
    if (rc == FERRY_PUB_EAGAIN) {
      ++p->st.send_busy;
      return FERRY_PUB_OK;
    }
    if (rc != FERRY_PUB_OK) return FERRY_PUB_ETRANSPORT;
    s->state = SLOT_INFLIGHT;
    s->token = token;
    ++p->inflight;
    ++p->st.sent;
    if (s->ever_sent) ++p->st.resent;
    s->ever_sent = 1;
    ++p->send_next;
    if (p->sent_hi < p->send_next) p->sent_hi = p->send_next;
  }
  return FERRY_PUB_OK;
}

int ferry_pub_poll(ferry_pub *p) {
  uint32_t ok, fail, lost, deliveries, receive_max;
  uint64_t now;
  if (p == NULL) return FERRY_PUB_EINVAL;
  pthread_mutex_lock(&p->mu);
  deliveries = p->ev_deliveries;
  p->ev_deliveries = 0;
  ok = p->ev_connect_ok;
  fail = p->ev_connect_fail;
  lost = p->ev_lost;
  receive_max = p->ev_receive_max;
  p->ev_receive_max = 0;
  p->ev_connect_ok = p->ev_connect_fail = p->ev_lost = 0;
  p->seen_events = p->events;
  pthread_mutex_unlock(&p->mu);

  if (deliveries > 0) apply_deliveries(p);
  reclaim(p);
  now = p->clock(p->clock_ctx);
  /* One attempt is outstanding at a time, so a success always precedes a loss in the same batch. */
  if (receive_max > 0) p->max_inflight = receive_max < p->cfg_max_inflight ? receive_max : p->cfg_max_inflight;
  if (ok > 0) {
    p->conn = CONN_UP;
    p->backoff_ms = p->backoff_min_ms;
    p->st.connects += ok;
  }
  if (fail > 0) {
    p->conn = CONN_DOWN;
    p->st.connect_failures += fail;
    p->next_connect_ms = now + backoff_delay(p);
  }
  if (lost > 0) {
    p->st.connection_lost += lost;
    if (p->conn == CONN_UP) {
      p->conn = CONN_DOWN;
      p->next_connect_ms = now; /* first retry at once; failures back off from there */
    }
    requeue_inflight(p);
  }
  if (p->conn == CONN_DOWN && now >= p->next_connect_ms) {
    p->conn = CONN_CONNECTING;
    if (p->ops->connect(p->tctx) != FERRY_PUB_OK) {
      p->conn = CONN_DOWN;
      ++p->st.connect_failures;
      p->next_connect_ms = now + backoff_delay(p);
    }
  }
  if (p->conn == CONN_UP) return send_queued(p);
  return FERRY_PUB_OK;
}

int ferry_pub_wait(ferry_pub *p, int timeout_ms) {
  struct timespec dl;
  int got;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec += 1;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&p->mu);
  ++p->waiters;
  while (p->events == p->seen_events) {
    if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) != 0) break;
  }
  --p->waiters;
  got = p->events != p->seen_events;
  pthread_mutex_unlock(&p->mu);
  return got;
}

void ferry_pub_get_stats(const ferry_pub *p, ferry_pub_stats *out) {
  *out = p->st;
  out->queued = (uint32_t)(p->head - p->tail);
  out->inflight = p->inflight;
  out->max_inflight = p->max_inflight;
  out->connected = p->conn == CONN_UP;
}

uint64_t ferry_pub_next_connect_ms(const ferry_pub *p) { return p->conn == CONN_DOWN ? p->next_connect_ms : 0; }

void ferry_pub_destroy(ferry_pub *p) {
  if (p == NULL) return;
  if (p->ops->destroy != NULL) p->ops->destroy(p->tctx);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
}
