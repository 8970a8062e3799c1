/* lumio stream: write, read, check and measure lumio streams (docs/FORMAT.md).
 *
 *   gen      a deterministic synthetic profile (threads walking a call tree)
 *   export   samples as folded stacks or JSON lines
 *   info     chunks, samples, threads, time span, compression
 *   verify   exit non-zero, saying where, on any damage
 *   recover  every valid chunk into a clean stream
 *   bench    write and read speed, bytes per sample */
#include "cli/common.h"
#include "cli/output.h"
#include "cli/stream_recv.h"
#include "stream/import.h"
#include "stream/net.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <lumio/stream.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char stream_usage[] =
    "usage: lumio stream COMMAND [OPTION]... \n"
    "\n"
    "Commands:\n"
    "  gen --seed S --samples N --threads T [--depth D] [--flush POLICY] [--fsync]\n"
    "      [--level L] [--rate SAMPLES_PER_S] [--to collapsed] -o SINK\n"
    "                     write a deterministic synthetic profile; after each sealed\n"
    "                     chunk print 'sealed chunks=C samples=S' on stderr\n"
    "  import --from collapsed|perf-script [--flush POLICY] [--level L] [--append]\n"
    "      FILE|- -o SINK\n"
    "                     folded stacks, or the text of 'perf script', into a stream\n"
    "  export --to collapsed|jsonl [--follow [--idle SECONDS]] FILE|-\n"
    "                     samples as folded stacks, or one JSON object per sample and\n"
    "                     record; --follow reads a file as it grows (until SECONDS\n"
    "                     idle), from its beginning again when it is truncated or\n"
    "                     replaced\n"
    "  info FILE          chunks, samples, threads, time span, compression ratio\n"
    "  verify FILE        exit 1, saying where, on any damage\n"
    "  recover FILE -o OUT\n"
    "                     write every valid chunk's samples to a clean stream\n"
    "  recv tcp-listen:[HOST:]PORT -o FILE [--once] [--memory SIZE]\n"
    "                     receive streams into FILE (appended, chunk by chunk as they\n"
    "                     arrive; HOST defaults to 127.0.0.1); up to 16 senders at a\n"
    "                     time, a sender that breaks the format is named and dropped,\n"
    "                     as is one whose chunk would take the senders' unfinished\n"
    "                     chunks past --memory (default 512M);\n"
    "                     stops on SIGINT or SIGTERM, or with --once when the first\n"
    "                     sender is done\n"
    "  bench [--samples N] [--threads T] [--depth D] [--level L]\n"
    "                     one JSON object: write_samples_per_s, read_samples_per_s,\n"
    "                     bytes_per_sample\n"
    "\n"
    "POLICY: samples=N,bytes=SIZE,seconds=S (any of them; default samples=65536).\n"
    "SINK: a file path, - (standard output), tcp:HOST:PORT or tcp-listen:[HOST:]PORT\n"
    "(HOST defaults to 127.0.0.1; PORT from 1 to 65535).\n"
    "FILE: a file path, - (standard input), or tcp:HOST:PORT (a tcp-listen writer).\n"
    "\n"
    "Exit status: 0; 1 when a file or connection failed, or (export, info, verify)\n"
    "when damage was skipped in the middle of a stream (a torn tail alone, left by\n"
    "a killed writer, is noted on stderr and exits 0, except for verify); 2 for a\n"
    "wrong command line. import and recover write a regular file under a temporary\n"
    "name and rename it at the end: a failed run leaves no output.\n";

/* ---- the synthetic profile ---------------------------------------------------------- */

/* A program of NFUNC functions; every thread's stack moves by small steps
 * (mostly repeats, calls and returns of a few frames), within [depth/2,
 * depth*3/2]. A pure function of the seed, the thread count and the index. */
#define NFUNC 2000

typedef struct synth {
    uint64_t rng;
    unsigned threads, depth;
    uint32_t **stack; /* per thread, function numbers, innermost first */
    uint32_t *d;
    uint64_t *ts;
} synth;

static int synth_init(synth *s, uint64_t seed, unsigned threads, unsigned depth) {
    *s = (synth){.rng = seed, .threads = threads, .depth = depth};
    s->stack = calloc(threads, sizeof(uint32_t *));
    s->d = calloc(threads, sizeof(uint32_t));
    s->ts = calloc(threads, sizeof(uint64_t));
    if (!s->stack || !s->d || !s->ts) return -ENOMEM;
    unsigned cap = depth * 2 + 8;
    for (unsigned t = 0; t < threads; t++) {
        if (!(s->stack[t] = malloc(cap * sizeof(uint32_t)))) return -ENOMEM;
        s->d[t] = depth;
        for (unsigned i = 0; i < depth; i++) /* outermost frames shared by all threads */
            s->stack[t][depth - 1 - i] = (uint32_t)((i * 7 + (i > 3 ? t : 0)) % NFUNC);
        s->ts[t] = 1700000000000000ull + t * 13;
    }
    return 0;
}

