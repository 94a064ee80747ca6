/*
 * ingestload.verify._scan: the verifier's bulk reader of consumed Kafka records (issue 20).
 *
 * The verifier files a batch one run of a partition at a time. For a run it needs each record's
 * envelope header, the CRC-32 of each value and the offsets. Asking confluent-kafka's Message for
 * its headers builds a list, a tuple, a str and a bytes per record; that alone cost more than the
 * rest of the verifier. scan() reads them where confluent-kafka keeps them: the Message object's
 * fields and librdkafka's own parsed header list (rd_kafka_header_get_all), without creating a
 * Python object per record.
 *
 * It is an accelerator, never a judge. A run is "clean" only if every record in it has this run's
 * header first, 41 bytes long, a value whose CRC-32 (the callable given: the same one the senders
 * use) matches the envelope, and a rising offset. Anything else -- a record whose headers were
 * already turned into Python objects, a missing value, another header first -- marks the run
 * unclean, and the Python code files it through its own accessors as before.
 *
 * The Message layout below is confluent-kafka's (src/confluent_kafka/src/confluent_kafka.h, 2.x with
 * header support), up to the fields read here. ingestload.verify.scan checks it on a Message built
 * with known fields (probe) before it uses scan(), and compares one record of every batch with the
 * Message's own accessors.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#define ENVELOPE_SIZE 41
/* Where the envelope's fields sit in its 41 bytes (ingestload.messages.envelope). */
#define RUN_AT 1
#define PRODUCER_AT 9
#define SEQ_AT 17
#define SENT_AT 25
#define CRC_AT 33
#define TAG_AT 37

static uint64_t
big_endian(const unsigned char *at, int width)
{
    uint64_t value = 0;
    int k;
    for (k = 0; k < width; k++) {
        value = (value << 8) | at[k];
    }
    return value;
}

typedef struct {
    PyObject_HEAD
    PyObject *topic;
    PyObject *value;
    PyObject *key;
    PyObject *headers;  /* a Python list once Message.headers() was called, else NULL */
    void *c_headers;    /* rd_kafka_headers_t *, until Message.headers() converts them */
    PyObject *error;
    int32_t partition;
    int64_t offset;
} Record;

/* rd_kafka_resp_err_t rd_kafka_header_get_all(const rd_kafka_headers_t *, size_t idx,
 *                                             const char **name, const void **value, size_t *size) */
typedef int (*header_get_all_t)(const void *, size_t, const char **, const void **, size_t *);

static header_get_all_t header_get_all = NULL;
/* uint32_t crc32_gzip_refl(uint32_t init, const unsigned char *buf, uint64_t len): ISA-L's CRC-32,
 * the one ingestload's checksum uses when ISA-L is installed; set by use_crc() after a check. */
typedef uint32_t (*crc32_t)(uint32_t, const unsigned char *, uint64_t);

static crc32_t direct_crc = NULL;
/* The Message type whose layout probe() confirmed: scan() reads no other type. */
static PyTypeObject *known = NULL;
static char rdkafka_path[1024];

struct search {
    int found;
    char path[1024];
};

static int
visit(struct dl_phdr_info *info, size_t size, void *data)
{
    struct search *search = data;
    const char *name = info->dlpi_name;
    (void)size;
    if (name == NULL || strstr(name, "librdkafka") == NULL) {
        return 0;
    }
    if (search->found && strcmp(search->path, name) == 0) {
        return 0;
    }
    search->found += 1;
    strncpy(search->path, name, sizeof(search->path) - 1);
    search->path[sizeof(search->path) - 1] = '\0';
    return 0;
}

/* attach() -> str: find the librdkafka that confluent-kafka loaded (exactly one must be loaded). */
static PyObject *
attach(PyObject *module, PyObject *unused)
{
    struct search search = {0, {0}};
    void *handle;
    (void)module;
    (void)unused;
    if (header_get_all != NULL) {
        return PyUnicode_DecodeFSDefault(rdkafka_path);
    }
    dl_iterate_phdr(visit, &search);
    if (search.found != 1) {
        PyErr_Format(PyExc_RuntimeError, "%d copies of librdkafka are loaded, not one", search.found);
        return NULL;
    }
    handle = dlopen(search.path, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == NULL) {
        PyErr_Format(PyExc_RuntimeError, "cannot open %s: %s", search.path, dlerror());
        return NULL;
    }
    header_get_all = (header_get_all_t)dlsym(handle, "rd_kafka_header_get_all");
    /* The library stays loaded: confluent-kafka holds it. */
    dlclose(handle);
    if (header_get_all == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s has no rd_kafka_header_get_all", search.path);
        return NULL;
    }
    memcpy(rdkafka_path, search.path, sizeof(rdkafka_path));
    return PyUnicode_DecodeFSDefault(rdkafka_path);
}

