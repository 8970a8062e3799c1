/* CPython's sampling-profiler binary format ("tachyon", version 1), as
 * InternalDocs/profiling_binary_format.md in CPython describes it: the
 * constants shared by the importer (import_tachyon.c) and the exporter
 * (export_tachyon.c). Internal: not installed.
 *
 *   header (64) | sample records (zstd or raw) | string table | frame table
 *   | [profile statistics] | footer (32)
 *
 * Fixed-width fields are in the writer's byte order (the magic tells which);
 * varints are LEB128, signed ones zigzag first. */
#ifndef LUMIO_STREAM_TACHYON_H
#define LUMIO_STREAM_TACHYON_H

#define TACH_MAGIC   0x54414348u /* "TACH" read in the writer's order */
#define TACH_VERSION 1u
#define TACH_HEADER  64u
#define TACH_FOOTER  32u
/* Both CPython's writer and reader keep at most this many frames. */
#define TACH_MAX_DEPTH 256u
/* lumio's bound on the strings and on the frames of a table (CPython writes
 * one per distinct name and frame): their index costs memory per entry. */
#define TACH_MAX_TABLE (1u << 24)
/* lumio's bound on a file's threads (each keeps its last stack while
 * reading): the exporter writes no more than the importer reads. */
#define TACH_MAX_THREADS (1u << 16)
/* Each sample record starts with thread id (8), interpreter id (4), encoding (1). */
#define TACH_RECORD_HEAD 13u

/* Header offsets. */
enum {
    TACH_OFF_VERSION = 4,
    TACH_OFF_PYVER = 8, /* major, minor, micro, reserved */
    TACH_OFF_START = 12,
    TACH_OFF_INTERVAL = 20,
    TACH_OFF_SAMPLES = 28, /* u64 */
    TACH_OFF_THREADS = 36,
    TACH_OFF_STRTAB = 40,
    TACH_OFF_FRAMETAB = 48,
    TACH_OFF_COMPRESSION = 56,
    TACH_OFF_CONFIG = 60, /* profiling mode + 1 (0: unknown), feature bits */
};

enum { TACH_REPEAT = 0, TACH_FULL = 1, TACH_SUFFIX = 2, TACH_POP_PUSH = 3 };
enum { TACH_RAW = 0, TACH_ZSTD = 1 };
#define TACH_OPCODE_NONE 255u
#define TACH_ZSTD_LEVEL  5 /* CPython's */

#endif
