/* The lumio stream: round trips on files and pipes, with and without zstd;
 * torn tails and corrupted chunks recover exactly what verifies. */
#include "tests/testutil.h"
#include "core/core.h"

#include <lumio/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* Samples (and records) as text lines, to compare what went in and out. */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines;

static void add_line(lines *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = strdup(s);
}

static void free_lines(lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    *l = (lines){0};
}

static void sample_line(char *buf, size_t cap, const lumio_sample *s) {
    size_t o = (size_t)snprintf(buf, cap, "S %llu %llu %u |", (unsigned long long)s->timestamp_us,
                                (unsigned long long)s->thread_id, s->status);
    for (uint32_t i = 0; i < s->depth && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s@%s:%u;", s->frames[i].function,
                              s->frames[i].file, s->frames[i].line);
}

static int on_sample(void *arg, const lumio_sample *s) {
    char buf[8192];
    sample_line(buf, sizeof buf, s);
    add_line(arg, buf);
    return 0;
}

static int on_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    char buf[1024];
    snprintf(buf, sizeof buf, "M %llu %s=%s", (unsigned long long)ts, k, v);
    add_line(arg, buf);
    return 0;
}

static const char *fnames[] = {"main", "run", "parse", "lex", "eval", "alloc", "hash", "io_wait"};
static const char *files[] = {"main.c", "parse.c", "eval.c", ""};

/* A deterministic profile: threads walking a call tree, some repeats, some
 * metadata. Written to w and recorded in want. */
static void gen(lumio_stream_writer *w, lines *want, int nsamples, int nthreads, uint64_t seed) {
    lumio_frame stack[64][64];
    uint32_t depth[64] = {0};
    uint64_t ts[64] = {0};
    char buf[8192];
    for (int i = 0; i < nsamples; i++) {
        int t = (int)(rnd(&seed) % (uint64_t)nthreads);
        uint64_t r = rnd(&seed) % 10;
        if (r < 3 && depth[t] < 60) { /* call */
            memmove(&stack[t][1], &stack[t][0], depth[t] * sizeof(lumio_frame));
            stack[t][0] = (lumio_frame){fnames[rnd(&seed) % 8], files[rnd(&seed) % 4],
                                        (uint32_t)(rnd(&seed) % 300)};
            depth[t]++;
        } else if (r < 5 && depth[t] > 0) { /* return */
            memmove(&stack[t][0], &stack[t][1], (depth[t] - 1) * sizeof(lumio_frame));
            depth[t]--;
        } /* else: the same stack again */
        ts[t] += 100 + rnd(&seed) % 50;
        lumio_sample s = {ts[t], 1000 + (uint64_t)t, (uint8_t)(r == 9), stack[t], depth[t]};
        CHECK_EQ(lumio_stream_writer_write_sample(w, &s), 0);
        sample_line(buf, sizeof buf, &s);
        add_line(want, buf);
        if (i % 997 == 0) {
            char v[32];
            snprintf(v, sizeof v, "v%d", i);
            CHECK_EQ(lumio_stream_writer_write_meta(w, ts[t], "note", v), 0);
            snprintf(buf, sizeof buf, "M %llu note=%s", (unsigned long long)ts[t], v);
            add_line(want, buf);
        }
    }
}

static lines read_back(const char *path, lumio_stream_reader_stats *st) {
    lines got = {0};
    lumio_stream_reader *r;
    CHECK_EQ(lumio_stream_reader_open(&r, path, NULL), 0);
    CHECK_EQ(lumio_stream_reader_read(r, on_sample, on_meta, &got), 0);
    lumio_stream_reader_get_stats(r, st);
    lumio_stream_reader_close(r);
    return got;
}

static void check_same(const lines *a, const lines *b, size_t n) {
    CHECK(a->n >= n && b->n >= n);
    for (size_t i = 0; i < n && i < a->n && i < b->n; i++)
        if (strcmp(a->v[i], b->v[i])) FAIL("line %zu differs:\n   %s\n   %s", i, a->v[i], b->v[i]);
}