static void synth_free(synth *s) {
    for (unsigned t = 0; s->stack && t < s->threads; t++) free(s->stack[t]);
    free(s->stack);
    free(s->d);
    free(s->ts);
}

/* The next sample: which thread, its time and stack (function numbers). */
static unsigned synth_next(synth *s) {
    unsigned t = (unsigned)(cli_splitmix(&s->rng) % s->threads);
    uint64_t r = cli_splitmix(&s->rng);
    uint32_t *st = s->stack[t], d = s->d[t];
    unsigned k = 1 + (unsigned)((r >> 8) % 3);
    unsigned lo = s->depth / 2, hi = s->depth * 3 / 2;
    if (r % 10 < 2 && d + k <= hi) { /* call k deeper */
        memmove(st + k, st, d * sizeof(uint32_t));
        for (unsigned i = 0; i < k; i++) st[i] = (uint32_t)((r >> (16 + 8 * i)) % NFUNC);
        d += k;
    } else if (r % 10 < 4 && d >= lo + k) { /* return k */
        memmove(st, st + k, (d - k) * sizeof(uint32_t));
        d -= k;
    } else if (r % 10 < 5 && d > 0) { /* a different leaf */
        st[0] = (uint32_t)((r >> 20) % NFUNC);
    }
    s->d[t] = d;
    s->ts[t] += 100 + (r >> 40) % 3; /* 10 kHz, with a little jitter */
    return t;
}

