/* Shared helpers of the command-line tool (see common.h). */
#include "cli/common.h"

#include <dirent.h>
#include <errno.h>
#include <fts.h>
#include <lumio/remote.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- messages ------------------------------------------------------------ */

static const char *cli_name = "lumio";

void cli_set_name(const char *name) {
    cli_name = name;
}

/* Every message goes through lumio_redact(): a URL named in it, by the
 * command or by the library, never shows a password or a signature. */
void cli_error(const char *fmt, ...) {
    fflush(stdout);
    progress_hide_active();
    va_list ap;
    va_start(ap, fmt);
    char stack[2048];
    char *text = stack;
    int n = vsnprintf(stack, sizeof stack, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof stack && (text = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (!text) text = stack;
    size_t cap = strlen(text) * 4 + 1;
    char *shown = malloc(cap);
    fprintf(stderr, "%s: %s\n", cli_name,
            shown ? lumio_redact(text, shown, cap) : "(out of memory)");
    free(shown);
    if (text != stack) free(text);
}

void cli_path_error(const char *path, int code) {
    cli_error("%s: %s", path ? path : "(fd)", lumio_strerror(code));
}

/* ---- parsing ---------------------------------------------------------------- */

static int suffix_shift(const char *s, unsigned *shift) {
    static const char units[] = "kmgtp";
    *shift = 0;
    if (*s == 0) return 0;
    const char *u = strchr(units, s[0] | 0x20);
    if (!u) return -1;
    *shift = 10 * (unsigned)(u - units + 1);
    s++;
    /* "K", "KB", "KiB" all mean 1024: sizes here are always binary. */
    if ((s[0] | 0x20) == 'i') s++;
    if ((s[0] | 0x20) == 'b') s++;
    return *s == 0 ? 0 : -1;
}

int parse_size(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    unsigned shift;
    if (suffix_shift(end, &shift) < 0) return -1;
    if (shift && v > (UINT64_MAX >> shift)) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* ---- walking ---------------------------------------------------------------- */

struct walker {
    char *const *roots;
    int nroots, next_root, flags;
    char *argv[2]; /* the one root fts walks now */
    FTS *fts;
    FTSENT *cur;
    size_t rootlen; /* a path below the root continues after this many bytes */
};

static int by_name(const FTSENT **a, const FTSENT **b) {
    return strcmp((*a)->fts_name, (*b)->fts_name);
}

int walker_open(walker **out, char *const *roots, int nroots, int flags) {
    walker *w = calloc(1, sizeof(*w));
    if (!w) return -ENOMEM;
    w->roots = roots;
    w->nroots = nroots;
    w->flags = flags;
    *out = w;
    return 0;
}

static walk_kind kind_of(const FTSENT *f, int *err) {
    *err = 0;
    switch (f->fts_info) {
    case FTS_D:
        return WALK_DIR;
    case FTS_DP:
        return WALK_DIR_POST;
    case FTS_F:
        return WALK_FILE;
    case FTS_SL:
    case FTS_SLNONE:
        return WALK_SYMLINK;
    case FTS_DEFAULT:
        return WALK_OTHER;
    case FTS_DC:
        *err = -ELOOP;
        return WALK_ERROR;
    default:
        *err = -(f->fts_errno ? f->fts_errno : EIO);
        return WALK_ERROR;
    }
}

/* Start walking the next root; false when there is none. An fts_open()
 * failure (an empty name, say) is returned as an error entry for the root. */
static bool next_root(walker *w, walk_entry *e, bool *have_entry) {
    *have_entry = false;
    if (w->next_root >= w->nroots) return false;
    w->argv[0] = w->roots[w->next_root++];
    w->argv[1] = NULL;
    int opts = FTS_PHYSICAL | FTS_NOCHDIR;
    if (w->flags & WALK_FOLLOW_ROOTS) opts |= FTS_COMFOLLOW;
    w->fts = fts_open(w->argv, opts, by_name);
    if (!w->fts) {
        *e = (walk_entry){
            .kind = WALK_ERROR, .path = w->argv[0], .rel = "", .root = w->argv[0], .err = -errno};
        *have_entry = true;
    }
    return true;
}

int walker_next(walker *w, walk_entry *e) {
    for (;;) {
        if (!w->fts) {
            bool have;
            if (!next_root(w, e, &have)) return 0;
            if (have) return 1;
            continue;
        }
        errno = 0;
        FTSENT *f = fts_read(w->fts);
        if (!f) {
            int err = errno;
            fts_close(w->fts);
            w->fts = NULL;
            w->cur = NULL;
            if (!err) continue;
            *e = (walk_entry){
                .kind = WALK_ERROR, .path = w->argv[0], .rel = "", .root = w->argv[0], .err = -err};
            return 1;
        }
        w->cur = f;
        if (f->fts_level == 0) {
            /* Children of "dir/" are "dir/x", of "dir" too: fts adds a slash
             * only when the root does not end with one. */
            size_t n = f->fts_pathlen;
            w->rootlen = n && f->fts_path[n - 1] == '/' ? n - 1 : n;
        }
        int err;
        walk_kind k = kind_of(f, &err);
        *e = (walk_entry){.kind = k,
                          .path = f->fts_path,
                          .rel = f->fts_level == 0 ? "" : f->fts_path + w->rootlen,
                          .root = w->argv[0],
                          .st = k == WALK_ERROR ? NULL : f->fts_statp,
                          .err = err,
                          .level = (int)f->fts_level};
        return 1;
    }
}

void walker_skip(walker *w) {
    if (w->fts && w->cur) fts_set(w->fts, w->cur, FTS_SKIP);
}

void walker_close(walker *w) {
    if (!w) return;
    if (w->fts) fts_close(w->fts);
    free(w);
}

/* ---- JSON ------------------------------------------------------------------ */

void json_begin(json *j, FILE *f) {
    j->f = f;
    j->fields = 0;
    fputc('{', f);
}

void json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_key(json *j, const char *key) {
    if (j->fields++) fputs(", ", j->f);
    json_write_string(j->f, key);
    fputs(": ", j->f);
}

void json_str(json *j, const char *key, const char *val) {
    json_key(j, key);
    json_write_string(j->f, val);
}

void json_u64(json *j, const char *key, uint64_t val) {
    json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)val);
}

void json_num(json *j, const char *key, double val) {
    json_key(j, key);
    fprintf(j->f, "%.6g", isfinite(val) ? val : 0.0); /* JSON has no inf or nan */
}

void json_bool(json *j, const char *key, bool val) {
    json_key(j, key);
    fputs(val ? "true" : "false", j->f);
}

void json_end(json *j) {
    fputs("}\n", j->f);
}

/* ---- I/O and time -------------------------------------------------------------- */

int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *backend_name(lumio_backend b) {
    return b == LUMIO_BACKEND_THREADS ? "threads" : "uring";
}

uint64_t cli_splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- resources ---------------------------------------------------------------- */

void cli_raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl); /* as before if refused */
    }
}