/* probe(message, kind, topic, value, partition, offset) -> bool: does the Message built with these
 * fields (and no headers) hold them where this module reads them? Compares pointers and numbers
 * only: nothing read from the object is dereferenced. */
static PyObject *
probe(PyObject *module, PyObject *args)
{
    PyObject *message, *kind, *topic, *value;
    int partition;
    long long offset;
    Record *record;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!OOiL", &message, &PyType_Type, &kind, &topic, &value, &partition,
                          &offset)) {
        return NULL;
    }
    if (Py_TYPE(message) != (PyTypeObject *)kind
        || ((PyTypeObject *)kind)->tp_basicsize < (Py_ssize_t)sizeof(Record)) {
        Py_RETURN_FALSE;
    }
    record = (Record *)message;
    if (record->topic == topic && record->value == value && record->key == NULL
        && record->headers == NULL && record->c_headers == NULL && record->error == NULL
        && record->partition == partition && record->offset == offset) {
        Py_INCREF(kind);
        Py_XSETREF(known, (PyTypeObject *)kind);
        Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* use_crc(path, sample, expected) -> bool: take ISA-L's crc32_gzip_refl from the loaded module at
 * path, if it gives the expected CRC-32 of sample (what the checksum callable gives); scan() then
 * calls it directly instead of the callable. */
static PyObject *
use_crc(PyObject *module, PyObject *args)
{
    const char *path;
    Py_buffer sample;
    unsigned long expected;
    void *handle;
    crc32_t found;
    (void)module;
    if (!PyArg_ParseTuple(args, "sy*k", &path, &sample, &expected)) {
        return NULL;
    }
    handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    found = handle == NULL ? NULL : (crc32_t)dlsym(handle, "crc32_gzip_refl");
    if (handle != NULL) {
        dlclose(handle);
    }
    if (found == NULL || found(0, sample.buf, (uint64_t)sample.len) != (uint32_t)expected) {
        PyBuffer_Release(&sample);
        Py_RETURN_FALSE;
    }
    PyBuffer_Release(&sample);
    direct_crc = found;
    Py_RETURN_TRUE;
}

static int
add_run(PyObject *runs, PyObject *topic, int32_t partition, Py_ssize_t start, Py_ssize_t end, int clean,
        int ordered, PyObject *latency)
{
    PyObject *run = Py_BuildValue("(OinnOOO)", topic, (int)partition, start, end, clean ? Py_True : Py_False,
                                  clean && ordered ? Py_True : Py_False,
                                  clean && latency != NULL ? latency : Py_None);
    int failed;
    if (run == NULL) {
        return -1;
    }
    failed = PyList_Append(runs, run);
    Py_DECREF(run);
    return failed;
}

/* Whole milliseconds from sent to now, rounded down as Python's // does. */
static int64_t
age_ms(int64_t now_us, int64_t sent_us)
{
    int64_t age = now_us - sent_us;
    return age >= 0 ? age / 1000 : -((999 - age) / 1000);
}

#define SPAN 4096
/* Send times beyond ±2^61 µs (73,000 years) are left to Python: their ages would overflow here. */
#define LIMIT_US ((int64_t)1 << 61)

/* {ms: count} of the ages of sent[start:end], or None when they span SPAN ms or more. */
static PyObject *
latency_of(const int64_t *sent, Py_ssize_t start, Py_ssize_t end, int64_t now_us)
{
    static uint32_t counts[SPAN];
    int64_t low = INT64_MAX, high = INT64_MIN, ms;
    Py_ssize_t i;
    PyObject *found;
    for (i = start; i < end; i++) {
        if (sent[i] < -LIMIT_US || sent[i] > LIMIT_US) {  /* far outside any clock: Python counts */
            Py_RETURN_NONE;
        }
        ms = age_ms(now_us, sent[i]);
        if (ms < low) {
            low = ms;
        }
        if (ms > high) {
            high = ms;
        }
    }
    if (end <= start || high - low >= SPAN) {
        Py_RETURN_NONE;
    }
    memset(counts, 0, sizeof(uint32_t) * (size_t)(high - low + 1));
    for (i = start; i < end; i++) {
        counts[age_ms(now_us, sent[i]) - low] += 1;
    }
    found = PyDict_New();
    if (found == NULL) {
        return NULL;
    }
    for (ms = 0; ms <= high - low; ms++) {
        PyObject *key, *value;
        int failed;
        if (counts[ms] == 0) {
            continue;
        }
        key = PyLong_FromLongLong(ms + low);
        value = PyLong_FromUnsignedLong(counts[ms]);
        failed = key == NULL || value == NULL || PyDict_SetItem(found, key, value) < 0;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(found);
            return NULL;
        }
    }
    return found;
}

