/* The stream reader: chunks in order from a file or a pipe, through a sliding
 * buffer; damage is skipped by scanning for the next chunk that verifies. */
#include "stream/chunk.h"
#include "stream/listen_src.h"
#include "stream/net.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct lumio_stream_reader {
    int fd;
    bool own_fd;
    bool eof;
    uint8_t *buf;
    size_t start, end, cap;
    uint64_t pos; /* stream offset of buf[start] */
    chunk_dec dec;
    uint64_t total_read;
    lumio_damage_fn on_damage;
    void *damage_arg;
    bool follow;
    uint32_t idle_ms;
    bool have_seq;
    uint64_t last_seq;
    bool damaged; /* in a damaged range that started at damage_from */
    uint64_t damage_from;
    /* The chunk there looked like a killed writer's (no magic, or cut short
     * by the end of the data): only then may the range be a torn tail. A
     * whole chunk that fails its checksum or does not decode is damage even
     * at the end: a writer never leaves one. */
    bool damage_torn;
    /* Following a file: how to notice it was truncated or replaced. */
    char *path;
    dev_t dev;
    ino_t ino;
    bool have_first;
    uint8_t first[STREAM_SIG_LEN + CHUNK_HDR]; /* the signature and first chunk's header */
    lumio_restart_fn on_restart;
    void *restart_arg;
    lumio_stream_reader_stats st;
    /* tcp-listen:, ws-listen: a bridge feeds fd, writer after writer; a
     * signature between chunks starts the next writer's sequence. */
    lsrc *bridge;
    bool multi;
    /* lumio_stream_reader_cancel: a flag, and a byte on the pipe that wakes
     * a wait on a pipe or socket. */
    atomic_int canceled;
    int wake[2];
    bool pollable;  /* fd may block (not a regular file): read after a poll */
    char name[256]; /* the source, for messages */
    lumio__err err; /* the last error's text (docs/API.md) */
};

static int open_fd(lumio_stream_reader **out, int fd, bool own, const char *name,
                   const lumio_stream_reader_options *o) {
    lumio_stream_reader *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        int rc = -errno;
        free(r);
        return rc;
    }
    struct stat sb;
    r->pollable = fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode);
    r->fd = fd;
    r->own_fd = own;
    snprintf(r->name, sizeof r->name, "%s", name);
    lumio__err_init(&r->err);
    lumio__chunk_dec_init(&r->dec);
    if (o) {
        r->on_damage = o->on_damage;
        r->damage_arg = o->arg;
        r->on_restart = o->on_restart;
        r->restart_arg = o->arg;
        r->follow = o->follow != 0;
        r->idle_ms = o->follow_idle_ms;
    }
    *out = r;
    return 0;
}

static int open_failed(const char *source, int rc) {
    lumio__err_set(NULL, "%s: %s", source,
                   lumio__net_error()[0] ? lumio__net_error() : lumio_strerror(rc));
    return rc;
}

/* tcp:HOST:PORT: connect to a writer serving tcp-listen:PORT; then read
 * with blocking calls like any descriptor. */
static int connect_to(const char *hp) {
    char host[256], port[8];
    int rc = lumio__net_parse(hp, NULL, host, sizeof host, port, sizeof port);
    if (rc < 0) return rc;
    int fd = lumio__net_connect(host, port, 5000);
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Wait for writers: the bridge follows from writer to writer; the reader
 * itself reads its descriptor to the end. */
static int open_listening(lumio_stream_reader **out, const char *source,
                          const lumio_stream_reader_options *o) {
    lumio__net_error_clear();
    lsrc *b;
    int fd = -1;
    int rc = lumio__lsrc_open(&b, source, o && o->follow, o ? o->follow_idle_ms : 0, &fd);
    if (rc < 0) return open_failed(source, rc);
    lumio_stream_reader_options plain = {0};
    if (o) plain = *o;
    plain.follow = 0;
    if ((rc = open_fd(out, fd, true, source, &plain)) < 0) {
        close(fd);
        lumio__lsrc_close(b);
        return rc;
    }
    (*out)->bridge = b;
    (*out)->multi = true;
    return 0;
}

static int stream_reader_open_impl(lumio_stream_reader **out, const char *source,
                                   const lumio_stream_reader_options *o) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!source) return -EINVAL;
    if (o && !lumio__zero(o->reserved, sizeof o->reserved)) {
        lumio__err_set(NULL, "lumio_stream_reader_options: reserved fields are not zero");
        return -EINVAL;
    }
    if (!strcmp(source, "-")) return open_fd(out, STDIN_FILENO, false, "standard input", o);
    if (!strncmp(source, "tcp-listen:", 11) || !strncmp(source, "ws-listen:", 10))
        return open_listening(out, source, o);
    size_t tcp = lumio__net_connect_prefix(source);
    if (tcp) {
        lumio__net_error_clear();
        int fd = connect_to(source + tcp);
        if (fd < 0) return open_failed(source, fd);
        int rc = open_fd(out, fd, true, source, o);
        if (rc < 0) close(fd);
        return rc;
    }
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lumio__net_error_clear();
        return open_failed(source, -errno);
    }
    int rc = open_fd(out, fd, true, source, o);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) { /* kept to notice a replacement */
        (*out)->path = strdup(source);
        (*out)->dev = sb.st_dev;
        (*out)->ino = sb.st_ino;
    }
    return 0;
}