/* Descriptors open now: /proc/self/fd lists them (less its own); without
 * /proc, the highest one in use is a bound. */
static uint64_t fds_in_use(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        int fd = dup(0);
        if (fd < 0) return 64;
        close(fd);
        return (uint64_t)fd + 1;
    }
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n ? n - 1 : 0;
}

uint64_t cli_fds_free(unsigned reserve) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return 0;
    uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
    uint64_t used = fds_in_use() + reserve;
    return limit > used ? limit - used : 0;
}

unsigned cli_ring_open_files(unsigned rings, unsigned want) {
    if (rings == 0) rings = 1;
    /* Each ring: its io_uring and eventfd; beside them, sockets and the
     * directories a walk holds open. */
    uint64_t share = cli_fds_free(16 + 4 * rings) / rings;
    if (share < 1) share = 1;
    return share < want ? (unsigned)share : want;
}

const char *cli_size_text(uint64_t v, char *buf, size_t len) {
    static const char units[] = "KMGTP";
    int u = -1;
    while (u < 4 && v && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, len, "%llu", (unsigned long long)v);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
    return buf;
}

int cli_link_error(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return -errno;
    return -ENOENT; /* followable now: it changed under the walk */
}

off_t cli_stdin_offset(void) {
    struct stat st;
    if (fstat(STDIN_FILENO, &st) < 0 || !S_ISREG(st.st_mode)) return -1;
    off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
    return at < 0 ? -1 : at;
}