static void round_trip(int level, uint64_t flush, int nsamples) {
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.zstd_level = level ? level : -1; /* 0: stored uncompressed */
    o.flush_samples = flush ? (int64_t)flush : -1;
    if (!flush) o.flush_bytes = -1; /* everything in one chunk */
    lumio_stream_writer *w;
    const char *path = tmp_path("rt.lumio");
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
    lines want = {0};
    gen(w, &want, nsamples, 5, 7);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    lumio_stream_reader_stats st;
    lines got = read_back(p, &st);
    CHECK_EQ(got.n, want.n);
    check_same(&got, &want, want.n);
    CHECK_EQ(st.samples, (uint64_t)nsamples);
    if (!flush) CHECK_EQ(st.chunks, nsamples ? 1 : 0);
    CHECK_EQ(st.damaged_ranges, 0);
    CHECK_EQ(st.torn_tail_bytes, 0);
    free_lines(&want);
    free_lines(&got);
}

TEST(round_trip_zstd) {
    round_trip(3, 1000, 20000);
}
TEST(round_trip_raw) {
    round_trip(0, 777, 5000);
}
TEST(round_trip_single_sample_chunks) {
    round_trip(3, 1, 300);
}
TEST(round_trip_one_big_chunk) {
    round_trip(1, 0, 1000000); /* a chunk of a million samples */
}
TEST(empty_stream) {
    round_trip(3, 1000, 0);
}

typedef struct pipe_reader {
    int fd;
    lines got;
    lumio_stream_reader_stats st;
    int rc;
} pipe_reader;

static void *pipe_main(void *arg) {
    pipe_reader *pr = arg;
    lumio_stream_reader *r;
    pr->rc = lumio_stream_reader_open_fd(&r, pr->fd, NULL);
    if (pr->rc == 0) {
        pr->rc = lumio_stream_reader_read(r, on_sample, on_meta, &pr->got);
        lumio_stream_reader_get_stats(r, &pr->st);
        lumio_stream_reader_close(r);
    }
    return NULL;
}

TEST(round_trip_pipe) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pipe_reader pr = {.fd = fds[0]};
    pthread_t t;
    pthread_create(&t, NULL, pipe_main, &pr);
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = 500;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open_fd(&w, fds[1], &o), 0);
    lines want = {0};
    gen(w, &want, 10000, 3, 11);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    CHECK_EQ(pr.rc, 0);
    CHECK_EQ(pr.got.n, want.n);
    check_same(&pr.got, &want, want.n);
    free_lines(&want);
    free_lines(&pr.got);
}

/* Write a stream and return the offsets where its chunks end (read back). */
static lines write_profile(const char *p, int n, uint64_t flush) {
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = flush;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
    lines want = {0};
    gen(w, &want, n, 4, 3);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    return want;
}

TEST(torn_tail_recovers_whole_chunks) {
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s", tmp_path("torn.lumio"));
    snprintf(q, sizeof q, "%s", tmp_path("torn_cut.lumio"));
    lines want = write_profile(p, 5000, 500);
    size_t size;
    uint8_t *all = read_file(p, &size);
    uint64_t seed = 5;
    for (int trial = 0; trial < 40; trial++) {
        size_t cut = 16 + (size_t)(rnd(&seed) % (size - 16));
        int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(write(fd, all, cut) == (ssize_t)cut);
        close(fd);
        lumio_stream_reader_stats st;
        lines got = read_back(q, &st);
        /* Whatever came back is a prefix of what was written, whole chunks
         * only (chunks hold 500 samples; metadata may ride along). */
        check_same(&got, &want, got.n);
        CHECK(st.samples % 500 == 0);
        CHECK_EQ(st.damaged_ranges, 0);
        CHECK_EQ(st.valid_end + st.torn_tail_bytes, cut);
        free_lines(&got);
    }
    free(all);
    free_lines(&want);
}