/* Closes the run [start, end): its latency (when clean and asked for), then its entry in runs. */
static int
close_run(PyObject *runs, PyObject *topic, int32_t partition, Py_ssize_t start, Py_ssize_t end, int clean,
          int ordered, const int64_t *sent, int64_t now_us)
{
    PyObject *latency = NULL;
    int failed;
    if (clean && now_us >= 0) {
        latency = latency_of(sent, start, end, now_us);
        if (latency == NULL) {
            return -1;
        }
    }
    failed = add_run(runs, topic, partition, start, end, clean, ordered, latency);
    Py_XDECREF(latency);
    return failed;
}

/* scan(batch, kind, header, crc, run_id, tag_of, now_us) -> (runs, envelopes, producers, seqs, sent)
 *
 * batch: a list of confluent-kafka Messages of type kind, without errors.
 * runs: [(topic, partition, start, end, clean, ordered, latency)] for the batch's stretches of one
 *   partition. clean: every record has header first, 41 bytes, of run_id, with the topic's tag
 *   (tag_of(topic)), its value intact (crc) and a rising offset. ordered: clean, and all of one
 *   producer at strictly rising seqs. latency: for a clean run when now_us >= 0, {ms: count} of the
 *   records' ages (None when they span 4096 ms or more, or the run is not clean).
 * envelopes: len(batch) * 41 bytes, each clean record's envelope header (zeros elsewhere);
 * producers, seqs, sent: the envelopes' producer ids, seqs (unsigned) and send times (signed, µs)
 *   as native 8-byte numbers, one per record. */
