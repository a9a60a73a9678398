/*
 * compat_check.c - does the installed librdkafka work fully against a broker?
 *
 * Evidence for the broker-version choice in scripts/kafka/README.md: Kafka 4.x
 * removed old protocol versions (KIP-896), and librdkafka issue #4948 reports
 * client features being switched off against brokers that raised their
 * minimum versions. This program exercises everything tokenledger needs from
 * Kafka through the C API and prints PASS/FAIL per step:
 *
 *   features     protocol features librdkafka enabled for the broker (ApiVersions)
 *   create       Admin CreateTopics: N partitions, retention.ms=-1, cleanup.policy=delete
 *   create-again CreateTopics on the existing topic answers TOPIC_ALREADY_EXISTS
 *   metadata     the topic has N partitions
 *   describe     Admin DescribeConfigs: retention.ms=-1, cleanup.policy=delete
 *   produce      idempotent producer (enable.idempotence=true, acks=all), keyed
 *                messages, every delivery report without error and PERSISTED
 *   idempotence  the producer obtained a producer id (InitProducerId) and has no
 *                fatal error
 *   consume      rd_kafka_assign() of all partitions from the beginning, no
 *                subscribe and no commits (librdkafka 2.0.2 still wants a
 *                group.id for assign: reported as INFO assign-no-group);
 *                count, partition, offset and per-key order of every message
 *   watermarks   rd_kafka_query_watermark_offsets(): low 0, high = count
 *   offsets-for-times  ListOffsets by timestamp: offset 0 for timestamp 0
 *   group        (extra) subscribe + commit + committed: the consumer-group APIs
 *   delete       Admin DeleteTopics (unless -k)
 *   warnings     librdkafka logged no feature fallback / "disabled" / "not
 *                supported" lines (debug=feature,protocol,broker,eos,admin,...)
 *
 * Build and run (scripts/kafka.sh start first):
 *   gcc -O2 -Wall -o /tmp/compat_check scripts/kafka/compat_check.c -lrdkafka
 *   /tmp/compat_check -b 127.0.0.1:19092 [-t topic] [-n msgs] [-p parts]
 *                     [-l debug.log] [-k]
 * Exit status 0 only when every step passed.
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;
static FILE *debug_log;

static void result(int ok, const char *step, const char *fmt, ...) {
        va_list ap;
        printf("%s %-17s ", ok ? "PASS" : "FAIL", step);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        if (!ok)
                failures++;
}

/* ---- log capture -------------------------------------------------------- */

#define MAX_NOTES 64
static char *notes[MAX_NOTES]; /* suspicious log lines, deduplicated */
static int n_notes, n_notes_total, n_kind[3];
static char features_line[2048]; /* last "Updated enabled protocol features" */
static char pid_line[512];       /* first line that reports the producer id */

/* request versions librdkafka actually sent ("Sent XRequest (vN, ...") */
#define MAX_SENT 48
static struct {
        char api[40];
        int minv, maxv, n;
} sent[MAX_SENT];
static int n_sent;

static void note_sent(const char *buf) {
        const char *s = strstr(buf, "Sent ");
        if (!s)
                return;
        char api[40];
        int v;
        if (sscanf(s, "Sent %39[A-Za-z] (v%d", api, &v) != 2)
                return;
        size_t len = strlen(api);
        if (len > 7 && !strcmp(api + len - 7, "Request"))
                api[len - 7] = 0;
        for (int i = 0; i < n_sent; i++)
                if (!strcmp(sent[i].api, api)) {
                        if (v < sent[i].minv)
                                sent[i].minv = v;
                        if (v > sent[i].maxv)
                                sent[i].maxv = v;
                        sent[i].n++;
                        return;
                }
        if (n_sent < MAX_SENT) {
                snprintf(sent[n_sent].api, sizeof(sent[n_sent].api), "%s", api);
                sent[n_sent].minv = sent[n_sent].maxv = v;
                sent[n_sent++].n = 1;
        }
}

