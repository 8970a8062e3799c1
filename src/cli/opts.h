/* Command lines as every subcommand reads them: getopt_long() with lumio's
 * own messages, one line each and worded the same everywhere:
 *
 *   lumio hash: unknown option '--bogus' (see --help)
 *   lumio get: option '--timeout' needs a value
 *   lumio zarr bench: --count: '0' is not a number of at least 1
 *   lumio cat: missing PATH (see 'lumio cat --help')
 *
 * all with exit status EXIT_USAGE. A subcommand's loop:
 *
 *   static const struct option lo[] = {{"block", required_argument, NULL, 'b'},
 *                                      CLI_OPT_END};
 *   while ((c = cli_getopt(argc, argv, ":h", lo)) != -1) {
 *       if (c != 'b') return cli_option_default(c, argv, usage);
 *       if (cli_opt_size("--block", optarg, 1, 1 << 30, &block) < 0) return EXIT_USAGE;
 *   } */
#ifndef LUMIO_CLI_OPTS_H
#define LUMIO_CLI_OPTS_H

#include <getopt.h>
#include <stdint.h>

/* clang-format off */
/* The tail of every long-option table: --help, then the end. */
#define CLI_OPT_END {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}
/* --timeout, which every command that reads URLs takes (cli_remote_option). */
#define CLI_OPT_TIMEOUT {"timeout", required_argument, NULL, 'T'}
/* All of the remote client's options (get, bench remote). */
#define CLI_OPT_REMOTE {"concurrency", required_argument, NULL, 'C'}, \
                       {"pool", required_argument, NULL, 'P'},        \
                       {"part-size", required_argument, NULL, 'S'},   \
                       CLI_OPT_TIMEOUT
/* clang-format on */

/* getopt_long() with getopt's own messages off: shortopts starts with ':',
 * so that a missing value (':') is told from an unknown option ('?'). */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* What a subcommand does with any option it has no case for: 'h' prints
 * usage on standard output (exit status 0); '?' and ':' are said in one
 * line (EXIT_USAGE). Returns the exit status. */
int cli_option_default(int c, char **argv, const char *usage);
/* Only the '?' and ':' part; returns EXIT_USAGE. */
int cli_option_error(int c, char **argv);

/* "OPT: 'VALUE' is not WANT" in one line; returns EXIT_USAGE. */
int cli_bad_value(const char *opt, const char *val, const char *want);

/* Values, each said with cli_bad_value when wrong: 0, or -1 after the line.
 * A decimal number in [min, max]; a size ("256K", "1M", "4096") in
 * [min, max]; one of a NULL-terminated list of choices (returns its index). */
int cli_opt_count(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out);
int cli_opt_size(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out);
int cli_opt_choice(const char *opt, const char *arg, const char *const *choices);

/* --memory SIZE: a size of at least min. */
int cli_parse_memory(const char *arg, uint64_t min, uint64_t *out);

/* A command line that lacks something or has too much: the text and where
 * help is, "(see 'lumio zarr --help')", in one line; returns EXIT_USAGE. */
int cli_usage_error(const char *help, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
