/* lumio stream: its subcommands, one file each (stream.c dispatches), and
 * what they share (stream_common.c): the words for sinks and sources that
 * do not open, streams that do not read, damage; outputs that are whole or
 * absent; flush policies. */
#ifndef LUMIO_CLI_STREAM_CLI_H
#define LUMIO_CLI_STREAM_CLI_H

#include "cli/output.h"

#include <lumio/stream.h>

#include <stdbool.h>

extern const char stream_usage[];

/* What a subcommand's parser returns to say "go on" (else an exit status). */
enum { STREAM_RUN = -1 };

/* Each takes argv[0] as its own name; returns the exit status. */
int stream_gen(int argc, char **argv);
int stream_import(int argc, char **argv);
int stream_export(int argc, char **argv);
int stream_info(int argc, char **argv);
int stream_verify(int argc, char **argv);
int stream_recover(int argc, char **argv);
int stream_recv(int argc, char **argv);
int stream_bench(int argc, char **argv);
int stream_serve(int argc, char **argv); /* stream_serve.c */

/* tcp:HOST:PORT, tcp-listen:[HOST:]PORT, ws://, wss://, ws-listen:[HOST:]PORT. */
bool stream_is_tcp(const char *s);
/* A sink or source that did not open: TCP ones say what the network said
 * (refused, unknown host, invalid port). */
void stream_open_error(const char *what, int rc);
/* lumio_stream_reader_open, and the message when it fails. */
int stream_open_reader(const char *path, lumio_stream_reader **r,
                       const lumio_stream_reader_options *o);
/* A stream that could not be read at all. */
void stream_read_error(const char *path, int rc, const lumio_stream_reader_stats *s);
/* Where damage was skipped, as one line; nothing when there was none. */
void stream_damage_note(const char *path, const lumio_stream_reader_stats *s);
/* The writer's last failure, naming OUT (a temporary file's writer knows
 * only its descriptor). */
void stream_writer_error(const char *out, const lumio_stream_writer *w);

/* An output that is whole or absent (cli/output.h): a regular file is
 * written under a temporary name beside it and renamed over it at the end,
 * removed on failure or SIGINT, SIGTERM, SIGHUP; devices, FIFOs and
 * descriptors (/dev/stdout) are written in place, as are standard output,
 * TCP sinks and appends, which the writer opens itself. */
typedef struct outfile {
    cli_output co;
    bool used; /* co is open */
} outfile;

int stream_out_open(outfile *of, const char *out, const lumio_stream_writer_options *o,
                    lumio_stream_writer **w);
/* SIGUSR1 seals w's current chunk at once (lumio_stream_writer_dump; w
 * opened with dump_thread), until stream_dump_on_signal(NULL), which
 * stream_out_close calls first. */
void stream_dump_on_signal(lumio_stream_writer *w);
/* Close the writer; on success put the file in place (synced first), on
 * failure remove it. Returns the first error (a message names the path). */
int stream_out_close(outfile *of, lumio_stream_writer *w, bool ok);

/* The command line of info and verify: --help, or one FILE into *path.
 * STREAM_RUN, or the exit status. */
int stream_one_file(int argc, char **argv, const char *what, const char **path);
/* Every valid sample of the stream at path through fn (damage, if on_damage,
 * through it): 0 and the reader's stats, or -1 after a message. */
int stream_read_all(const char *path, lumio_sample_fn fn, void *arg, lumio_damage_fn on_damage,
                    lumio_stream_reader_stats *s);

/* --ca-file FILE ('C') and --insecure-tls ('K'), for wss:// sinks: 1 when c
 * is one of them (set in o), else 0. */
int stream_tls_option(int c, const char *arg, lumio_stream_writer_options *o);
#define STREAM_TLS_OPTIONS                                                                         \
    {"ca-file", 1, NULL, 'C'}, {                                                                   \
        "insecure-tls", 0, NULL, 'K'                                                               \
    }

/* --flush samples=N,bytes=SIZE,seconds=S into o: 0, or -1 after a message. */
int stream_flush_option(const char *arg, lumio_stream_writer_options *o);

#endif