static int contains_ci(const char *hay, const char *needle) {
        size_t n = strlen(needle);
        for (; *hay; hay++)
                if (strncasecmp(hay, needle, n) == 0)
                        return 1;
        return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
        if (debug_log) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                fprintf(debug_log, "%ld.%03ld|%d|%s|%s| %s\n", (long)ts.tv_sec,
                        ts.tv_nsec / 1000000, level, rd_kafka_name(rk), fac, buf);
        }
        note_sent(buf);
        if (strstr(buf, "Updated enabled protocol features"))
                snprintf(features_line, sizeof(features_line), "%s", buf);
        if (!pid_line[0] && strstr(buf, "Acquired PID"))
                snprintf(pid_line, sizeof(pid_line), "[%s] %s", fac, buf);
        int suspicious = level <= 4 /* warning or worse */ ||
                         contains_ci(buf, "disabling feature") ||
                         contains_ci(buf, "not supported") ||
                         contains_ci(buf, "fallback") ||
                         contains_ci(buf, "disabled") ||
                         contains_ci(buf, "unsupported");
        /* Feature probing lists every feature with "supported by broker";
         * only the negative answers are interesting. */
        if (suspicious && strstr(buf, "supported by broker") &&
            !strstr(buf, "NOT supported"))
                suspicious = 0;
        if (!suspicious)
                return;
        n_notes_total++;
        /* Classify. Against Kafka 4.x (KIP-896: Fetch v0..3 removed) librdkafka
         * disables the features MsgVer1 and ThrottleTime; both are only
         * fallbacks used to pick Produce/Fetch versions when MsgVer2 is not
         * available (rdkafka_msgset_writer.c, rdkafka_request.c). The first
         * InitProducerId after a broker start may answer
         * COORDINATOR_LOAD_IN_PROGRESS while the broker fetches a block of
         * producer ids from the controller; librdkafka retries. */
        int kind = 2; /* unexpected */
        if (strstr(buf, "MsgVer1") || strstr(buf, "ThrottleTime"))
                kind = 0;
        else if (strstr(buf, "Coordinator load in progress"))
                kind = 1;
        n_kind[kind]++;
        /* dedupe on the text after the broker name */
        const char *key = strstr(buf, ": ");
        key = key ? key + 2 : buf;
        for (int i = 0; i < n_notes; i++)
                if (strstr(notes[i], key))
                        return;
        if (n_notes < MAX_NOTES) {
                static const char *tag[] = {"legacy-fallback", "transient",
                                            "UNEXPECTED"};
                char line[1024];
                snprintf(line, sizeof(line), "%-15s %d %s %s: %s", tag[kind],
                         level, rd_kafka_name(rk), fac, buf);
                notes[n_notes++] = strdup(line);
        }
}

static const char *debug_contexts = "feature,protocol,broker,eos,admin,topic";

static rd_kafka_conf_t *base_conf(const char *brokers) {
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err,
                              sizeof(err)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "debug", debug_contexts, err,
                              sizeof(err)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "config: %s\n", err);
                exit(2);
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);
        return conf;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
        char err[512];
        if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
                fprintf(stderr, "config %s=%s: %s\n", k, v, err);
                exit(2);
        }
}

/* ---- admin helpers ------------------------------------------------------ */

static rd_kafka_event_t *wait_admin(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int timeout_ms) {
        for (;;) {
                rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
                if (!ev)
                        return NULL;
                if (rd_kafka_event_type(ev) == type)
                        return ev;
                if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR)
                        fprintf(stderr, "admin error event: %s\n",
                                rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
        }
}