/* A whole last chunk that fails its checksum is damage, not a torn tail: a
 * killed writer leaves a chunk without its magic or cut short, never a
 * whole one with wrong bytes. */
static void rewrite(const char *path, const uint8_t *b, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
}

TEST(corrupt_last_chunk_is_damage_not_torn) {
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s", tmp_path("last.lumio"));
    snprintf(q, sizeof q, "%s", tmp_path("last_bad.lumio"));
    lines want = write_profile(p, 5000, 500);
    size_t size;
    uint8_t *all = read_file(p, &size);
    size_t last = size - 4;
    while (last > 16 && memcmp(all + last, "LCHK", 4)) last--;
    CHECK(last > 16);
    lumio_stream_reader_stats st;
    /* A flipped payload byte: whole chunk, bad checksum. */
    all[size - 1] ^= 0x55;
    rewrite(q, all, size);
    lines got = read_back(q, &st);
    CHECK_EQ(st.samples, 4500);
    CHECK_EQ(st.damaged_ranges, 1);
    CHECK_EQ(st.first_damage_offset, last);
    CHECK_EQ(st.torn_tail_bytes, 0);
    free_lines(&got);
    all[size - 1] ^= 0x55;
    /* Its magic still zero (the writer killed before committing it): torn. */
    memset(all + last, 0, 4);
    rewrite(q, all, size);
    got = read_back(q, &st);
    CHECK_EQ(st.samples, 4500);
    CHECK_EQ(st.damaged_ranges, 0);
    CHECK_EQ(st.torn_tail_bytes, size - last);
    free_lines(&got);
    /* Cut short (a pipe or socket): torn. */
    memcpy(all + last, "LCHK", 4);
    rewrite(q, all, size - 3);
    got = read_back(q, &st);
    CHECK_EQ(st.damaged_ranges, 0);
    CHECK_EQ(st.torn_tail_bytes, size - 3 - last);
    free_lines(&got);
    free(all);
    free_lines(&want);
}

TEST(corrupt_chunk_costs_that_chunk_only) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("bad.lumio"));
    lines want = write_profile(p, 5000, 500);
    size_t size;
    uint8_t *all = read_file(p, &size);
    lumio_stream_reader_stats st0;
    lines clean = read_back(p, &st0);
    CHECK_EQ(st0.chunks, 10);
    /* Flip one byte in the middle of the file. */
    all[size / 2] ^= 0x40;
    int fd = open(p, O_WRONLY | O_TRUNC);
    CHECK(write(fd, all, size) == (ssize_t)size);
    close(fd);
    lumio_stream_reader_stats st;
    lines got = read_back(p, &st);
    CHECK_EQ(st.chunks, 9);
    CHECK_EQ(st.damaged_ranges, 1);
    CHECK_EQ(st.samples, 4500);
    /* Every line returned is one that was written, in order. */
    size_t j = 0;
    for (size_t i = 0; i < got.n; i++) {
        while (j < want.n && strcmp(want.v[j], got.v[i])) j++;
        CHECK(j < want.n);
    }
    free(all);
    free_lines(&got);
    free_lines(&clean);
    free_lines(&want);
}

TEST(not_a_stream) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("text.txt"));
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(write(fd, "hello world, not a stream\n", 26) == 26);
    close(fd);
    lumio_stream_reader *r;
    CHECK_EQ(lumio_stream_reader_open(&r, p, NULL), 0);
    lines got = {0};
    CHECK_EQ(lumio_stream_reader_read(r, on_sample, on_meta, &got), LUMIO_E_FORMAT);
    lumio_stream_reader_close(r);
    CHECK_EQ(lumio_stream_reader_open(&r, tmp_path("missing"), NULL), -ENOENT);
}

