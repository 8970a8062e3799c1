/* Where a command writes its output (-o PATH), so that a failure or a kill
 * never leaves something that looks complete and never replaces what it
 * should not:
 *   - "-", /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N (or a link
 *     to one of them): the descriptor itself, written in place (a shell's
 *     `>> log` keeps its append and what the file held);
 *   - a device, a FIFO, a socket: opened and written in place;
 *   - a regular file, or a name not there yet: a new file beside it under a
 *     random name nobody can have planted (O_EXCL), with the mode of the file
 *     it replaces (else 0666 less the umask), renamed over it when complete,
 *     removed on failure and on SIGINT, SIGTERM and SIGHUP. A symbolic link
 *     is followed to its target, as curl and cp do: the link stays. */
#ifndef LUMIO_CLI_OUTPUT_H
#define LUMIO_CLI_OUTPUT_H

#include <stdbool.h>

typedef struct cli_output {
    const char *name; /* as the user gave it, for messages */
    char *target;     /* regular files: the final name (links followed) */
    char *tmp;        /* and the temporary one */
    int fd;           /* where to write */
    bool own_fd;      /* closed by cli_output_close */
} cli_output;

/* 0, or a negative errno (nothing is made; the caller names o->name). */
int cli_output_open(cli_output *o, const char *name);
/* Whether the output is a regular file written through a temporary name
 * (then o->target is its final name). */
bool cli_output_is_file(const cli_output *o);
/* Finish with the command's exit status: 0 renames the temporary file into
 * place, anything else removes it. Returns status, or EXIT_FILES (said in
 * one line) when closing or renaming failed. */
int cli_output_close(cli_output *o, int status);

#endif
