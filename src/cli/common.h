/* Helpers shared by the lumio subcommands: messages, size parsing, a sorted
 * directory walker, JSON output, and writing that survives short writes.
 * Options are in opts.h, the progress line in progress.h. */
#ifndef LUMIO_CLI_COMMON_H
#define LUMIO_CLI_COMMON_H

#include "cli/opts.h"
#include "cli/progress.h"

#include <lumio/ring.h>

/* A scratch buffer for a lumio_*_last_error call inside one expression:
 * cli_error("%s", lumio_ring_last_error(r, ERRBUF)). */
#define ERRBUF (char[LUMIO_ERROR_MAX]){0}, LUMIO_ERROR_MAX

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Exit statuses: 1 when some file failed, 2 for a wrong command line. */
enum { EXIT_FILES = 1, EXIT_USAGE = 2 };

/* Every subcommand: argv[0] is its name. Returns the exit status. */
int cmd_cat(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_stream(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_zarr(int argc, char **argv);
int bench_remote_main(int argc, char **argv); /* bench_remote.c */

/* Remote locations (get.c). Options --concurrency ('C'), --pool ('P'),
 * --part-size ('S') and --timeout ('T'): returns 1 when c was one of them,
 * 0 when not, -1 after a message for a bad value. */
struct lumio_remote;
typedef struct cli_remote_opts {
    uint64_t concurrency, pool, part; /* 0: the default */
    unsigned timeout_ms;              /* 0: the default */
} cli_remote_opts;
int cli_remote_option(int c, const char *arg, cli_remote_opts *o);
/* A client with those options; a message on failure. */
int cli_remote_create(struct lumio_remote **rm, const cli_remote_opts *o);
/* Stream a remote object to fd through the prefetching reader; an exit
 * status, after a message on failure. part: the size above which a note
 * says that the server made lumio read the object as one stream. */
int cli_remote_to_fd(struct lumio_remote *rm, const char *url, int fd, uint64_t part);
/* That note, once per state. */
typedef struct cli_remote_note_state {
    bool said;
} cli_remote_note_state;
void cli_remote_note(cli_remote_note_state *n, struct lumio_remote *rm, const char *url,
                     uint64_t bytes, uint64_t part);

/* The prefix of every message, e.g. "lumio cat". */
void cli_set_name(const char *name);

/* One line on stderr: "lumio CMD: <text>". Flushes stdout first so that the
 * line lands after the output it follows. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line naming a path and an error code (negative errno or lumio code). */
void cli_path_error(const char *path, int code);

/* "256K", "1M", "1G", "4096", "1MiB": a size in bytes (powers of 1024).
 * Returns 0, or -1 if `s` is not a size or is out of range. */
int parse_size(const char *s, uint64_t *out);

/* A decimal count in [min, max]; returns 0 or -1. */
int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Directory walking, in a deterministic order: roots in argument order, and
 * inside each directory the entries sorted by name (bytewise). Directories
 * come twice: before (WALK_DIR) and after (WALK_DIR_POST) their contents. */
typedef enum walk_kind {
    WALK_FILE,
    WALK_DIR,
    WALK_DIR_POST,
    WALK_SYMLINK,
    WALK_OTHER, /* device, fifo, socket */
    WALK_ERROR  /* `err` says what; `path` names it */
} walk_kind;

typedef struct walk_entry {
    walk_kind kind;
    const char *path;      /* as the walk reached it: "root/sub/file" */
    const char *rel;       /* below its root: "" for the root, else "/sub/file" */
    const char *root;      /* the root argument it came from */
    const struct stat *st; /* NULL for WALK_ERROR */
    int err;               /* negative errno, for WALK_ERROR */
    int level;             /* 0 for a root */
} walk_entry;

#define WALK_FOLLOW_ROOTS 0x1 /* a root that is a symlink is followed */

typedef struct walker walker;
int walker_open(walker **out, char *const *roots, int nroots, int flags);
/* The next entry (valid until the next call): 1, or 0 at the end. */
int walker_next(walker *w, walk_entry *e);
/* Do not descend into the directory just returned as WALK_DIR. */
void walker_skip(walker *w);
void walker_close(walker *w);

/* A flat JSON object, written field by field. */
typedef struct json {
    FILE *f;
    int fields;
} json;

void json_begin(json *j, FILE *f);
void json_str(json *j, const char *key, const char *val);
void json_u64(json *j, const char *key, uint64_t val);
void json_num(json *j, const char *key, double val);
void json_bool(json *j, const char *key, bool val);
void json_end(json *j);
/* A JSON string, quoted and escaped. */
void json_write_string(FILE *f, const char *s);

/* Write all of buf to fd, across short writes and EINTR. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/* splitmix64: the next pseudo-random number of a seeded sequence (the
 * benchmarks' offsets, the synthetic profiles). */
uint64_t cli_splitmix(uint64_t *state);

/* ---- resources -------------------------------------------------------------
 * Descriptors: main raises the soft limit on open files to the hard one, and
 * each command keeps the files its rings open below what is left. */
void cli_raise_fd_limit(void);
/* Descriptors free now under the soft limit, less `reserve` (each ring's own,
 * standard streams, sockets, directories being walked); 0 if none. */
uint64_t cli_fds_free(unsigned reserve);
/* The open-file cap of each of `rings` rings: a fair share of what is free
 * (after a reserve for the rings themselves), at least 1, at most `want`. */
unsigned cli_ring_open_files(unsigned rings, unsigned want);

/* Where a regular file given as standard input ("-") is to be read from:
 * its current offset, as cat reads it; -1 when stdin is not a regular file
 * (a pipe, a terminal: read from where it is anyway). */
off_t cli_stdin_offset(void);

/* A size as the options take it: "256M" when exact, else bytes. */
const char *cli_size_text(uint64_t v, char *buf, size_t len);

/* The real error behind a root symlink that the walk could not follow: a
 * loop (ELOOP), a missing target (ENOENT), a directory without search
 * permission (EACCES) on the way. */
int cli_link_error(const char *path);

/* CLOCK_MONOTONIC in seconds. */
double now_seconds(void);

/* "io_uring" -> "uring", for output that matches the --backend names. */
const char *backend_name(lumio_backend b);

#endif