TEST(append_trims_torn_tail) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("app.lumio"));
    lines want = write_profile(p, 3000, 500);
    size_t size;
    uint8_t *all = read_file(p, &size);
    /* Tear the last chunk: cut 100 bytes off the end. */
    CHECK(truncate(p, (off_t)(size - 100)) == 0);
    lumio_stream_reader_stats st;
    lines before = read_back(p, &st);
    CHECK_EQ(st.samples, 2500);
    CHECK(st.torn_tail_bytes > 0);
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.append = 1;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
    lumio_frame f = {"appended", "x.c", 1};
    lumio_sample s = {99, 7, 0, &f, 1};
    CHECK_EQ(lumio_stream_writer_write_sample(w, &s), 0);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    lines after = read_back(p, &st);
    CHECK_EQ(st.samples, 2501);
    CHECK_EQ(st.torn_tail_bytes, 0);
    CHECK_EQ(st.damaged_ranges, 0);
    check_same(&after, &before, before.n);
    CHECK(after.n == before.n + 1 && strstr(after.v[after.n - 1], "appended@x.c:1"));
    /* Appending to something that is not a stream fails and changes nothing. */
    char t[4096];
    snprintf(t, sizeof t, "%s", tmp_path("notes.txt"));
    free(make_file(t, 1000, 1));
    CHECK_EQ(lumio_stream_writer_open(&w, t, &o), LUMIO_E_FORMAT);
    struct stat sb;
    CHECK(stat(t, &sb) == 0 && sb.st_size == 1000);
    free(all);
    free_lines(&want);
    free_lines(&before);
    free_lines(&after);
}

/* Every line of got appears in want, in the same order. */
static bool subsequence(const lines *got, const lines *want) {
    size_t j = 0;
    for (size_t i = 0; i < got->n; i++) {
        while (j < want->n && strcmp(want->v[j], got->v[i])) j++;
        if (j == want->n) return false;
        j++;
    }
    return true;
}

/* Random damage: bits flipped, bytes cut, a range duplicated, bytes
 * inserted. The reader must return only samples that were written, in
 * order, and lose no chunk that the damage did not touch. */