static int synth_frames(lumio_stream_writer *w, uint32_t *ids) {
    for (uint32_t f = 0; f < NFUNC; f++) {
        char fn[32], file[32];
        snprintf(fn, sizeof fn, "func_%u", f);
        snprintf(file, sizeof file, "module_%u.c", f / 50);
        lumio_frame fr = {fn, file, 10 + f % 400};
        int rc = lumio_stream_intern_frame(w, &fr, &ids[f]);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Sample t's stack as frame ids (the writer's fast path). */
static void synth_ids(const synth *s, unsigned t, const uint32_t *ids, uint32_t *out) {
    for (uint32_t k = 0; k < s->d[t]; k++) out[k] = ids[s->stack[t][k]];
}

/* The options that shape a synthetic profile, shared by gen and bench. */
typedef struct synth_opts {
    uint64_t seed, samples, threads, depth, level;
} synth_opts;

/* 1: taken, 0: not one of these, -1: a bad value. */
static int synth_option(int c, const char *arg, synth_opts *p) {
    switch (c) {
    case 's':
        return parse_count(arg, 0, UINT64_MAX, &p->seed) < 0 ? -1 : 1;
    case 'n':
        return parse_count(arg, 0, UINT64_MAX, &p->samples) < 0 ? -1 : 1;
    case 't':
        return parse_count(arg, 1, 4096, &p->threads) < 0 ? -1 : 1;
    case 'd':
        return parse_count(arg, 2, LUMIO_STREAM_MAX_DEPTH / 2, &p->depth) < 0 ? -1 : 1;
    case 'l':
        return parse_count(arg, 0, 22, &p->level) < 0 ? -1 : 1;
    default:
        return 0;
    }
}

/* The long name of option c, for messages. */
static const char *opt_name(const struct option *lo, int c) {
    for (; lo->name; lo++)
        if (lo->val == c) return lo->name;
    return "?";
}

/* ---- messages and outputs --------------------------------------------------------- */

static bool is_tcp(const char *s) {
    return !strncmp(s, "tcp:", 4) || !strncmp(s, "tcp-listen:", 11);
}

/* A sink or source that did not open: TCP ones say what the network said
 * (refused, unknown host, invalid port). */
static void open_error(const char *what, int rc) {
    if (rc == LUMIO_E_FORMAT) /* only an append to something else gives this */
        cli_error("%s: not a lumio stream (appending continues only a stream)", what);
    else if (is_tcp(what) && net_error()[0])
        cli_error("%s: %s", what, net_error());
    else
        cli_path_error(what, rc);
}

/* A stream that could not be read at all. */
static void read_error(const char *path, int rc, const lumio_stream_read_stats *s) {
    struct stat sb;
    if (rc != LUMIO_E_FORMAT && s->valid_end)
        cli_error("%s: reading after byte %" PRIu64 ": %s", path, s->valid_end, lumio_strerror(rc));
    else if (rc != LUMIO_E_FORMAT)
        cli_path_error(path, rc);
    else if (strcmp(path, "-") && !is_tcp(path) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
             sb.st_size < 16)
        cli_error("%s: not a lumio stream (%s: %lld bytes, a stream starts with 16)", path,
                  sb.st_size ? "too short" : "empty file", (long long)sb.st_size);
    else
        cli_error("%s: byte 0: not a lumio stream (no \\x89LUMIO\\r\\n signature)", path);
}

/* Where damage was skipped, as one line; nothing when there was none. */
static void damage_note(const char *path, const lumio_stream_read_stats *s) {
    char tail[96] = "";
    if (s->torn_tail_bytes)
        snprintf(tail, sizeof tail, "a torn tail of %" PRIu64 " bytes at byte %" PRIu64,
                 s->torn_tail_bytes, s->valid_end);
    if (s->damaged_ranges)
        cli_error("%s: damaged: skipped %" PRIu64 " bytes in %" PRIu64
                  " ranges, the first at byte %" PRIu64 "%s%s",
                  path, s->damaged_bytes, s->damaged_ranges, s->first_damage_offset,
                  tail[0] ? ", and " : "", tail);
    else if (tail[0])
        cli_error("%s: skipped %s (a writer killed mid-chunk; the chunks before it are whole)",
                  path, tail);
}

/* An output that is whole or absent (cli/output.h): a regular file is
 * written under a temporary name beside it and renamed over it at the end,
 * removed on failure or SIGINT, SIGTERM, SIGHUP; devices, FIFOs and
 * descriptors (/dev/stdout) are written in place, as are standard output,
 * TCP sinks and appends, which the writer opens itself. */
typedef struct outfile {
    cli_output co;
    bool used; /* co is open */
} outfile;

static int out_open(outfile *of, const char *out, const lumio_stream_writer_options *o,
                    lumio_stream_writer **w) {
    memset(of, 0, sizeof *of);
    if (!strcmp(out, "-") || is_tcp(out) || (o && o->append))
        return lumio_stream_writer_open(w, out, o);
    int rc = cli_output_open(&of->co, out);
    if (rc < 0) return rc;
    of->used = true;
    if ((rc = lumio_stream_writer_open_fd(w, of->co.fd, o)) < 0) {
        cli_output_close(&of->co, EXIT_FILES);
        of->used = false;
    }
    return rc;
}

/* Close the writer; on success put the file in place (synced first), on
 * failure remove it. Returns the first error (a message names the path). */
static int out_close(outfile *of, lumio_stream_writer *w, bool ok) {
    int rc = w ? lumio_stream_writer_close(w) : 0;
    if (!of->used) return rc;
    of->used = false;
    if (rc == 0 && ok && cli_output_is_file(&of->co) && fsync(of->co.fd) < 0) rc = -errno;
    if (rc < 0 && ok) cli_path_error(of->co.name, rc);
    if (cli_output_close(&of->co, rc == 0 && ok ? 0 : EXIT_FILES) != 0 && rc == 0 && ok)
        rc = -EIO; /* (said, naming the path) */
    return rc;
}

/* The writer's last failure, naming OUT (a temporary file's writer knows
 * only its descriptor). */
static void writer_error(const char *out, const lumio_stream_writer *w) {
    const char *e = lumio_stream_writer_error(w);
    size_t n = strlen(out);
    if (!strncmp(e, out, n) && !strncmp(e + n, ": ", 2))
        cli_error("%s", e);
    else if (!strncmp(e, "fd ", 3) && strstr(e, ": "))
        cli_error("%s: %s", out, strstr(e, ": ") + 2);
    else
        cli_error("%s: %s", out, e[0] ? e : "write failed");
}

/* ---- options -------------------------------------------------------------------- */

static int parse_policy(const char *p, lumio_stream_writer_options *o) {
    char *copy = strdup(p), *save = NULL;
    if (!copy) return -ENOMEM;
    int rc = 0;
    o->flush_samples = o->flush_bytes = o->flush_ms = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            rc = -EINVAL;
            break;
        }
        *eq++ = 0;
        uint64_t v;
        if (!strcmp(tok, "samples"))
            rc = parse_count(eq, 1, UINT64_MAX, &o->flush_samples);
        else if (!strcmp(tok, "bytes"))
            rc = parse_size(eq, &o->flush_bytes);
        else if (!strcmp(tok, "seconds") && !(rc = parse_count(eq, 0, 86400 * 365, &v)))
            o->flush_ms = v * 1000;
        else if (!strcmp(tok, "ms"))
            rc = parse_count(eq, 1, UINT64_MAX, &o->flush_ms);
        else
            rc = -EINVAL;
    }
    free(copy);
    return rc < 0 ? rc : 0;
}

/* ---- gen ---------------------------------------------------------------------------- */

/* Seal the last chunk and deliver it (TCP), then close: one line for the
 * outcome, which for TCP counts the chunks that did not reach the consumer. */