static int stream_reader_open_fd_impl(lumio_stream_reader **out, int fd,
                                      const lumio_stream_reader_options *o) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (fd < 0) return -EBADF;
    if (o && !lumio__zero(o->reserved, sizeof o->reserved)) {
        lumio__err_set(NULL, "lumio_stream_reader_options: reserved fields are not zero");
        return -EINVAL;
    }
    char name[32];
    snprintf(name, sizeof name, "fd %d", fd);
    return open_fd(out, fd, false, name, o);
}

char *lumio_stream_reader_last_error(const lumio_stream_reader *r, char *buf, size_t len) {
    return lumio__err_get(r ? &r->err : NULL, buf, len);
}

static int fill(lumio_stream_reader *r);

static void end_damage(lumio_stream_reader *r, bool torn) {
    if (!r->damaged) return;
    uint64_t len = r->pos - r->damage_from;
    if (torn) {
        r->st.torn_tail_bytes += len;
    } else {
        r->st.damaged_ranges++;
        r->st.damaged_bytes += len;
        if (r->st.damaged_ranges == 1) r->st.first_damage_offset = r->damage_from;
    }
    if (r->on_damage) r->on_damage(r->damage_arg, r->damage_from, len, torn);
    r->damaged = false;
}

/* Following a file: was it truncated (smaller than what was read), replaced
 * (another inode at its path), or rewritten (another first chunk)? Returns
 * the descriptor to go on with (the same or the new file's), or -1. */
static int replaced(lumio_stream_reader *r) {
    struct stat sb, now;
    if (!r->path || fstat(r->fd, &sb) < 0) return -1;
    if (stat(r->path, &now) == 0 && (now.st_dev != r->dev || now.st_ino != r->ino)) {
        int fd = open(r->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            r->dev = now.st_dev;
            r->ino = now.st_ino;
            return fd;
        }
    }
    if ((uint64_t)sb.st_size < r->total_read) return r->fd;
    uint8_t head[sizeof r->first];
    if (r->have_first && pread(r->fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
        memcmp(head + 4, r->first + 4, sizeof head - 4) != 0)
        return r->fd;
    return -1;
}

/* Start again at the beginning of the new content. */
static void restart(lumio_stream_reader *r, int fd) {
    end_damage(r, true); /* the old content ended there */
    if (r->on_restart) r->on_restart(r->restart_arg, r->pos);
    if (fd != r->fd) {
        close(r->fd);
        r->fd = fd;
    }
    lseek(r->fd, 0, SEEK_SET);
    r->start = r->end = 0;
    r->pos = r->total_read = 0;
    r->eof = false;
    r->have_seq = r->have_first = false;
    r->st.valid_end = 0;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Following: at the end of the data, wait for it to grow. Returns whether
 * more may come (false once idle_ms passed with nothing new). */
static bool canceled(lumio_stream_reader *r) {
    return atomic_load_explicit(&r->canceled, memory_order_relaxed) != 0;
}

/* 20 ms, or less when a cancel comes. */
static void nap(lumio_stream_reader *r) {
    struct pollfd p = {.fd = r->wake[0], .events = POLLIN};
    poll(&p, 1, 20);
}

static bool wait_growth(lumio_stream_reader *r) {
    uint64_t start = mono_ms();
    uint64_t had = r->total_read;
    while (r->idle_ms == 0 || mono_ms() - start < r->idle_ms) {
        nap(r);
        if (canceled(r)) return true; /* the loop then stops with -ECANCELED */
        int fd = replaced(r);
        if (fd >= 0) {
            restart(r, fd);
            return true;
        }
        r->eof = false;
        if (fill(r) < 0) return false;
        if (r->total_read > had) return true;
    }
    return false;
}

/* Following a file, a chunk whose magic is still zero is being written: its
 * writer sets the magic last, in place. Re-read those 4 bytes until it does
 * (or idle_ms passes: then it is damage like any other). */
static void wait_commit(lumio_stream_reader *r) {
    static const uint8_t zero[4] = {0};
    uint64_t start = mono_ms();
    while (memcmp(r->buf + r->start, zero, 4) == 0 && !canceled(r) &&
           (r->idle_ms == 0 || mono_ms() - start < r->idle_ms)) {
        nap(r);
        if (pread(r->fd, r->buf + r->start, 4, (off_t)r->pos) != 4) return; /* a pipe */
    }
}

/* Read more bytes: compact, grow if the buffer is full, read once. */
static int fill(lumio_stream_reader *r) {
    if (r->start > 0 && (r->start > r->cap / 2 || r->end == r->cap)) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t c = r->cap ? r->cap * 2 : (1u << 20);
        if (c > CHUNK_MAX_LEN + CHUNK_HDR + (1u << 20)) c = CHUNK_MAX_LEN + CHUNK_HDR + (1u << 20);
        if (c <= r->cap) return -EFBIG; /* cannot happen: limits keep chunks smaller */
        uint8_t *b = realloc(r->buf, c);
        if (!b) return -ENOMEM;
        r->buf = b;
        r->cap = c;
    }
    for (;;) {
        if (canceled(r)) return -ECANCELED;
        if (r->pollable) { /* a pipe or socket may wait for ever: so may a cancel */
            struct pollfd p[2] = {{.fd = r->fd, .events = POLLIN},
                                  {.fd = r->wake[0], .events = POLLIN}};
            if (poll(p, 2, -1) < 0 && errno != EINTR) return -errno;
            if (canceled(r)) return -ECANCELED;
            if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) continue;
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) r->eof = true;
        r->end += (size_t)n;
        r->total_read += (uint64_t)n;
        return 0;
    }
}