static PyObject *
scan(PyObject *module, PyObject *args)
{
    PyObject *batch, *kind, *crc, *tag_of, *envelopes = NULL, *producers = NULL, *seqs = NULL;
    PyObject *sents = NULL, *runs = NULL, *topic = NULL, *tag_object;
    const char *header, *run_id;
    Py_ssize_t run_id_size, n, i, start = 0;
    long long now_us;
    int32_t partition = 0;
    int64_t last_offset = 0;
    int clean = 1, ordered = 1;
    uint32_t tag = 0;
    uint64_t *producer_out, *seq_out;
    int64_t *sent_out;
    char *out;
    (void)module;
    if (!PyArg_ParseTuple(args, "O!O!sOy#OL", &PyList_Type, &batch, &PyType_Type, &kind, &header, &crc,
                          &run_id, &run_id_size, &tag_of, &now_us)) {
        return NULL;
    }
    if (header_get_all == NULL || known == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "attach() and probe() first");
        return NULL;
    }
    if ((PyTypeObject *)kind != known) {
        PyErr_SetString(PyExc_TypeError, "not the Message type that probe() checked");
        return NULL;
    }
    if (run_id_size != 8) {
        PyErr_SetString(PyExc_ValueError, "a run id is 8 bytes");
        return NULL;
    }
    n = PyList_GET_SIZE(batch);
    envelopes = PyBytes_FromStringAndSize(NULL, n * ENVELOPE_SIZE);
    producers = PyBytes_FromStringAndSize(NULL, n * 8);
    seqs = PyBytes_FromStringAndSize(NULL, n * 8);
    sents = PyBytes_FromStringAndSize(NULL, n * 8);
    runs = PyList_New(0);
    if (envelopes == NULL || producers == NULL || seqs == NULL || sents == NULL || runs == NULL) {
        goto fail;
    }
    out = PyBytes_AS_STRING(envelopes);
    memset(out, 0, (size_t)(n * ENVELOPE_SIZE));
    producer_out = (uint64_t *)PyBytes_AS_STRING(producers);
    seq_out = (uint64_t *)PyBytes_AS_STRING(seqs);
    sent_out = (int64_t *)PyBytes_AS_STRING(sents);
    memset(producer_out, 0, (size_t)(n * 8));
    memset(seq_out, 0, (size_t)(n * 8));
    memset(sent_out, 0, (size_t)(n * 8));
    for (i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(batch, i);
        Record *record;
        const char *name;
        const void *found;
        size_t size;
        const unsigned char *envelope;
        PyObject *sum;
        unsigned long computed;
        uint64_t producer, seq;

        if (Py_TYPE(item) != (PyTypeObject *)kind) {
            PyErr_SetString(PyExc_TypeError, "a batch of one message type only");
            goto fail;
        }
        record = (Record *)item;
        if (record->topic == NULL || !PyUnicode_CheckExact(record->topic)) {
            PyErr_SetString(PyExc_ValueError, "a record without a topic");
            goto fail;
        }
        if (i == 0 || record->partition != partition
            || (record->topic != topic && PyUnicode_Compare(record->topic, topic) != 0)) {
            if (PyErr_Occurred()) {
                goto fail;
            }
            if (i > 0
                && close_run(runs, topic, partition, start, i, clean, ordered, sent_out, now_us) < 0) {
                goto fail;
            }
            start = i;
            clean = 1;
            ordered = 1;
            topic = record->topic;
            partition = record->partition;
            tag_object = PyObject_CallOneArg(tag_of, topic);
            if (tag_object == NULL) {
                goto fail;
            }
            tag = (uint32_t)PyLong_AsUnsignedLong(tag_object);
            Py_DECREF(tag_object);
            if (PyErr_Occurred()) {
                goto fail;
            }
        }
        else if (record->offset <= last_offset) {
            clean = 0;
        }
        last_offset = record->offset;
        if (!clean) {
            continue;
        }
        if (record->headers != NULL || record->c_headers == NULL || record->value == NULL
            || !PyBytes_CheckExact(record->value)) {
            clean = 0;
            continue;
        }
        if (header_get_all(record->c_headers, 0, &name, &found, &size) != 0 || found == NULL
            || size != ENVELOPE_SIZE || name == NULL || strcmp(name, header) != 0) {
            clean = 0;
            continue;
        }
        envelope = found;
        if (memcmp(envelope + RUN_AT, run_id, 8) != 0 || big_endian(envelope + TAG_AT, 4) != tag) {
            clean = 0;
            continue;
        }
        if (direct_crc != NULL) {
            computed = direct_crc(0, (const unsigned char *)PyBytes_AS_STRING(record->value),
                                  (uint64_t)PyBytes_GET_SIZE(record->value));
        }
        else {
            sum = PyObject_CallOneArg(crc, record->value);
            if (sum == NULL) {
                goto fail;
            }
            computed = PyLong_AsUnsignedLong(sum);
            Py_DECREF(sum);
            if (computed == (unsigned long)-1 && PyErr_Occurred()) {
                goto fail;
            }
        }
        if ((uint32_t)computed != (uint32_t)big_endian(envelope + CRC_AT, 4)) {
            clean = 0;
            continue;
        }
        memcpy(out + i * ENVELOPE_SIZE, envelope, ENVELOPE_SIZE);
        producer = big_endian(envelope + PRODUCER_AT, 8);
        seq = big_endian(envelope + SEQ_AT, 8);
        producer_out[i] = producer;
        seq_out[i] = seq;
        sent_out[i] = (int64_t)big_endian(envelope + SENT_AT, 8);
        if (i > start && (producer != producer_out[i - 1] || seq <= seq_out[i - 1])) {
            ordered = 0;
        }
    }
    if (n > 0 && close_run(runs, topic, partition, start, n, clean, ordered, sent_out, now_us) < 0) {
        goto fail;
    }
    return Py_BuildValue("(NNNNN)", runs, envelopes, producers, seqs, sents);
fail:
    Py_XDECREF(runs);
    Py_XDECREF(envelopes);
    Py_XDECREF(producers);
    Py_XDECREF(seqs);
    Py_XDECREF(sents);
    return NULL;
}

static PyMethodDef methods[] = {
    {"attach", attach, METH_NOARGS, "Find the loaded librdkafka's header reader; returns its path."},
    {"probe", probe, METH_VARARGS, "Check the Message layout on a Message built with known fields."},
    {"use_crc", use_crc, METH_VARARGS, "Call ISA-L's CRC-32 directly, if it gives the checksum's."},
    {"scan", scan, METH_VARARGS, "Runs of one partition and their envelope headers, checked."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The verifier's bulk reader of consumed records (see _scan.c).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