TEST(random_damage) {
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s", tmp_path("dmg.lumio"));
    snprintf(q, sizeof q, "%s", tmp_path("dmg_mut.lumio"));
    lines want = write_profile(p, 6000, 300);
    size_t size;
    uint8_t *all = read_file(p, &size);
    size_t starts[64], nch = 0; /* chunk boundaries, from the headers */
    for (size_t off = 16; off + 48 <= size && nch < 63; nch++) {
        starts[nch] = off;
        off += 48 + (all[off + 8] | all[off + 9] << 8 | all[off + 10] << 16 |
                     (size_t)all[off + 11] << 24);
    }
    starts[nch] = size;
    CHECK_EQ(nch, 20);
    uint8_t *mut = malloc(size * 2 + 4096);
    uint64_t seed = 77;
    for (int trial = 0; trial < 200; trial++) {
        size_t pos = 16 + (size_t)(rnd(&seed) % (size - 16));
        size_t len = 1 + (size_t)(rnd(&seed) % 64), n = 0;
        int kind = (int)(rnd(&seed) % 4);
        memcpy(mut, all, pos);
        n = pos;
        if (kind == 0) { /* flip bits in len bytes */
            for (size_t i = pos; i < size; i++) mut[n++] = i < pos + len ? all[i] ^ 0x5a : all[i];
        } else if (kind == 1) { /* cut len bytes out */
            for (size_t i = pos + len; i < size; i++) mut[n++] = all[i];
        } else if (kind == 2) {                         /* duplicate a range (maybe whole chunks) */
            size_t r = (size_t)(rnd(&seed) % 3000) + 1; /* LUMIO_MIN evaluates twice */
            size_t dl = LUMIO_MIN(size - pos, r);
            memcpy(mut + n, all + pos, dl);
            n += dl;
            memcpy(mut + n, all + pos, size - pos);
            n += size - pos;
        } else { /* insert random bytes */
            for (size_t i = 0; i < len; i++) mut[n++] = (uint8_t)rnd(&seed);
            memcpy(mut + n, all + pos, size - pos);
            n += size - pos;
        }
        if (kind == 1 && pos + len > size) n = pos;
        int fd = open(q, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(write(fd, mut, n) == (ssize_t)n);
        close(fd);
        lumio_stream_reader_stats st;
        lines got = read_back(q, &st);
        CHECK(subsequence(&got, &want));
        /* Chunks the damage did not touch all come back. */
        size_t touched = 0, end = kind == 0 || kind == 1 ? pos + len : pos + 1;
        for (size_t c = 0; c < nch; c++)
            if (starts[c] < end && starts[c + 1] > pos) touched++;
        if (st.chunks + touched < nch)
            FAIL("trial %d kind %d at %zu len %zu: %llu chunks back, %zu touched of %zu", trial,
                 kind, pos, len, (unsigned long long)st.chunks, touched, nch);
        free_lines(&got);
    }
    free(mut);
    free(all);
    free_lines(&want);
}

typedef struct follower {
    char path[4096];
    lines got;
    int rc;
} follower;

static void *follow_main(void *arg) {
    follower *f = arg;
    lumio_stream_reader *r;
    lumio_stream_reader_options ro = {.follow = 1, .follow_idle_ms = 1500};
    f->rc = lumio_stream_reader_open(&r, f->path, &ro);
    if (f->rc == 0) {
        f->rc = lumio_stream_reader_read(r, on_sample, on_meta, &f->got);
        lumio_stream_reader_close(r);
    }
    return NULL;
}

/* A reader following a file sees chunks sealed after it reached the end,
 * and waits for a chunk being written rather than calling it damage. */
TEST(follow_a_growing_file) {
    follower f = {0};
    snprintf(f.path, sizeof f.path, "%s", tmp_path("follow.lumio"));
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = -1;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, f.path, &o), 0);
    lines want = {0};
    gen(w, &want, 1000, 2, 5);
    CHECK_EQ(lumio_stream_writer_flush(w), 0);
    pthread_t t;
    pthread_create(&t, NULL, follow_main, &f);
    for (int round = 0; round < 3; round++) {
        usleep(200 * 1000);
        gen(w, &want, 1000, 2, 100 + (uint64_t)round);
        CHECK_EQ(lumio_stream_writer_flush(w), 0);
    }
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    pthread_join(t, NULL);
    CHECK_EQ(f.rc, 0);
    CHECK_EQ(f.got.n, want.n);
    check_same(&f.got, &want, want.n);
    free_lines(&want);
    free_lines(&f.got);
}

/* Following a file that another writer truncates and rewrites, then that
 * is replaced by a rename: the reader starts again at the beginning of each
 * new content, says so, and loses nothing. */
typedef struct refollower {
    char path[4096];
    lines got;
    _Atomic size_t n;
    _Atomic int restarts;
    int rc;
} refollower;

static int refollow_sample(void *arg, const lumio_sample *s) {
    refollower *f = arg;
    on_sample(&f->got, s);
    f->n++;
    return 0;
}

static void refollow_restart(void *arg, uint64_t old_offset) {
    refollower *f = arg;
    (void)old_offset;
    f->restarts++;
}

static void *refollow_main(void *arg) {
    refollower *f = arg;
    lumio_stream_reader *r;
    lumio_stream_reader_options ro = {
        .follow = 1, .follow_idle_ms = 2000, .on_restart = refollow_restart, .arg = f};
    f->rc = lumio_stream_reader_open(&r, f->path, &ro);
    if (f->rc == 0) {
        f->rc = lumio_stream_reader_read(r, refollow_sample, NULL, f);
        lumio_stream_reader_close(r);
    }
    return NULL;
}

static void write_whole(const char *path, lines *want, int n, uint64_t seed) {
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = 500;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, path, &o), 0);
    gen(w, want, n, 2, seed);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
}