static int gen_finish(lumio_stream_writer *w, const char *out, int rc) {
    lumio_stream_writer_stats before, st;
    lumio_stream_writer_get_stats(w, &before);
    int frc = lumio_stream_writer_finish(w);
    lumio_stream_writer_get_stats(w, &st);
    if (rc == 0 && st.chunks > before.chunks) /* the last chunk */
        fprintf(stderr, "sealed chunks=%" PRIu64 " samples=%" PRIu64 "\n", st.chunks, st.samples);
    if (frc < 0 && rc == 0) {
        if (lumio_stream_writer_error(w)[0])
            cli_error("%s", lumio_stream_writer_error(w));
        else
            cli_path_error(out, frc);
        rc = frc;
    } else if (rc == 0 && is_tcp(out)) {
        fprintf(stderr, "tcp: connections=%" PRIu64 " dropped_chunks=%" PRIu64 "\n", st.connections,
                st.dropped_chunks);
    }
    int crc = lumio_stream_writer_close(w);
    if (crc < 0 && rc == 0) {
        cli_path_error(out, crc);
        rc = crc;
    }
    return rc;
}

static int stream_gen(int argc, char **argv) {
    static const struct option lo[] = {{"seed", 1, NULL, 's'},
                                       {"samples", 1, NULL, 'n'},
                                       {"threads", 1, NULL, 't'},
                                       {"depth", 1, NULL, 'd'},
                                       {"flush", 1, NULL, 'f'},
                                       {"fsync", 0, NULL, 'y'},
                                       {"level", 1, NULL, 'l'},
                                       {"to", 1, NULL, 'T'},
                                       {"help", 0, NULL, 'h'},
                                       {"rate", 1, NULL, 'r'},
                                       {0}};
    synth_opts so = {.seed = 1, .samples = 100000, .threads = 4, .depth = 40, .level = 3};
    uint64_t rate = 0;
    const char *out = NULL, *to = NULL;
    lumio_stream_writer_options o;
    lumio_stream_writer_options_default(&o);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
        int got = synth_option(c, optarg, &so);
        switch (got ? 0 : c) {
        case 0:
            break;
        case 'h':
            fputs(stream_usage, stdout);
            return 0;
        case 'r':
            if (parse_count(optarg, 1, UINT64_MAX, &rate) < 0) got = -1;
            break;
        case 'f':
            if (parse_policy(optarg, &o) < 0) got = -1;
            break;
        case 'y':
            o.fsync = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case 'T':
            to = optarg;
            break;
        default:
            return cli_option_error(c, argv);
        }
        if (got < 0) {
            cli_error("invalid --%s '%s'", opt_name(lo, c), optarg);
            return EXIT_USAGE;
        }
    }
    uint64_t seed = so.seed, n = so.samples, threads = so.threads, depth = so.depth,
             level = so.level;
    if (to && strcmp(to, "collapsed")) {
        cli_error("invalid --to '%s' (collapsed)", to);
        return EXIT_USAGE;
    }
    if (!out && !to) {
        cli_error("missing -o SINK (see 'lumio stream --help')");
        return EXIT_USAGE;
    }
    o.zstd_level = (int)level;
    synth s;
    uint32_t *ids = malloc(NFUNC * sizeof(uint32_t)),
             *stk = malloc(depth * 2 * sizeof(uint32_t) + 64);
    int rc = synth_init(&s, seed, (unsigned)threads, (unsigned)depth);
    if (rc < 0 || !ids || !stk) {
        cli_error("out of memory");
        return EXIT_FILES;
    }
    if (to) { /* the same samples as folded stacks */
        for (uint64_t i = 0; i < n; i++) {
            unsigned t = synth_next(&s);
            for (uint32_t k = s.d[t]; k-- > 0;)
                printf("func_%u%s", s.stack[t][k], k ? ";" : " 1\n");
            if (!s.d[t]) printf("[empty] 1\n");
        }
        synth_free(&s);
        free(ids);
        free(stk);
        if (fflush(stdout) == 0) return 0;
        cli_error("standard output: %s", strerror(errno));
        return EXIT_FILES;
    }
    lumio_stream_writer *w;
    if ((rc = lumio_stream_writer_open(&w, out, &o)) < 0) {
        open_error(out, rc);
        synth_free(&s);
        free(ids);
        free(stk);
        return EXIT_FILES;
    }
    rc = synth_frames(w, ids);
    uint64_t sealed = 0;
    double start = now_seconds();
    char meta[64];
    snprintf(meta, sizeof meta, "seed=%" PRIu64 " threads=%" PRIu64, seed, threads);
    if (rc == 0) rc = lumio_stream_write_meta(w, s.ts[0], "generator", meta);
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        unsigned t = synth_next(&s);
        synth_ids(&s, t, ids, stk);
        rc = lumio_stream_write_ids(w, s.ts[t], 1000 + t, 0, stk, s.d[t]);
        if (rate && i % 100 == 99) { /* pace: as a live profiler would */
            double ahead = (double)(i + 1) / (double)rate - (now_seconds() - start);
            if (ahead > 0) usleep((useconds_t)(ahead * 1e6));
        }
        lumio_stream_writer_stats st;
        lumio_stream_writer_get_stats(w, &st);
        if (st.chunks != sealed) {
            sealed = st.chunks;
            fprintf(stderr, "sealed chunks=%" PRIu64 " samples=%" PRIu64 "\n", st.chunks,
                    st.samples);
        }
    }
    if (rc < 0) cli_error("%s", lumio_stream_writer_error(w));
    rc = gen_finish(w, out, rc);
    synth_free(&s);
    free(ids);
    free(stk);
    return rc < 0 ? EXIT_FILES : 0;
}