static rd_kafka_resp_err_t create_topic(rd_kafka_t *rk, rd_kafka_queue_t *q,
                                        const char *topic, int partitions,
                                        char *errbuf, size_t errsize) {
        char err[512];
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
        if (!nt) {
                snprintf(errbuf, errsize, "NewTopic: %s", err);
                return RD_KAFKA_RESP_ERR__INVALID_ARG;
        }
        rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "delete");
        rd_kafka_AdminOptions_t *opt =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(opt, 15000, err,
                                                    sizeof(err));
        rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
        rd_kafka_event_t *ev =
            wait_admin(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, 30000);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_NewTopic_destroy(nt);
        if (!ev) {
                snprintf(errbuf, errsize, "no CreateTopics result in 30 s");
                return RD_KAFKA_RESP_ERR__TIMED_OUT;
        }
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
        if (e) {
                snprintf(errbuf, errsize, "%s", rd_kafka_event_error_string(ev));
        } else {
                size_t cnt;
                const rd_kafka_topic_result_t **tr =
                    rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &cnt);
                if (cnt != 1) {
                        e = RD_KAFKA_RESP_ERR__FAIL;
                        snprintf(errbuf, errsize, "%zu topic results", cnt);
                } else {
                        e = rd_kafka_topic_result_error(tr[0]);
                        const char *s = rd_kafka_topic_result_error_string(tr[0]);
                        snprintf(errbuf, errsize, "%s: %s",
                                 rd_kafka_err2name(e),
                                 s ? s : rd_kafka_err2str(e));
                }
        }
        rd_kafka_event_destroy(ev);
        return e;
}

static void describe_topic(rd_kafka_t *rk, rd_kafka_queue_t *q,
                           const char *topic) {
        char err[512];
        rd_kafka_ConfigResource_t *res =
            rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
        rd_kafka_AdminOptions_t *opt =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_AdminOptions_set_request_timeout(opt, 15000, err, sizeof(err));
        rd_kafka_DescribeConfigs(rk, &res, 1, opt, q);
        rd_kafka_event_t *ev =
            wait_admin(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, 30000);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_ConfigResource_destroy(res);
        if (!ev) {
                result(0, "describe", "no DescribeConfigs result in 30 s");
                return;
        }
        if (rd_kafka_event_error(ev)) {
                result(0, "describe", "%s", rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
                return;
        }
        size_t rcnt;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &rcnt);
        if (rcnt != 1 || rd_kafka_ConfigResource_error(rs[0])) {
                result(0, "describe", "resource error: %s",
                       rcnt ? rd_kafka_ConfigResource_error_string(rs[0])
                            : "no resource");
                rd_kafka_event_destroy(ev);
                return;
        }
        size_t ccnt;
        const rd_kafka_ConfigEntry_t **ce =
            rd_kafka_ConfigResource_configs(rs[0], &ccnt);
        const char *retention = NULL, *cleanup = NULL;
        const char *retention_src = "", *cleanup_src = "";
        for (size_t i = 0; i < ccnt; i++) {
                const char *n = rd_kafka_ConfigEntry_name(ce[i]);
                const char *v = rd_kafka_ConfigEntry_value(ce[i]);
                const char *src = rd_kafka_ConfigSource_name(
                    rd_kafka_ConfigEntry_source(ce[i]));
                if (!strcmp(n, "retention.ms")) {
                        retention = v;
                        retention_src = src;
                } else if (!strcmp(n, "cleanup.policy")) {
                        cleanup = v;
                        cleanup_src = src;
                }
        }
        int ok = retention && cleanup && !strcmp(retention, "-1") &&
                 !strcmp(cleanup, "delete");
        result(ok, "describe",
               "%zu config entries; retention.ms=%s (%s), cleanup.policy=%s (%s)",
               ccnt, retention ? retention : "(missing)", retention_src,
               cleanup ? cleanup : "(missing)", cleanup_src);
        rd_kafka_event_destroy(ev);
}