static int read_signature(lumio_stream_reader *r) {
    while (r->end - r->start < STREAM_SIG_LEN) {
        if (r->eof && !(r->follow && wait_growth(r))) break;
        int rc = r->eof ? 0 : fill(r);
        if (rc < 0) return rc;
    }
    if (r->end - r->start < STREAM_SIG_LEN ||
        memcmp(r->buf + r->start, lumio__stream_signature, 9) != 0)
        return LUMIO_E_FORMAT;
    r->start += STREAM_SIG_LEN;
    r->pos = STREAM_SIG_LEN;
    r->st.valid_end = STREAM_SIG_LEN;
    return 0;
}

static void advance(lumio_stream_reader *r, size_t n) {
    r->start += n;
    r->pos += n;
}

/* Past a byte that starts no valid chunk, to the next possible magic. */
static void skip_damage(lumio_stream_reader *r) {
    advance(r, 1);
    const uint8_t *p = memchr(r->buf + r->start, 'L', r->end - r->start);
    advance(r, p ? (size_t)(p - (r->buf + r->start)) : r->end - r->start);
}

static int read_all(lumio_stream_reader *r, lumio_sample_fn on_sample, lumio_meta_fn on_meta,
                    void *arg);

/* A callback's positive return stops reading with -ECANCELED (docs/API.md). */
int lumio_stream_reader_read(lumio_stream_reader *r, lumio_sample_fn on_sample,
                             lumio_meta_fn on_meta, void *arg) {
    if (!r) return -EINVAL;
    int rc = read_all(r, on_sample, on_meta, arg);
    if (rc == -ECANCELED && canceled(r)) { /* ours, not a callback's: the reader goes on later */
        /* The flag first, then the pipe: a cancel racing with this leaves
         * its flag set (the next read stops at once), never a byte alone,
         * which would make every wait of the next read return at once. */
        atomic_store(&r->canceled, 0);
        char drain[64];
        while (read(r->wake[0], drain, sizeof drain) > 0) continue;
        lumio__err_set(&r->err, "%s: canceled at byte %llu", r->name, (unsigned long long)r->pos);
        return rc;
    }
    char note[256];
    if (rc == 0 && r->bridge && (lumio__lsrc_note(r->bridge, note, sizeof note), note[0]))
        lumio__err_set(&r->err, "%s: %s", r->name, note); /* a writer dropped on the way */
    if (rc == LUMIO_E_FORMAT && r->st.chunks == 0 && r->pos == 0)
        lumio__err_set(&r->err, "%s: not a lumio stream (no signature)", r->name);
    else if (rc == -ECANCELED)
        lumio__err_set(&r->err, "%s: stopped by a callback at byte %llu", r->name,
                       (unsigned long long)r->pos);
    else if (rc < 0)
        lumio__err_set(&r->err, "%s: at byte %llu: %s", r->name, (unsigned long long)r->pos,
                       lumio_strerror(rc));
    return rc;
}

