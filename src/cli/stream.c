/* lumio stream: write, read, check and measure lumio streams (docs/FORMAT.md).
 * This file only dispatches; each subcommand lives in its own file:
 *
 *   gen      stream_gen.c      a deterministic synthetic profile (stream_synth.c)
 *   import   stream_import.c   other profilers' output (perf, austin, speedscope, tachyon) into a
 * stream export   stream_export.c   samples into a viewer's format (the library's exporters) info
 * stream_info.c     chunks, samples, threads, time span, compression verify   stream_verify.c exit
 * non-zero, saying where, on any damage recover  stream_recover.c  every valid chunk into a clean
 * stream recv     stream_recv.c     streams from TCP senders into one file bench    stream_bench.c
 * write and read speed, bytes per sample serve    stream_serve.c    a live flame graph over HTTP
 * (stream_serve.h) */
#include "cli/common.h"
#include "cli/stream_cli.h"

#include <string.h>

const char stream_usage[] =
    "usage: lumio stream COMMAND [OPTION]... \n"
    "\n"
    "Commands:\n"
    "  gen --seed S --samples N --threads T [--depth D] [--flush POLICY] [--fsync]\n"
    "      [--level L] [--rate SAMPLES_PER_S] [--to collapsed] -o SINK\n"
    "                     write a deterministic synthetic profile; after each sealed\n"
    "                     chunk print 'sealed chunks=C samples=S' on stderr;\n"
    "                     SIGUSR1 seals the current chunk at once (as import does)\n"
    "  import --from collapsed|perf-script|austin|speedscope|tachyon [--flush POLICY]\n"
    "      [--level L] [--append] FILE|- -o SINK\n"
    "                     another profiler's output into a stream, its metadata as\n"
    "                     records (tachyon: CPython's binary format v1)\n"
    "  export --to FORMAT [--follow [--idle SECONDS]] FILE|- [-o OUT]\n"
    "                     samples in a viewer's format (--to help lists them):\n"
    "                     collapsed (folded stacks) and jsonl (an object per sample and\n"
    "                     record) go out as decoded; speedscope, gecko (Firefox\n"
    "                     Profiler), pprof (gzipped), tachyon (CPython's binary\n"
    "                     format) when the stream ends;\n"
    "                     --follow reads a file as it grows (until SECONDS idle), from\n"
    "                     its beginning again when it is truncated or replaced;\n"
    "                     -o OUT: a file written whole or not at all (default: stdout)\n"
    "  info FILE          chunks, samples, threads, time span, compression ratio\n"
    "  verify FILE        exit 1, saying where, on any damage\n"
    "  recover FILE -o OUT\n"
    "                     write every valid chunk's samples to a clean stream\n"
    "  recv tcp-listen:[HOST:]PORT|ws-listen:[HOST:]PORT -o FILE [--once] [--memory SIZE]\n"
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
    "  serve [--listen [HOST:]PORT] [--max-samples N] FILE|-|tcp:HOST:PORT\n"
    "                     a live flame graph on http://127.0.0.1:PORT/ (a free port\n"
    "                     unless given; 'serving URL' is printed on stderr): the\n"
    "                     page, /api/flamegraph?thread=TID&from=US&to=US&min=N,\n"
    "                     /api/timeline?thread=&from=&to=&bins=N, /api/summary;\n"
    "                     a FILE is followed as it grows; the newest N samples are\n"
    "                     kept (default 4194304); stops on SIGINT or SIGTERM\n"
    "\n"
    "POLICY: interval:DURATION (ms, s, m, h), samples:N, bytes:SIZE, joined by commas\n"
    "        (only those named seal; default samples:65536); samples=N,seconds=S too.\n"
    "SINK: a file path, - (standard output), tcp:HOST:PORT (or tcp-connect:HOST:PORT),\n"
    "tcp-listen:[HOST:]PORT, ws://HOST[:PORT]/PATH or wss://... (gen and import take\n"
    "--ca-file FILE and --insecure-tls for wss)\n"
    "(HOST defaults to 127.0.0.1; PORT from 1 to 65535).\n"
    "FILE: a file path, - (standard input), tcp:HOST:PORT (a tcp-listen writer), or\n"
    "tcp-listen:[HOST:]PORT, ws-listen:[HOST:]PORT (wait for a writer to connect).\n"
    "\n"
    "Exit status: 0; 1 when a file or connection failed, or (export, info, verify)\n"
    "when damage was skipped in the middle of a stream (a torn tail alone, left by\n"
    "a killed writer, is noted on stderr and exits 0, except for verify); 2 for a\n"
    "wrong command line. import and recover write a regular file under a temporary\n"
    "name and rename it at the end: a failed run leaves no output.\n";

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"gen", stream_gen},         {"export", stream_export}, {"import", stream_import},
    {"recv", stream_recv},       {"info", stream_info},     {"verify", stream_verify},
    {"recover", stream_recover}, {"bench", stream_bench},   {"serve", stream_serve},
};

int cmd_stream(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(stream_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error("lumio stream", "unknown stream command '%s'", argv[1]);
}
