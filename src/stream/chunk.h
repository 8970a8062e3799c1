/* One chunk of a lumio stream (docs/FORMAT.md): the encoder that builds it
 * from samples given as global frame ids, and the decoder that verifies it
 * and replays it. */
#ifndef LUMIO_STREAM_CHUNK_H
#define LUMIO_STREAM_CHUNK_H

#include "stream/bytes.h"

#include <lumio/stream.h>

#define CHUNK_HDR        48
#define CHUNK_MAX_LEN    (256u << 20)
#define STREAM_SIG_LEN   16
#define CHUNK_MAX_STRING (1u << 20)

extern const uint8_t lumio__stream_signature[STREAM_SIG_LEN];
extern const uint8_t lumio__chunk_magic[4];

enum { TAG_REPEAT = 0, TAG_FULL = 1, TAG_PUSH = 2, TAG_POP_PUSH = 3, TAG_META = 4 };

/* What the encoder needs from the writer's global tables. */
typedef struct gtables {
    const char *const *strings; /* global string id -> text */
    const uint32_t *str_len;
    const uint32_t *frame_fn, *frame_file, *frame_line; /* global frame id -> fields */
    size_t nstrings, nframes;
} gtables;

typedef struct ethread {
    uint64_t tid;
    int64_t last;    /* timestamp of its previous sample */
    int64_t base;    /* its first sample's timestamp */
    uint32_t *stack; /* previous stack, global frame ids, innermost first */
    uint32_t depth, cap;
} ethread;

typedef struct chunk_enc {
    uint32_t gen; /* bumps at every seal: local maps are valid for one chunk */
    uint32_t *str_gen, *str_local;
    size_t str_cap;
    uint32_t *frm_gen, *frm_local;
    size_t frm_cap;
    uint32_t *lstr, *lfrm; /* local index -> global id */
    size_t nlstr, nlfrm, lstr_cap, lfrm_cap;
    ethread *threads;
    size_t nthreads, threads_cap;
    uint32_t *thash; /* open addressing: tid -> thread index + 1 */
    size_t thash_cap;
    bbuf rec;           /* records */
    int64_t run_thread; /* the open REPEAT run's thread, or -1 */
    uint32_t run_count;
    bbuf run; /* its (dt, status) pairs */
    bool have_first;
    int64_t t_first;
    uint32_t samples, records;
    uint64_t seq;
    bool oom;
} chunk_enc;

void lumio__chunk_enc_init(chunk_enc *e);
void lumio__chunk_enc_free(chunk_enc *e);
bool lumio__chunk_enc_empty(const chunk_enc *e);
int lumio__chunk_enc_sample(chunk_enc *e, const gtables *g, uint64_t ts, uint64_t tid,
                            uint8_t status, const uint32_t *ids, uint32_t depth);
int lumio__chunk_enc_meta(chunk_enc *e, uint64_t ts, uint32_t key_sid, uint32_t value_sid);
/* Seal: the chunk's bytes (header with the magic, and payload) into out,
 * which is cleared first; then the encoder starts the next chunk. */
int lumio__chunk_enc_seal(chunk_enc *e, const gtables *g, int zstd_level, bbuf *out);

/* A verified, decompressed chunk ready to replay. */
typedef struct chunk_view {
    uint64_t seq;
    uint32_t samples, records;
    int64_t t_first;
    size_t total_len; /* header + stored payload */
    size_t stored_len, raw_len;
    const uint8_t *payload; /* raw payload (points into the decoder's buffer) */
    size_t payload_len;
} chunk_view;

typedef struct dthread {
    uint64_t tid;
    int64_t base;       /* its clock at the start of the chunk */
    int64_t last;       /* timestamp of its previous sample */
    uint32_t depth;     /* current stack depth */
    uint32_t max;       /* deepest stack in the chunk (first pass) */
    lumio_frame *stack; /* `max` slots; the stack is the top `depth`, innermost first */
    uint32_t stack_cap;
} dthread;

typedef struct chunk_dec {
    void *dctx;
    bbuf raw; /* decompressed payload */
    const char **strings;
    size_t nstrings, str_cap;
    lumio_frame *frames;
    size_t nframes, frm_cap;
    dthread *threads;
    size_t nthreads, thr_cap;
    char *strbuf; /* NUL-terminated copies of the strings */
    size_t strbuf_cap;
    bool stopped; /* the last replay ended because a callback said so */
} chunk_dec;

typedef int (*chunk_sample_fn)(void *arg, const lumio_sample *s);
typedef int (*chunk_meta_fn)(void *arg, uint64_t ts, const char *key, const char *value);

void lumio__chunk_dec_init(chunk_dec *d);
void lumio__chunk_dec_free(chunk_dec *d);
/* Give back the decode buffer if it holds more than keep bytes (a large
 * chunk went through). */
void lumio__chunk_dec_trim(chunk_dec *d, size_t keep);
/* Check a chunk starting at p (avail bytes): 0 and the view when it is whole
 * and valid; -EAGAIN when more bytes could complete it; LUMIO_E_FORMAT or
 * LUMIO_E_CHECKSUM when it is not a valid chunk. */
int lumio__chunk_verify(chunk_dec *d, const uint8_t *p, size_t avail, chunk_view *v);
/* Replay a verified chunk: parses every record once to check it (nothing
 * is delivered from a payload that does not decode), then delivers. */
int lumio__chunk_replay(chunk_dec *d, const chunk_view *v, chunk_sample_fn on_sample,
                        chunk_meta_fn on_meta, void *arg);

#endif