static void delete_topic(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *topic) {
        char err[512];
        rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
        rd_kafka_AdminOptions_t *opt =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(opt, 15000, err, sizeof(err));
        rd_kafka_DeleteTopics(rk, &dt, 1, opt, q);
        rd_kafka_event_t *ev =
            wait_admin(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, 30000);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_DeleteTopic_destroy(dt);
        if (!ev) {
                result(0, "delete", "no DeleteTopics result in 30 s");
                return;
        }
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
        const char *s = rd_kafka_event_error_string(ev);
        if (!e) {
                size_t cnt;
                const rd_kafka_topic_result_t **tr =
                    rd_kafka_DeleteTopics_result_topics(
                        rd_kafka_event_DeleteTopics_result(ev), &cnt);
                if (cnt == 1) {
                        e = rd_kafka_topic_result_error(tr[0]);
                        s = rd_kafka_topic_result_error_string(tr[0]);
                }
        }
        result(!e, "delete", "DeleteTopics %s: %s", topic,
               e ? (s ? s : rd_kafka_err2str(e)) : "ok");
        rd_kafka_event_destroy(ev);
}

/* ---- produce ------------------------------------------------------------ */

struct expect {
        int32_t partition; /* from the delivery report */
        int64_t offset;
        int key;
        int seq; /* per-key sequence number */
        int delivered;
};
static struct expect *exp_msgs;
static int n_msgs = 10000, n_keys = 64, n_parts = 6;
static int dr_ok, dr_err, dr_not_persisted;
static char first_dr_err[512];

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        (void)opaque;
        intptr_t i = (intptr_t)m->_private;
        if (m->err) {
                if (!dr_err++)
                        snprintf(first_dr_err, sizeof(first_dr_err), "%s: %s",
                                 rd_kafka_err2name(m->err),
                                 rd_kafka_err2str(m->err));
                return;
        }
        if (rd_kafka_message_status(m) != RD_KAFKA_MSG_STATUS_PERSISTED)
                dr_not_persisted++;
        exp_msgs[i].partition = m->partition;
        exp_msgs[i].offset = m->offset;
        exp_msgs[i].delivered = 1;
        dr_ok++;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void produce(const char *brokers, const char *topic) {
        char err[512];
        rd_kafka_conf_t *conf = base_conf(brokers);
        set(conf, "enable.idempotence", "true");
        set(conf, "acks", "all");
        set(conf, "linger.ms", "5");
        set(conf, "message.timeout.ms", "30000");
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!p) {
                result(0, "produce", "rd_kafka_new(producer): %s", err);
                return;
        }
        int *seq = calloc(n_keys, sizeof(int));
        int64_t t0 = now_ms();
        for (int i = 0; i < n_msgs; i++) {
                int k = (int)(((unsigned)i * 2654435761u) % (unsigned)n_keys);
                char key[32], val[64];
                snprintf(key, sizeof(key), "owner-%d", k);
                snprintf(val, sizeof(val), "i=%d key=%d seq=%d", i, k, seq[k]);
                exp_msgs[i].key = k;
                exp_msgs[i].seq = seq[k]++;
                exp_msgs[i].partition = -1;
                rd_kafka_resp_err_t e;
                while ((e = rd_kafka_producev(
                            p, RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_KEY(key, strlen(key)),
                            RD_KAFKA_V_VALUE(val, strlen(val)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
                            RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(p, 50);
                if (e) {
                        result(0, "produce", "producev #%d: %s", i,
                               rd_kafka_err2str(e));
                        break;
                }
                rd_kafka_poll(p, 0);
        }
        rd_kafka_resp_err_t fe = rd_kafka_flush(p, 60000);
        int64_t t1 = now_ms();
        result(!fe && dr_ok == n_msgs && !dr_err && !dr_not_persisted, "produce",
               "%d/%d delivered in %" PRId64 " ms (acks=all, idempotent, %d keys)"
               "; errors %d%s%s; not persisted %d; flush: %s",
               dr_ok, n_msgs, t1 - t0, n_keys, dr_err, dr_err ? " first: " : "",
               first_dr_err, dr_not_persisted, rd_kafka_err2str(fe));

        char fatal[512] = "";
        rd_kafka_resp_err_t fatal_err =
            rd_kafka_fatal_error(p, fatal, sizeof(fatal));
        char idem[64];
        size_t sz = sizeof(idem);
        rd_kafka_conf_get(rd_kafka_conf(p), "enable.idempotence", idem, &sz);
        result(!fatal_err && pid_line[0] && !strcmp(idem, "true"),
               "idempotence", "enable.idempotence=%s; fatal error: %s; %s", idem,
               fatal_err ? fatal : "none",
               pid_line[0] ? pid_line : "no producer id seen in the eos log");
        rd_kafka_destroy(p);
        free(seq);
}

/* ---- consume ------------------------------------------------------------ */

static void consume(const char *brokers, const char *topic) {
        char err[512];
        /* Does rd_kafka_assign() work without group.id? (It does not in
         * librdkafka 2.0.2: "Local: Unknown group".) Informational only. */
        {
                rd_kafka_conf_t *conf = base_conf(brokers);
                rd_kafka_t *c =
                    rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
                if (c) {
                        rd_kafka_topic_partition_list_t *l =
                            rd_kafka_topic_partition_list_new(1);
                        rd_kafka_topic_partition_list_add(l, topic, 0)->offset =
                            RD_KAFKA_OFFSET_BEGINNING;
                        rd_kafka_resp_err_t e = rd_kafka_assign(c, l);
                        rd_kafka_topic_partition_list_destroy(l);
                        printf("INFO %-17s rd_kafka_assign() without group.id: %s%s\n",
                               "assign-no-group", rd_kafka_err2str(e),
                               e ? " -> the consumer below sets a group.id but never "
                                   "subscribes or commits"
                                 : "");
                        rd_kafka_destroy(c);
                }
        }
        rd_kafka_conf_t *conf = base_conf(brokers);
        /* librdkafka 2.0.2 needs a group.id for rd_kafka_assign(); it is only a
         * name here: no subscribe, no commits, no offsets stored. */
        set(conf, "group.id", "compat-check-assign-only");
        set(conf, "enable.auto.commit", "false");
        set(conf, "enable.auto.offset.store", "false");
        set(conf, "enable.partition.eof", "true");
        rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!c) {
                result(0, "consume", "rd_kafka_new(consumer): %s", err);
                return;
        }
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(n_parts);
        for (int p = 0; p < n_parts; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t e = rd_kafka_assign(c, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (e) {
                result(0, "consume", "rd_kafka_assign: %s", rd_kafka_err2str(e));
                rd_kafka_destroy(c);
                return;
        }

        int64_t *count = calloc(n_parts, sizeof(int64_t));
        int64_t expected_total = 0;
        int64_t *expected = calloc(n_parts, sizeof(int64_t));
        for (int i = 0; i < n_msgs; i++)
                if (exp_msgs[i].delivered && exp_msgs[i].partition >= 0 &&
                    exp_msgs[i].partition < n_parts) {
                        expected[exp_msgs[i].partition]++;
                        expected_total++;
                }
        int *last_seq = malloc(n_keys * sizeof(int));
        for (int k = 0; k < n_keys; k++)
                last_seq[k] = -1;
        int *key_part = malloc(n_keys * sizeof(int));
        for (int k = 0; k < n_keys; k++)
                key_part[k] = -1;
        int eof = 0, got = 0, bad = 0, errors = 0;
        char first_bad[512] = "";
        int64_t t0 = now_ms(), deadline = t0 + 60000;
        int *at_eof = calloc(n_parts, sizeof(int));
        while (now_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        if (m->partition >= 0 && m->partition < n_parts &&
                            !at_eof[m->partition] &&
                            count[m->partition] >= expected[m->partition]) {
                                at_eof[m->partition] = 1;
                                eof++;
                        }
                        rd_kafka_message_destroy(m);
                        if (eof == n_parts)
                                break;
                        continue;
                }
                if (m->err) {
                        if (!errors++)
                                snprintf(first_bad, sizeof(first_bad),
                                         "consumer error: %s",
                                         rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                got++;
                int p = m->partition;
                int i = -1, k = -1, s = -1;
                char val[128];
                size_t n = m->len < sizeof(val) - 1 ? m->len : sizeof(val) - 1;
                memcpy(val, m->payload, n);
                val[n] = 0;
                int okmsg = sscanf(val, "i=%d key=%d seq=%d", &i, &k, &s) == 3 &&
                            i >= 0 && i < n_msgs && k >= 0 && k < n_keys;
                if (okmsg) {
                        char key[32];
                        snprintf(key, sizeof(key), "owner-%d", k);
                        okmsg = m->key_len == strlen(key) &&
                                !memcmp(m->key, key, m->key_len) &&
                                exp_msgs[i].partition == p &&
                                exp_msgs[i].offset == m->offset &&
                                m->offset == count[p] /* consecutive from 0 */ &&
                                exp_msgs[i].seq == s &&
                                s == last_seq[k] + 1 /* per-key order */ &&
                                (key_part[k] == -1 || key_part[k] == p);
                }
                if (!okmsg && !bad++)
                        snprintf(first_bad, sizeof(first_bad),
                                 "unexpected message at partition %d offset "
                                 "%" PRId64 ": '%s'",
                                 p, m->offset, val);
                if (p >= 0 && p < n_parts)
                        count[p]++;
                if (k >= 0 && k < n_keys) {
                        last_seq[k] = s;
                        key_part[k] = p;
                }
                rd_kafka_message_destroy(m);
        }
        int64_t t1 = now_ms();
        char per[256] = "";
        for (int p = 0; p < n_parts; p++) {
                size_t l = strlen(per);
                snprintf(per + l, sizeof(per) - l, "%s%d:%" PRId64, p ? " " : "",
                         p, count[p]);
        }
        int counts_ok = 1;
        for (int p = 0; p < n_parts; p++)
                counts_ok &= count[p] == expected[p];
        result(counts_ok && got == expected_total && !bad && !errors &&
                   eof == n_parts,
               "consume",
               "%d/%" PRId64 " messages in %" PRId64
               " ms via rd_kafka_assign (no subscribe, no commit); per partition %s; order "
               "and offsets %s%s%s",
               got, expected_total, t1 - t0, per,
               bad || errors ? "WRONG" : "ok", first_bad[0] ? ": " : "",
               first_bad);

        /* Watermarks */
        int wm_ok = 1;
        char wm[256] = "";
        for (int p = 0; p < n_parts; p++) {
                int64_t lo = -1, hi = -1;
                rd_kafka_resp_err_t we =
                    rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 10000);
                size_t l = strlen(wm);
                if (we) {
                        wm_ok = 0;
                        snprintf(wm + l, sizeof(wm) - l, "%s%d:%s", p ? " " : "",
                                 p, rd_kafka_err2str(we));
                } else {
                        wm_ok &= lo == 0 && hi == expected[p];
                        snprintf(wm + l, sizeof(wm) - l,
                                 "%s%d:[%" PRId64 ",%" PRId64 ")", p ? " " : "",
                                 p, lo, hi);
                }
        }
        result(wm_ok, "watermarks", "low/high per partition %s", wm);

        /* ListOffsets by timestamp */
        rd_kafka_topic_partition_list_t *ts =
            rd_kafka_topic_partition_list_new(n_parts);
        for (int p = 0; p < n_parts; p++)
                rd_kafka_topic_partition_list_add(ts, topic, p)->offset = 0;
        e = rd_kafka_offsets_for_times(c, ts, 10000);
        int ts_ok = !e;
        /* An empty partition has no message at or after the timestamp:
         * the broker answers offset -1 (end). */
        for (int p = 0; !e && p < ts->cnt; p++)
                ts_ok &= !ts->elems[p].err &&
                         (expected[p] ? ts->elems[p].offset == 0
                                      : ts->elems[p].offset <= 0);
        result(ts_ok, "offsets-for-times",
               "timestamp 0 -> offset 0 on every non-empty partition: %s",
               e ? rd_kafka_err2str(e) : (ts_ok ? "ok" : "wrong offsets"));
        rd_kafka_topic_partition_list_destroy(ts);

        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        free(count);
        free(expected);
        free(last_seq);
        free(key_part);
        free(at_eof);
}

/* Extra: the consumer-group APIs (FindCoordinator, JoinGroup, SyncGroup,
 * Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup). tokenledger does not use
 * them, kcat -G does. */
static void group(const char *brokers, const char *topic, int64_t total) {
        char err[512], gid[128];
        snprintf(gid, sizeof(gid), "compat-check-%d", (int)getpid());
        rd_kafka_conf_t *conf = base_conf(brokers);
        set(conf, "group.id", gid);
        set(conf, "auto.offset.reset", "earliest");
        set(conf, "enable.auto.commit", "false");
        set(conf, "session.timeout.ms", "10000");
        rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!c) {
                result(0, "group", "rd_kafka_new: %s", err);
                return;
        }
        rd_kafka_poll_set_consumer(c);
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(c, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        int64_t got = 0, t0 = now_ms();
        char first_err[512] = "";
        while (!e && got < total && now_ms() - t0 < 60000) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
                if (!m)
                        continue;
                if (!m->err)
                        got++;
                else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF &&
                         !first_err[0])
                        snprintf(first_err, sizeof(first_err), "%s",
                                 rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
        }
        rd_kafka_resp_err_t ce = e ? e : rd_kafka_commit(c, NULL, 0);
        int64_t committed = 0;
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(n_parts);
        for (int p = 0; p < n_parts; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p);
        rd_kafka_resp_err_t fe = rd_kafka_committed(c, parts, 10000);
        for (int p = 0; !fe && p < parts->cnt; p++)
                if (parts->elems[p].offset > 0)
                        committed += parts->elems[p].offset;
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        result(!e && got == total && !ce && !fe && committed == total, "group",
               "subscribe %s: %s; %" PRId64 "/%" PRId64
               " consumed in %" PRId64 " ms; commit: %s; committed: %s, sum %" PRId64 "%s%s",
               gid, rd_kafka_err2str(e), got, total, now_ms() - t0,
               rd_kafka_err2str(ce), rd_kafka_err2str(fe), committed,
               first_err[0] ? "; first error: " : "", first_err);
}

int main(int argc, char **argv) {
        const char *brokers = "127.0.0.1:19092";
        const char *log_path = "compat_check.debug.log";
        char topic_buf[128];
        const char *topic = NULL;
        int keep = 0, opt;
        while ((opt = getopt(argc, argv, "b:t:n:p:l:k")) != -1) {
                switch (opt) {
                case 'b': brokers = optarg; break;
                case 't': topic = optarg; break;
                case 'n': n_msgs = atoi(optarg); break;
                case 'p': n_parts = atoi(optarg); break;
                case 'l': log_path = optarg; break;
                case 'k': keep = 1; break;
                default:
                        fprintf(stderr,
                                "usage: %s [-b brokers] [-t topic] [-n msgs] "
                                "[-p partitions] [-l debug.log] [-k]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (!topic) {
                snprintf(topic_buf, sizeof(topic_buf), "compat-check-%ld-%d",
                         (long)time(NULL), (int)getpid());
                topic = topic_buf;
        }
        debug_log = fopen(log_path, "w");
        exp_msgs = calloc(n_msgs, sizeof(*exp_msgs));
        printf("librdkafka %s, brokers %s, topic %s, %d partitions, %d messages, "
               "debug log %s\n",
               rd_kafka_version_str(), brokers, topic, n_parts, n_msgs, log_path);

        char err[512];
        rd_kafka_t *admin = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(brokers),
                                         err, sizeof(err));
        if (!admin) {
                fprintf(stderr, "rd_kafka_new(admin): %s\n", err);
                return 2;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_new(admin);

        /* Metadata also triggers the ApiVersion handshake and feature probe. */
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(admin, 1, NULL, &md, 10000);
        if (e) {
                result(0, "features", "metadata: %s", rd_kafka_err2str(e));
        } else {
                rd_kafka_metadata_destroy(md);
                /* All protocol features of librdkafka 2.0.x (rdkafka_feature.c).
                 * MsgVer1 and ThrottleTime are fallbacks for brokers without
                 * MsgVer2; every other one must be enabled. */
                const char *all[] = {"MsgVer1", "ApiVersion", "BrokerBalancedConsumer",
                                     "ThrottleTime", "Sasl", "SaslHandshake",
                                     "BrokerGroupCoordinator", "LZ4", "OffsetTime",
                                     "MsgVer2", "IdempotentProducer", "ZSTD",
                                     "SaslAuthReq", NULL};
                char missing[256] = "", legacy[128] = "";
                const char *f = strstr(features_line, " to ");
                for (int i = 0; all[i]; i++) {
                        char list[2100];
                        snprintf(list, sizeof(list), "%s", f ? f + 4 : "");
                        int found = 0;
                        for (char *t = strtok(list, ","); t; t = strtok(NULL, ","))
                                if (!strcmp(t, all[i]))
                                        found = 1;
                        if (found)
                                continue;
                        int is_legacy = !strcmp(all[i], "MsgVer1") ||
                                        !strcmp(all[i], "ThrottleTime");
                        char *dst = is_legacy ? legacy : missing;
                        size_t sz = is_legacy ? sizeof(legacy) : sizeof(missing);
                        size_t l = strlen(dst);
                        snprintf(dst + l, sz - l, " %s", all[i]);
                }
                result(f && !missing[0], "features",
                       "enabled: %s; disabled legacy fallbacks (unused when MsgVer2 "
                       "is enabled):%s%s%s",
                       f ? f + 4 : "(no 'Updated enabled protocol features' line)",
                       legacy[0] ? legacy : " none",
                       missing[0] ? "; MISSING:" : "", missing);
        }

        char msg[600];
        e = create_topic(admin, q, topic, n_parts, msg, sizeof(msg));
        result(!e, "create", "CreateTopics %s partitions=%d retention.ms=-1 "
               "cleanup.policy=delete: %s", topic, n_parts, msg);
        e = create_topic(admin, q, topic, n_parts, msg, sizeof(msg));
        result(e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, "create-again",
               "second CreateTopics answers %s", msg);

        rd_kafka_topic_t *rkt = rd_kafka_topic_new(admin, topic, NULL);
        e = rd_kafka_metadata(admin, 0, rkt, &md, 10000);
        if (e) {
                result(0, "metadata", "%s", rd_kafka_err2str(e));
        } else {
                int pc = md->topic_cnt == 1 ? md->topics[0].partition_cnt : -1;
                result(pc == n_parts && !md->topics[0].err, "metadata",
                       "topic has %d partitions (%s), broker %s:%d", pc,
                       rd_kafka_err2str(md->topics[0].err), md->brokers[0].host,
                       md->brokers[0].port);
                rd_kafka_metadata_destroy(md);
        }
        rd_kafka_topic_destroy(rkt);

        describe_topic(admin, q, topic);
        produce(brokers, topic);
        consume(brokers, topic);
        group(brokers, topic, dr_ok);
        if (!keep)
                delete_topic(admin, q, topic);

        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(admin);

        printf("INFO %-17s", "request-versions");
        for (int i = 0; i < n_sent; i++)
                printf(" %s v%d%s", sent[i].api, sent[i].minv,
                       sent[i].maxv != sent[i].minv ? "+" : "");
        printf("\n");
        result(n_kind[2] == 0, "warnings",
               "%d log lines at warning level or mentioning "
               "fallback/disabled/not supported (%d distinct): %d legacy-fallback, "
               "%d transient, %d unexpected",
               n_notes_total, n_notes, n_kind[0], n_kind[1], n_kind[2]);
        for (int i = 0; i < n_notes; i++)
                printf("     | %s\n", notes[i]);
        if (debug_log)
                fclose(debug_log);
        printf("%s: %d step(s) failed\n", failures ? "FAIL" : "PASS", failures);
        return failures ? 1 : 0;
}