static void wait_for(_Atomic size_t *n, size_t want) {
    for (int i = 0; i < 1000 && *n < want; i++) usleep(10 * 1000);
}

TEST(follow_survives_truncation_and_replacement) {
    static refollower f; /* the reader thread writes into it */
    memset(&f, 0, sizeof f);
    snprintf(f.path, sizeof f.path, "%s", tmp_path("refollow.lumio"));
    char other[4096];
    snprintf(other, sizeof other, "%s", tmp_path("refollow2.lumio"));
    lines want = {0}, meta = {0};
    write_whole(f.path, &want, 1500, 21);
    pthread_t t;
    pthread_create(&t, NULL, refollow_main, &f);
    wait_for(&f.n, 1500);
    write_whole(f.path, &want, 1000, 22); /* truncated and rewritten in place */
    wait_for(&f.n, 2500);
    write_whole(other, &want, 700, 23);
    CHECK_EQ(rename(other, f.path), 0); /* replaced */
    pthread_join(t, NULL);
    CHECK_EQ(f.rc, 0);
    CHECK_EQ(f.restarts, 2);
    /* want holds the meta records too: compare the samples only. */
    for (size_t i = 0; i < want.n; i++)
        if (want.v[i][0] == 'S') add_line(&meta, want.v[i]);
    CHECK_EQ(f.got.n, meta.n);
    check_same(&f.got, &meta, meta.n);
    free_lines(&want);
    free_lines(&meta);
    free_lines(&f.got);
}

/* A consumer that never comes: the writer neither blocks nor grows past its
 * buffer; it drops the oldest chunks and counts them. */
TEST(tcp_without_consumer_is_bounded) {
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(probe, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(probe, (struct sockaddr *)&a, &al) == 0);
    close(probe);
    char sink[64];
    snprintf(sink, sizeof sink, "tcp-listen:%u", ntohs(a.sin_port));
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = 1000;
    o.tcp_buffer = 64 << 10;
    o.close_timeout_ms = 100;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, sink, &o), 0);
    lines want = {0};
    gen(w, &want, 100000, 4, 9);
    lumio_stream_writer_stats st;
    lumio_stream_writer_get_stats(w, &st);
    CHECK(st.dropped_chunks > 0);
    CHECK(st.chunks - st.dropped_chunks < 64); /* what is kept fits the buffer */
    CHECK_EQ(st.connections, 0);
    /* At the end every chunk counts as not delivered, and the error says why. */
    CHECK_EQ(lumio_stream_writer_finish(w), -ETIMEDOUT);
    lumio_stream_writer_get_stats(w, &st);
    CHECK(st.chunks > 0);
    CHECK_EQ(st.dropped_chunks, st.chunks);
    /* The one line that counts them, whole: how many were dropped from the
     * full buffer and how many never sent varies, their sum does not. */
    const char *e = lumio_stream_writer_last_error(w, ERRBUF);
    const char *counts = strchr(e, ' ');
    unsigned long long dropped = 0, unsent = 0;
    CHECK(counts && sscanf(counts,
                           " %*u of %*u chunks not delivered: %llu dropped from a full "
                           "buffer, %llu never sent",
                           &dropped, &unsent) == 2);
    CHECK_EQ(dropped + unsent, st.chunks);
    char want_error[300];
    snprintf(want_error, sizeof want_error,
             "%s: %llu of %llu chunks not delivered: %llu dropped from a full buffer, %llu never "
             "sent: no consumer connected",
             sink, (unsigned long long)st.chunks, (unsigned long long)st.chunks, dropped, unsent);
    CHECK_STREQ(e, want_error);
    CHECK_EQ(lumio_stream_writer_finish(w), -ETIMEDOUT);
    lumio_stream_writer_close(w);
    free_lines(&want);
}

/* TCP sinks: a port out of range or not a number is refused, not taken as
 * "any port"; a closed port is refused at open, not after a timeout. */