static int read_all(lumio_stream_reader *r, lumio_sample_fn on_sample, lumio_meta_fn on_meta,
                    void *arg) {
    for (;;) {
        if (canceled(r)) return -ECANCELED;
        int rc = r->pos ? 0 : read_signature(r); /* again after a restart */
        if (rc < 0) return rc;
        size_t avail = r->end - r->start;
        if (avail == 0 && r->eof && !(r->follow && wait_growth(r))) break;
        if (r->pos == 0) continue;
        avail = r->end - r->start;
        if (r->multi && !r->damaged && avail && r->buf[r->start] == lumio__stream_signature[0]) {
            if (avail < STREAM_SIG_LEN && !r->eof) { /* the next writer's signature, coming */
                if ((rc = fill(r)) < 0) return rc;
                continue;
            }
            if (avail >= STREAM_SIG_LEN &&
                !memcmp(r->buf + r->start, lumio__stream_signature, STREAM_SIG_LEN)) {
                advance(r, STREAM_SIG_LEN);
                r->have_seq = false; /* its chunks count from 0 again */
                continue;
            }
        }
        chunk_view v;
        if (r->follow && avail >= 4 && !r->damaged) wait_commit(r);
        rc = avail ? lumio__chunk_verify(&r->dec, r->buf + r->start, avail, &v) : -EAGAIN;
        if (rc == -EAGAIN && !r->eof) {
            if ((rc = fill(r)) < 0) return rc;
            continue;
        }
        if (r->follow && r->eof && (rc == -EAGAIN || avail == 0) && wait_growth(r)) continue;
        if (rc == 0 && r->have_seq && v.seq <= r->last_seq) rc = LUMIO_E_FORMAT; /* a replay */
        if (rc == 0) {
            r->dec.stopped = false;
            rc = lumio__chunk_replay(&r->dec, &v, on_sample, on_meta, arg);
            if (r->dec.stopped || (rc < 0 && rc != LUMIO_E_FORMAT))
                return rc; /* a callback's stop, or memory */
        }
        if (rc == 0) {
            end_damage(r, false);
            if (r->pos == STREAM_SIG_LEN) { /* to recognise this content later */
                memcpy(r->first, lumio__stream_signature, STREAM_SIG_LEN);
                memcpy(r->first + STREAM_SIG_LEN, r->buf + r->start, CHUNK_HDR);
                r->have_first = true;
            }
            r->st.stored_bytes += v.stored_len;
            r->st.raw_bytes += v.raw_len;
            r->st.chunks++;
            r->st.samples += v.samples;
            r->st.records += v.records;
            r->have_seq = true;
            r->last_seq = r->st.last_seq = v.seq;
            advance(r, v.total_len);
            r->st.valid_end = r->pos;
            continue;
        }
        if (rc == LUMIO_E_CHECKSUM || rc == LUMIO_E_FORMAT || rc == -EAGAIN || rc == -E2BIG) {
            if (!r->damaged) {
                r->damaged = true;
                r->damage_from = r->pos;
                r->damage_torn = rc == -EAGAIN || avail < 4 ||
                                 memcmp(r->buf + r->start, lumio__chunk_magic, 4) != 0;
            }
            skip_damage(r);
            continue;
        }
        return rc;
    }
    end_damage(r, r->damage_torn);
    return 0;
}

void lumio_stream_reader_get_stats(const lumio_stream_reader *r, lumio_stream_reader_stats *s) {
    *s = r->st;
}

/* Only a flag and a write(2): async-signal-safe, errno kept. */
int lumio_stream_reader_cancel(lumio_stream_reader *r) {
    if (!r) return -EINVAL;
    atomic_store(&r->canceled, 1);
    int saved = errno;
    ssize_t k = write(r->wake[1], "", 1);
    (void)k;
    errno = saved;
    return 0;
}

void lumio_stream_reader_close(lumio_stream_reader *r) {
    if (!r) return;
    close(r->wake[0]);
    close(r->wake[1]);
    if (r->own_fd) close(r->fd);
    lumio__lsrc_close(r->bridge);
    lumio__chunk_dec_free(&r->dec);
    free(r->buf);
    free(r->path);
    lumio__err_fini(&r->err);
    free(r);
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_stream_reader_open(lumio_stream_reader **out, const char *source,
                             const lumio_stream_reader_options *o) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_reader_open_impl(out, source, o),
                             (source ? source : "(null)"));
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_stream_reader_open_fd(lumio_stream_reader **out, int fd,
                                const lumio_stream_reader_options *o) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, stream_reader_open_fd_impl(out, fd, o),
                             "lumio_stream_reader_open_fd");
}
