/* lumio zarr: its subcommands, one file each (zarr.c dispatches), and what
 * they share (zarr_common.c): --timeout and the client for URLs, the
 * memory a read takes, arrays opened for reading within a memory cap,
 * lists of sizes, and the layout options of create and rechunk. */
#ifndef LUMIO_CLI_ZARR_CLI_H
#define LUMIO_CLI_ZARR_CLI_H

#include "cli/common.h"

#include <lumio/remote.h>
#include <lumio/zarr.h>

extern const char zarr_usage[];

/* Each takes argv[0] as its own name; returns the exit status. */
int zarr_info(int argc, char **argv);
int zarr_cat(int argc, char **argv);
int zarr_create(int argc, char **argv);
int zarr_rechunk(int argc, char **argv);
int zarr_bench(int argc, char **argv);

#define ZARR_MAX(a, b)   ((a) > (b) ? (a) : (b))
#define ZARR_MEMORY      (512ull << 20) /* default --memory */
#define ZARR_MEMORY_MIN  (32ull << 20)
#define ZARR_BASE_MEMORY (16ull << 20) /* the program, its libraries, stacks and arenas */

/* --timeout ('T'), the option every subcommand takes: 1 when c was it, 0
 * when not, -1 after a message for a bad value. */
int zarr_timeout_option(int c, const char *arg, cli_remote_opts *ro);
/* The client URLs go through (with --timeout), made only when one of the n
 * locations is a URL: *rm stays NULL for directories. 0, or an exit status
 * after a message. */
int zarr_client(const char *const *locs, int n, const cli_remote_opts *ro, lumio_remote **rm);
/* The one array operand of info, cat and bench: 0, or EXIT_USAGE after a
 * message. */
int zarr_one_array(int argc);

/* Saturating arithmetic for sizes that only need to be compared to a cap. */
uint64_t zarr_sat_mul(uint64_t a, uint64_t b);
uint64_t zarr_sat_add(uint64_t a, uint64_t b);
/* The decoded bytes of one chunk (an inner chunk of a sharded array), the
 * unit the workers decode. */
uint64_t zarr_chunk_bytes(const lumio_zarr_info *in);
/* The chunk grid reads go by: the inner chunks of a sharded array. */
const uint64_t *zarr_read_grid(const lumio_zarr_info *in);
/* The bytes of a region of that shape (saturated). */
uint64_t zarr_region_bytes(const lumio_zarr_info *in, const uint64_t *shape);
/* What writing a slab of slab_bytes into an array takes: the slab, and on
 * each encoder a chunk (a shard) and its encoded bytes. */
uint64_t zarr_write_memory(const lumio_zarr_info *in, uint64_t slab_bytes);
/* "LOC: WHAT of BYTES bytes need --memory of at least NEED" */
void zarr_say_memory(const char *loc, const char *what, uint64_t bytes, uint64_t need);

/* An array open for reading within a memory cap: its reads go through a
 * ring whose pool fits the cap; spare is what the cap leaves for the
 * caller's own buffers. */
typedef struct zarr_reader {
    lumio_zarr *z;
    lumio_ring *ring;
    lumio_zarr_info in;
    uint64_t spare;
} zarr_reader;

/* 0, or an exit status after a message (a cap that does not even hold the
 * decoding, and cache bytes of decoded chunks, is EXIT_USAGE). */
int zarr_reader_open(zarr_reader *r, const char *loc, uint64_t memory, uint64_t cache,
                     lumio_remote *rm);
void zarr_reader_close(zarr_reader *r);

/* A decimal index at *p, digits only (no sign, no blanks): 0, or -1. */
int zarr_parse_index(const char **p, uint64_t *v);
/* "100,200" into out (at most LUMIO_ZARR_MAX_DIMS) and *n: 0, or -1 after a
 * message naming opt. */
int zarr_parse_list(const char *opt, const char *s, uint64_t *out, unsigned *n);

/* The options create and rechunk share: --chunks ('c'), --codec ('k'),
 * --format ('f'), --order ('O'), --shard ('H'), --checksum ('x'). Returns 1
 * when c was one of them, 0 when not, -1 after a message for a bad value. */
int zarr_layout_option(int c, const char *arg, lumio_zarr_create_options *o, const char **chunks,
                       const char **shard);

#endif