TEST(tcp_sink_ports_and_refusal) {
    static const char *bad[] = {"tcp:127.0.0.1:0",       "tcp:127.0.0.1:99999", "tcp:127.0.0.1:abc",
                                "tcp:127.0.0.1:",        "tcp:127.0.0.1",       "tcp-listen:0",
                                "tcp-listen:99999",      "tcp-listen:65536",    "tcp-listen:-1",
                                "tcp-listen:127.0.0.1:", "tcp-listen:[::1]"};
    lumio_stream_writer *w = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = lumio_stream_writer_open(&w, bad[i], NULL);
        if (rc != -EINVAL) FAIL("%s: %d, expected -EINVAL", bad[i], rc);
    }
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(probe, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(probe, (struct sockaddr *)&a, &al) == 0);
    char sink[64];
    snprintf(sink, sizeof sink, "tcp:127.0.0.1:%u", ntohs(a.sin_port)); /* bound, not listening */
    CHECK_EQ(lumio_stream_writer_open(&w, sink, NULL), -ECONNREFUSED);
    close(probe);
}

/* flush by time: a chunk is sealed after flush_ms even if no sample comes,
 * so what was written is readable while the writer is still open. */
TEST(time_flush_seals_an_idle_chunk) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("timer.lumio"));
    lumio_stream_writer_options o;
    o = (lumio_stream_writer_options){0};
    o.flush_samples = -1;
    o.flush_ms = 100;
    lumio_stream_writer *w;
    CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
    lines want = {0};
    gen(w, &want, 50, 2, 1);
    usleep(400 * 1000); /* idle: the timer seals */
    lumio_stream_reader_stats st;
    lines got = read_back(p, &st);
    CHECK_EQ(st.samples, 50);
    check_same(&got, &want, want.n);
    lumio_stream_writer_stats ws;
    lumio_stream_writer_get_stats(w, &ws);
    CHECK_EQ(ws.chunks, 1);
    CHECK_EQ(lumio_stream_writer_finish(w), 0);
    lumio_stream_writer_close(w);
    free_lines(&want);
    free_lines(&got);
}

/* The dump: SIGUSR1's handler asks for a seal; with the writer's own thread
 * the chunk is sealed at once though the writer's thread writes nothing
 * more; without it, at the next call. Nothing else seals: no flush policy. */
static lumio_stream_writer *dump_target;

static void dump_handler(int sig) {
    (void)sig;
    lumio_stream_writer_dump(dump_target);
}

static uint64_t sealed_chunks(lumio_stream_writer *w) {
    lumio_stream_writer_stats ws;
    lumio_stream_writer_get_stats(w, &ws);
    return ws.chunks;
}

TEST(dump_from_a_signal_handler) {
    struct sigaction sa = {.sa_handler = dump_handler}, old;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    for (int threaded = 1; threaded >= 0; threaded--) {
        char p[4096];
        snprintf(p, sizeof p, "%s", tmp_path(threaded ? "dump_t.lumio" : "dump.lumio"));
        lumio_stream_writer_options o = {
            .flush_samples = -1, .flush_bytes = -1, .dump_thread = threaded};
        lumio_stream_writer *w;
        CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
        dump_target = w;
        lines want = {0};
        gen(w, &want, 30, 2, 7);
        CHECK_EQ(sealed_chunks(w), 0);
        CHECK_EQ(raise(SIGUSR1), 0);
        for (int i = 0; i < 200 && threaded && sealed_chunks(w) == 0; i++) usleep(10 * 1000);
        if (!threaded) {
            CHECK_EQ(sealed_chunks(w), 0); /* no thread: the next call seals */
            lumio_frame f = {.function = "after", .file = "x.c", .line = 1};
            lumio_sample s = {.timestamp_us = 1u << 30, .thread_id = 5, .frames = &f, .depth = 1};
            CHECK_EQ(lumio_stream_writer_write_sample(w, &s), 0);
            char buf[256];
            sample_line(buf, sizeof buf, &s);
            add_line(&want, buf);
        }
        CHECK_EQ(sealed_chunks(w), 1);
        lumio_stream_reader_stats st;
        lines got = read_back(p, &st); /* while the writer is still open */
        CHECK_EQ(st.samples + st.records, want.n);
        check_same(&got, &want, want.n);
        CHECK_EQ(lumio_stream_writer_dump(w), 0); /* an empty chunk: nothing */
        usleep(50 * 1000);
        CHECK_EQ(sealed_chunks(w), 1);
        dump_target = NULL;
        CHECK_EQ(lumio_stream_writer_finish(w), 0);
        CHECK_EQ(sealed_chunks(w), 1);
        lumio_stream_writer_close(w);
        free_lines(&want);
        free_lines(&got);
    }
    CHECK_EQ(lumio_stream_writer_dump(NULL), -EINVAL);
    sigaction(SIGUSR1, &old, NULL);
}