/* ---- import ------------------------------------------------------------------------ */

static int import_sample(void *arg, const lumio_sample *s) {
    return lumio_stream_write_sample(arg, s);
}

static int stream_import(int argc, char **argv) {
    static const struct option lo[] = {{"from", 1, NULL, 'F'},  {"flush", 1, NULL, 'f'},
                                       {"level", 1, NULL, 'l'}, {"append", 0, NULL, 'a'},
                                       {"help", 0, NULL, 'h'},  {0}};
    const char *from = NULL, *out = NULL;
    uint64_t level = 3;
    lumio_stream_writer_options o;
    lumio_stream_writer_options_default(&o);
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(stream_usage, stdout);
            return 0;
        case 'F':
            from = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'a':
            o.append = 1;
            break;
        case 'l':
            if (parse_count(optarg, 0, 22, &level) < 0) {
                cli_error("invalid --level '%s' (0 to 22)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'f':
            if (parse_policy(optarg, &o) < 0) {
                cli_error("invalid --flush '%s' (e.g. samples=10000,bytes=4M,seconds=5)", optarg);
                return EXIT_USAGE;
            }
            break;
        default:
            return cli_option_error(c, argv);
        }
    }
    bool perf = from && !strcmp(from, "perf-script");
    if (!from || (!perf && strcmp(from, "collapsed")) || !out || optind != argc - 1) {
        cli_error("usage: lumio stream import --from collapsed|perf-script FILE|- -o SINK");
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!in) {
        cli_path_error(path, -errno);
        return EXIT_FILES;
    }
    o.zstd_level = (int)level;
    lumio_stream_writer *w;
    outfile of;
    int rc = out_open(&of, out, &o, &w);
    if (rc < 0) {
        if (in != stdin) fclose(in);
        open_error(out, rc);
        out_close(&of, NULL, false);
        return EXIT_FILES;
    }
    char err[512] = "";
    rc = perf ? lumio_import_perf_script(in, import_sample, w, err, sizeof err)
              : lumio_import_collapsed(in, import_sample, w, err, sizeof err);
    if (in != stdin) fclose(in);
    if (rc != 0 && err[0])
        cli_error("%s: %s", path, err);
    else if (rc != 0)
        writer_error(out, w);
    int crc = out_close(&of, w, rc == 0);
    return rc != 0 || crc < 0 ? EXIT_FILES : 0;
}

/* ---- reading commands -------------------------------------------------------------- */

typedef struct rstate {
    const char *to;
    uint64_t threads[1024];
    size_t nthreads;
    uint64_t t_min, t_max;
    uint64_t samples;
} rstate;

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int export_sample(void *arg, const lumio_sample *s) {
    rstate *st = arg;
    if (!strcmp(st->to, "collapsed")) {
        for (uint32_t k = s->depth; k-- > 0;) {
            for (const char *p = s->frames[k].function; *p; p++)
                putchar(*p == ';' ? ':' : *p == '\n' ? ' ' : *p);
            putchar(k ? ';' : ' ');
        }
        if (!s->depth) fputs("[empty] ", stdout);
        puts("1");
        return 0;
    }
    printf("{\"type\":\"sample\",\"ts_us\":%" PRIu64 ",\"tid\":%" PRIu64
           ",\"status\":%u,\"frames\":[",
           s->timestamp_us, s->thread_id, s->status);
    for (uint32_t k = 0; k < s->depth; k++) {
        fputs(k ? ",{\"function\":" : "{\"function\":", stdout);
        json_string(stdout, s->frames[k].function);
        fputs(",\"file\":", stdout);
        json_string(stdout, s->frames[k].file);
        printf(",\"line\":%u}", s->frames[k].line);
    }
    puts("]}");
    return 0;
}

static int export_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    rstate *st = arg;
    if (!strcmp(st->to, "collapsed")) return 0;
    printf("{\"type\":\"meta\",\"ts_us\":%" PRIu64 ",\"key\":", ts);
    json_string(stdout, k);
    fputs(",\"value\":", stdout);
    json_string(stdout, v);
    puts("}");
    return 0;
}