/* Cancel: a reader following a file that does not grow, or waiting on a
 * pipe nobody writes, stops with -ECANCELED when another thread (or a
 * signal handler) cancels it, and a later read goes on where it stopped. */
typedef struct canceler {
    lumio_stream_reader *r;
    useconds_t after;
} canceler;

static void *cancel_main(void *arg) {
    canceler *c = arg;
    usleep(c->after);
    lumio_stream_reader_cancel(c->r);
    return NULL;
}

static int cancel_read(lumio_stream_reader *r, lines *got) {
    canceler c = {r, 200 * 1000};
    pthread_t t;
    pthread_create(&t, NULL, cancel_main, &c);
    int rc = lumio_stream_reader_read(r, on_sample, on_meta, got);
    pthread_join(t, NULL);
    return rc;
}

TEST(cancel_a_waiting_reader) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp_path("cancel.lumio"));
    lumio_stream_writer *w;
    lumio_stream_writer_options o = {.flush_samples = -1};
    CHECK_EQ(lumio_stream_writer_open(&w, p, &o), 0);
    lines want = {0}, got = {0};
    gen(w, &want, 500, 2, 11);
    CHECK_EQ(lumio_stream_writer_flush(w), 0);
    lumio_stream_reader *r;
    lumio_stream_reader_options ro = {.follow = 1}; /* idle 0: it would wait for ever */
    CHECK_EQ(lumio_stream_reader_open(&r, p, &ro), 0);
    CHECK_EQ(cancel_read(r, &got), -ECANCELED);
    CHECK_EQ(got.n, want.n);
    CHECK(strstr(lumio_stream_reader_last_error(r, LUMIO__ERRBUF), "canceled") != NULL);
    gen(w, &want, 300, 2, 12); /* more while nobody reads */
    CHECK_EQ(lumio_stream_writer_flush(w), 0);
    CHECK_EQ(cancel_read(r, &got), -ECANCELED); /* the same reader goes on */
    CHECK_EQ(got.n, want.n);
    check_same(&got, &want, want.n);
    lumio_stream_reader_close(r);
    lumio_stream_writer_close(w);
    free_lines(&got);

    int fds[2]; /* a pipe with a signature and nothing more */
    CHECK_EQ(pipe(fds), 0);
    lumio_stream_writer *pw;
    CHECK_EQ(lumio_stream_writer_open_fd(&pw, fds[1], NULL), 0);
    CHECK_EQ(lumio_stream_reader_open_fd(&r, fds[0], NULL), 0);
    CHECK_EQ(cancel_read(r, &got), -ECANCELED);
    CHECK_EQ(got.n, 0);
    lumio_stream_reader_close(r);
    lumio_stream_writer_close(pw);
    close(fds[0]);
    close(fds[1]);
    CHECK_EQ(lumio_stream_reader_cancel(NULL), -EINVAL);
    free_lines(&want);
}

int main(void) {
    return run_tests("stream");
}