static int open_reader(const char *path, lumio_stream_reader **r) {
    int rc = lumio_stream_reader_open(r, path);
    if (rc < 0) open_error(path, rc);
    return rc;
}

static void on_restart(void *arg, uint64_t old_offset) {
    cli_error("%s: truncated or replaced (was at byte %" PRIu64
              "); reading again from its beginning",
              (const char *)arg, old_offset);
}

static int stream_export(int argc, char **argv) {
    const char *to = NULL, *path = NULL;
    bool follow = false, idle_set = false;
    uint32_t idle_ms = 0;
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(stream_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--follow")) {
            follow = true;
        } else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
            if (parse_count(argv[++i], 0, 86400, &v) < 0) {
                cli_error("invalid --idle '%s' (seconds)", argv[i]);
                return EXIT_USAGE;
            }
            idle_ms = (uint32_t)(v * 1000);
            idle_set = true;
        } else if (!strcmp(argv[i], "--to") && i + 1 < argc)
            to = argv[++i];
        else if (!strncmp(argv[i], "--to=", 5))
            to = argv[i] + 5;
        else if (!path)
            path = argv[i];
        else {
            cli_error("unexpected argument '%s'", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!to || (strcmp(to, "collapsed") && strcmp(to, "jsonl")) || !path) {
        cli_error("usage: lumio stream export --to collapsed|jsonl [--follow [--idle SECONDS]] "
                  "FILE|-");
        return EXIT_USAGE;
    }
    if (idle_set && !follow) {
        cli_error("--idle needs --follow (it is how long --follow waits for more)");
        return EXIT_USAGE;
    }
    lumio_stream_reader *r;
    if (open_reader(path, &r) < 0) return EXIT_FILES;
    if (follow) { /* a live view: each sample out as it comes, not when a buffer fills */
        lumio_stream_reader_follow(r, idle_ms);
        setvbuf(stdout, NULL, _IOLBF, 0);
    }
    lumio_stream_reader_on_restart(r, on_restart, (void *)path);
    rstate st = {.to = to};
    int rc = lumio_stream_read(r, export_sample, export_meta, &st);
    lumio_stream_read_stats s;
    lumio_stream_reader_get_stats(r, &s);
    lumio_stream_reader_close(r);
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("standard output: %s", strerror(errno));
        return EXIT_FILES;
    }
    if (rc < 0) {
        read_error(path, rc, &s);
        return EXIT_FILES;
    }
    damage_note(path, &s); /* every valid sample is out: now the verdict */
    return s.damaged_ranges ? EXIT_FILES : 0;
}

static int count_sample(void *arg, const lumio_sample *s) {
    rstate *st = arg;
    if (!st->samples || s->timestamp_us < st->t_min) st->t_min = s->timestamp_us;
    if (!st->samples || s->timestamp_us > st->t_max) st->t_max = s->timestamp_us;
    st->samples++;
    for (size_t i = 0; i < st->nthreads; i++)
        if (st->threads[i] == s->thread_id) return 0;
    if (st->nthreads < 1024) st->threads[st->nthreads++] = s->thread_id;
    return 0;
}

/* verify's report, on standard output: every damaged range (the one line
 * on standard error sums them up). */
static void report_damage(void *arg, uint64_t off, uint64_t len, int torn) {
    printf("%s: %s at byte %" PRIu64 ", %" PRIu64 " bytes\n", (const char *)arg,
           torn ? "torn tail" : "damaged range", off, len);
}

static int stream_info_verify(int argc, char **argv, bool verify) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc == 2) {
            fputs(stream_usage, stdout);
            return 0;
        }
        cli_error("usage: lumio stream %s FILE", verify ? "verify" : "info");
        return EXIT_USAGE;
    }
    const char *path = argv[1];
    lumio_stream_reader *r;
    if (open_reader(path, &r) < 0) return EXIT_FILES;
    rstate st = {0};
    if (verify) lumio_stream_reader_on_damage(r, report_damage, (void *)path);
    int rc = lumio_stream_read(r, count_sample, NULL, &st);
    lumio_stream_read_stats s;
    lumio_stream_reader_get_stats(r, &s);
    lumio_stream_reader_close(r);
    if (rc < 0) {
        read_error(path, rc, &s);
        return EXIT_FILES;
    }
    struct stat sb;
    uint64_t size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (verify) {
        if (s.damaged_ranges) {
            cli_error("%s: damaged: %" PRIu64 " bytes in %" PRIu64
                      " ranges, the first at byte %" PRIu64,
                      path, s.damaged_bytes, s.damaged_ranges, s.first_damage_offset);
            return EXIT_FILES;
        }
        if (s.torn_tail_bytes) {
            cli_error("%s: torn tail: %" PRIu64 " bytes from byte %" PRIu64
                      " are not a whole chunk",
                      path, s.torn_tail_bytes, s.valid_end);
            return EXIT_FILES;
        }
        printf("%s: ok, %" PRIu64 " chunks, %" PRIu64 " samples\n", path, s.chunks, s.samples);
        return 0;
    }
    printf("chunks:          %" PRIu64 "\n", s.chunks);
    printf("samples:         %" PRIu64 "\n", s.samples);
    printf("records:         %" PRIu64 "\n", s.records);
    printf("threads:         %zu%s\n", st.nthreads, st.nthreads == 1024 ? "+" : "");
    printf("time span:       %.6f s\n", st.samples ? (double)(st.t_max - st.t_min) / 1e6 : 0.0);
    printf("bytes:           %" PRIu64 "\n", size);
    printf("bytes/sample:    %.2f\n", s.samples ? (double)size / (double)s.samples : 0.0);
    printf("compression:     %.2fx (%" PRIu64 " payload bytes from %" PRIu64 ")\n",
           s.stored_bytes ? (double)s.raw_bytes / (double)s.stored_bytes : 1.0, s.stored_bytes,
           s.raw_bytes);
    printf("damaged bytes:   %" PRIu64 " (%" PRIu64 " ranges)\n", s.damaged_bytes,
           s.damaged_ranges);
    printf("torn tail bytes: %" PRIu64 "\n", s.torn_tail_bytes);
    if (fflush(stdout)) return EXIT_FILES;
    damage_note(path, &s);
    return s.damaged_ranges ? EXIT_FILES : 0;
}

/* recover: replay every valid chunk into a new writer. */
typedef struct copier {
    lumio_stream_writer *w;
    int rc;
} copier;

static int copy_sample(void *arg, const lumio_sample *s) {
    copier *c = arg;
    return c->rc = lumio_stream_write_sample(c->w, s);
}

static int copy_meta(void *arg, uint64_t ts, const char *k, const char *v) {
    copier *c = arg;
    return c->rc = lumio_stream_write_meta(c->w, ts, k, v);
}

/* What recover skipped: damage (a chunk that was whole but corrupt, which a
 * killed writer does not leave) is told apart from a torn tail. */
static void recover_note(const lumio_stream_read_stats *s) {
    char dmg[128] = "no damage";
    if (s->damaged_ranges)
        snprintf(dmg, sizeof dmg,
                 "damage: %" PRIu64 " corrupt bytes in %" PRIu64
                 " ranges, the first at byte %" PRIu64,
                 s->damaged_bytes, s->damaged_ranges, s->first_damage_offset);
    fprintf(stderr,
            "recovered %" PRIu64 " samples from %" PRIu64 " chunks; skipped %s, and a torn tail "
            "of %" PRIu64 " bytes\n",
            s->samples, s->chunks, dmg, s->torn_tail_bytes);
}

static int stream_recover(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(stream_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!in)
            in = argv[i];
        else {
            cli_error("unexpected argument '%s'", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!in || !out) {
        cli_error("usage: lumio stream recover FILE -o OUT");
        return EXIT_USAGE;
    }
    lumio_stream_reader *r;
    if (open_reader(in, &r) < 0) return EXIT_FILES;
    copier c = {0};
    outfile of;
    int rc = out_open(&of, out, NULL, &c.w);
    if (rc < 0) {
        lumio_stream_reader_close(r);
        open_error(out, rc);
        out_close(&of, NULL, false);
        return EXIT_FILES;
    }
    rc = lumio_stream_read(r, copy_sample, copy_meta, &c);
    lumio_stream_read_stats s;
    lumio_stream_reader_get_stats(r, &s);
    lumio_stream_reader_close(r);
    if (rc < 0 && c.rc < 0)
        writer_error(out, c.w);
    else if (rc < 0)
        read_error(in, rc, &s);
    if (out_close(&of, c.w, rc == 0) < 0 || rc < 0) return EXIT_FILES;
    recover_note(&s);
    return 0;
}

/* ---- bench ------------------------------------------------------------------------ */

static int null_sample(void *arg, const lumio_sample *s) {
    uint64_t *sum = arg;
    *sum += s->depth + (s->depth ? s->frames[0].line : 0);
    return 0;
}

static int stream_bench(int argc, char **argv) {
    static const struct option lo[] = {{"samples", 1, NULL, 'n'}, {"threads", 1, NULL, 't'},
                                       {"depth", 1, NULL, 'd'},   {"level", 1, NULL, 'l'},
                                       {"help", 0, NULL, 'h'},    {0}};
    synth_opts so = {.seed = 42, .samples = 2000000, .threads = 64, .depth = 40, .level = 3};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(stream_usage, stdout);
            return 0;
        }
        int got = synth_option(c, optarg, &so);
        if (got == 0 || c == 's') return cli_option_error(c, argv);
        if (got < 0 || (c == 'n' && so.samples == 0)) {
            cli_error("invalid --%s '%s'", opt_name(lo, c), optarg);
            return EXIT_USAGE;
        }
    }
    uint64_t n = so.samples, threads = so.threads, depth = so.depth, level = so.level;
    /* The file is unlinked as soon as it exists, so that a bench killed at
     * any moment leaves nothing behind; the writer and reader reach it through
     * /proc, as they would a path, to measure the same code. */
    const char *dir = getenv("TMPDIR");
    char tmpl[4096], path[64];
    snprintf(tmpl, sizeof tmpl, "%s/lumio-stream-bench-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        cli_path_error(tmpl, -errno);
        return EXIT_FILES;
    }
    unlink(tmpl);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    lumio_stream_writer_options o;
    lumio_stream_writer_options_default(&o);
    o.zstd_level = (int)level;
    synth s;
    uint32_t *ids = malloc(NFUNC * sizeof(uint32_t)),
             *stk = malloc(depth * 2 * sizeof(uint32_t) + 64);
    lumio_stream_writer *w = NULL;
    int rc = synth_init(&s, 42, (unsigned)threads, (unsigned)depth);
    if (rc == 0 && (!ids || !stk)) rc = -ENOMEM;
    if (rc == 0) rc = lumio_stream_writer_open(&w, path, &o);
    if (rc == 0) rc = synth_frames(w, ids);
    /* The generator's own cost, measured alone and taken out of the write time. */
    double g0 = now_seconds();
    synth s2;
    if (rc == 0) rc = synth_init(&s2, 42, (unsigned)threads, (unsigned)depth);
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        unsigned t = synth_next(&s2);
        synth_ids(&s2, t, ids, stk);
    }
    double gen_s = now_seconds() - g0;
    if (rc == 0) synth_free(&s2);
    double t0 = now_seconds();
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        unsigned t = synth_next(&s);
        synth_ids(&s, t, ids, stk);
        rc = lumio_stream_write_ids(w, s.ts[t], 1000 + t, 0, stk, s.d[t]);
    }
    if (w) {
        int crc = lumio_stream_writer_close(w);
        if (rc == 0) rc = crc;
    }
    /* The generator was timed on its own: on a loaded machine that time can
     * exceed the whole loop's, and then the loop's time is what we have. */
    double loop_s = now_seconds() - t0, write_s = loop_s - gen_s;
    if (write_s <= 0) write_s = loop_s;
    synth_free(&s);
    free(ids);
    free(stk);
    if (rc < 0) {
        close(fd);
        cli_error("%s (unlinked): %s", tmpl, lumio_strerror(rc));
        return EXIT_FILES;
    }
    struct stat sb;
    fstat(fd, &sb);
    lumio_stream_reader *r;
    uint64_t sum = 0;
    double r0 = now_seconds();
    rc = lumio_stream_reader_open(&r, path);
    if (rc == 0) {
        rc = lumio_stream_read(r, null_sample, NULL, &sum);
        lumio_stream_reader_close(r);
    }
    double read_s = now_seconds() - r0;
    close(fd);
    if (rc < 0) {
        cli_error("%s (unlinked): reading back: %s", tmpl, lumio_strerror(rc));
        return EXIT_FILES;
    }
    json j;
    json_begin(&j, stdout);
    json_u64(&j, "samples", n);
    json_u64(&j, "threads", threads);
    json_u64(&j, "depth", depth);
    json_u64(&j, "zstd_level", level);
    json_u64(&j, "bytes", (uint64_t)sb.st_size);
    json_num(&j, "bytes_per_sample", (double)sb.st_size / (double)n);
    json_num(&j, "write_seconds", write_s);
    json_num(&j, "write_samples_per_s", write_s > 0 ? (double)n / write_s : 0);
    json_num(&j, "read_seconds", read_s);
    json_num(&j, "read_samples_per_s", read_s > 0 ? (double)n / read_s : 0);
    json_num(&j, "generator_seconds", gen_s);
    json_end(&j);
    return sum == 0 && n > 0 ? EXIT_FILES : 0;
}

int cmd_stream(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(stream_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "gen")) return stream_gen(argc - 1, argv + 1);
    if (!strcmp(sub, "export")) return stream_export(argc - 1, argv + 1);
    if (!strcmp(sub, "import")) return stream_import(argc - 1, argv + 1);
    if (!strcmp(sub, "recv")) return stream_recv(argc - 1, argv + 1, stream_usage);
    if (!strcmp(sub, "info")) return stream_info_verify(argc - 1, argv + 1, false);
    if (!strcmp(sub, "verify")) return stream_info_verify(argc - 1, argv + 1, true);
    if (!strcmp(sub, "recover")) return stream_recover(argc - 1, argv + 1);
    if (!strcmp(sub, "bench")) return stream_bench(argc - 1, argv + 1);
    cli_error("unknown stream command '%s' (see 'lumio stream --help')", sub);
    return EXIT_USAGE;
}
