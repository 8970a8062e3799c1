/* Zarr arrays made and written by lumio, checked against a reference copy in
 * memory: random region writes (partly covered chunks are merged), reads of
 * random regions, fill values for chunks never written, both formats, both
 * orders, several codecs; a writer killed at random instants leaves every
 * chunk whole; bad options and bad metadata are named. */
#include "tests/testutil.h"

#include <errno.h>
#include <lumio/zarr.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct shape_case {
    unsigned ndim;
    uint64_t shape[4], chunks[4];
} shape_case;

static const shape_case shapes[] = {
    {1, {1000}, {64}},
    {2, {37, 53}, {8, 16}},
    {3, {20, 13, 9}, {7, 5, 4}},
    {4, {5, 6, 7, 3}, {2, 4, 3, 3}},
};

/* Offsets of a region inside a C-ordered array. */
static uint64_t elems(const uint64_t *shape, unsigned nd) {
    uint64_t n = 1;
    for (unsigned d = 0; d < nd; d++) n *= shape[d];
    return n;
}

/* Copy a region between a full C-ordered array and a packed region buffer. */
static void region_copy(uint8_t *full, const uint64_t *ashape, unsigned nd, const uint64_t *start,
                        const uint64_t *shape, uint8_t *packed, unsigned isz, bool into_full) {
    uint64_t n = elems(shape, nd);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t rem = i, off = 0, stride = 1;
        uint64_t idx[4];
        for (unsigned d = nd; d-- > 0;) {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        for (unsigned d = nd; d-- > 0;) {
            off += (start[d] + idx[d]) * stride;
            stride *= ashape[d];
        }
        if (into_full)
            memcpy(full + off * isz, packed + i * isz, isz);
        else
            memcpy(packed + i * isz, full + off * isz, isz);
    }
}

static void random_region(uint64_t *seed, const shape_case *s, uint64_t *start, uint64_t *shape) {
    for (unsigned d = 0; d < s->ndim; d++) {
        uint64_t a = rnd(seed) % s->shape[d];
        uint64_t b = a + 1 + rnd(seed) % (s->shape[d] - a);
        start[d] = a;
        shape[d] = b - a;
    }
}

/* The decoded-chunk cache of the arrays exercise() makes (0: none). */
static uint64_t exercise_cache;

static void exercise(int format, const char *dtype, unsigned isz, const char *codec, int forder,
                     const char *fill, uint8_t fill_byte, int checksum) {
    static int n;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape_case *s = &shapes[si];
        char name[64];
        snprintf(name, sizeof name, "z%d.zarr", n++);
        lumio_zarr_create_options o;
        o = (lumio_zarr_create_options){0};
        o.format = format;
        o.ndim = s->ndim;
        memcpy(o.shape, s->shape, sizeof s->shape);
        memcpy(o.chunks, s->chunks, sizeof s->chunks);
        o.dtype = dtype;
        o.codec = codec;
        o.fortran_order = forder;
        o.fill_value = fill;
        o.checksum = checksum;
        lumio_zarr *z;
        lumio_zarr_options zo;
        zo = (lumio_zarr_options){0};
        zo.cache_bytes = exercise_cache;
        int rc = lumio_zarr_create(&z, tmp_path(name), &o, &zo);
        if (rc < 0) fprintf(stderr, "  create: %s\n", lumio_zarr_last_error(NULL, ERRBUF));
        CHECK_RC(rc);
        uint64_t total = elems(s->shape, s->ndim);
        uint8_t *ref = malloc(total * isz);
        memset(ref, fill_byte, total * isz);
        uint8_t *buf = malloc(total * isz), *back = malloc(total * isz);
        uint64_t seed = 77 + si, start[4], shape[4];
        /* Never written: all fill. */
        uint64_t zero[4] = {0};
        CHECK_RC(lumio_zarr_read(z, zero, s->shape, back));
        CHECK(memcmp(back, ref, total * isz) == 0);
        for (int w = 0; w < 12; w++) {
            random_region(&seed, s, start, shape);
            uint64_t m = elems(shape, s->ndim);
            for (uint64_t i = 0; i < m * isz; i++) buf[i] = (uint8_t)rnd(&seed);
            if (isz == 1 && !strcmp(dtype, "|b1"))
                for (uint64_t i = 0; i < m; i++) buf[i] &= 1;
            rc = lumio_zarr_write(z, start, shape, buf);
            if (rc < 0) fprintf(stderr, "  write: %s\n", lumio_zarr_last_error(z, ERRBUF));
            CHECK_RC(rc);
            region_copy(ref, s->shape, s->ndim, start, shape, buf, isz, true);
            random_region(&seed, s, start, shape);
            CHECK_RC(lumio_zarr_read(z, start, shape, back));
            uint64_t k = elems(shape, s->ndim);
            region_copy(ref, s->shape, s->ndim, start, shape, buf, isz, false);
            if (memcmp(back, buf, k * isz) != 0)
                FAIL("%s: format %d %s %s order %c: region read after write %d differs", name,
                     format, dtype, codec, forder ? 'F' : 'C', w);
        }
        /* Reopened from disk, the whole array. */
        lumio_zarr_close(z);
        CHECK_RC(lumio_zarr_open(&z, tmp_path(name), NULL));
        CHECK_RC(lumio_zarr_read(z, zero, s->shape, back));
        CHECK(memcmp(back, ref, total * isz) == 0);
        lumio_zarr_close(z);
        free(ref);
        free(buf);
        free(back);
    }
}

TEST(v2_roundtrips) {
    exercise(2, "<u2", 2, "zstd:1", 0, "0", 0, 0);
}

TEST(v2_codecs_orders) {
    exercise(2, ">i8", 8, "blosc:lz4:5:shuffle", 1, "0", 0, 0);
    exercise(2, "|u1", 1, "gzip:6", 0, "255", 0xff, 0);
    exercise(2, "<f4", 4, "zlib:1", 1, "0", 0, 0);
    exercise(2, "|b1", 1, "none", 0, "false", 0, 0);
    exercise(2, ">i4", 4, "delta,zstd:1", 1, "-1", 0xff, 0);
}

TEST(v3_codecs_orders) {
    exercise(3, "<i4", 4, "zstd:3", 0, "0", 0, 1);
    exercise(3, ">u2", 2, "blosc:zstd:1:bitshuffle", 1, "65535", 0xff, 0);
    exercise(3, "<f8", 8, "gzip:1", 1, "0", 0, 1);
    exercise(3, "|i1", 1, "none", 0, "-1", 0xff, 0);
}

/* With a decoded-chunk cache on the same handle: writes must replace what
 * it holds. A budget of about two chunks evicts all the time; a large one
 * keeps everything. */
TEST(cache_sees_writes) {
    uint64_t budgets[] = {600, 1 << 20};
    for (int i = 0; i < 2; i++) {
        exercise_cache = budgets[i];
        exercise(2, "<u2", 2, "zstd:1", 0, "0", 0, 0);
        exercise(3, "<i4", 4, "zstd:3", 1, "0", 0, 1);
    }
    exercise_cache = 0;
}

/* Chunks of several zstd blocks (128 KiB each), read in random regions:
 * reads that end inside a chunk stop decoding early and must still be
 * exact; a chunk with its last block damaged fails a whole read, naming
 * the chunk. */
TEST(partial_decodes) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 2;
    uint64_t shp[2] = {700, 1000}, chk[2] = {256, 1000};
    memcpy(o.shape, shp, sizeof shp);
    memcpy(o.chunks, chk, sizeof chk);
    o.dtype = "<u2";
    o.codec = "zstd:1";
    lumio_zarr *z;
    const char *path = tmp_path("partial.zarr");
    CHECK_RC(lumio_zarr_create(&z, path, &o, NULL));
    uint64_t total = shp[0] * shp[1], seed = 11;
    uint16_t *ref = malloc(total * 2), *back = malloc(total * 2), *want = malloc(total * 2);
    for (uint64_t i = 0; i < total; i++) ref[i] = (uint16_t)(i / 7 + rnd(&seed) % 5);
    uint64_t zero[2] = {0};
    CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
    for (int r = 0; r < 60; r++) {
        uint64_t start[2], shape[2];
        for (int d = 0; d < 2; d++) {
            start[d] = rnd(&seed) % shp[d];
            shape[d] = 1 + rnd(&seed) % (shp[d] - start[d]);
        }
        CHECK_RC(lumio_zarr_read(z, start, shape, back));
        region_copy((uint8_t *)ref, shp, 2, start, shape, (uint8_t *)want, 2, false);
        CHECK(memcmp(back, want, shape[0] * shape[1] * 2) == 0);
    }
    /* Damage the last bytes of chunk 1.0: a read of its first rows still
     * decodes them exactly; the whole chunk is an error naming it. */
    char key[512];
    snprintf(key, sizeof key, "%s/1.0", path);
    FILE *f = fopen(key, "r+b");
    CHECK(f != NULL);
    fseek(f, -40, SEEK_END);
    for (int i = 0; i < 32; i++) fputc(0xA5, f);
    fclose(f);
    uint64_t s1[2] = {256, 0}, n1[2] = {4, 1000};
    CHECK_RC(lumio_zarr_read(z, s1, n1, back));
    region_copy((uint8_t *)ref, shp, 2, s1, n1, (uint8_t *)want, 2, false);
    CHECK(memcmp(back, want, 4 * 1000 * 2) == 0);
    uint64_t n2[2] = {256, 1000};
    CHECK_EQ(lumio_zarr_read(z, s1, n2, back), LUMIO_E_CODEC);
    CHECK(strstr(lumio_zarr_last_error(z, ERRBUF), "1.0") != NULL);
    lumio_zarr_close(z);
    free(ref);
    free(back);
    free(want);
}

/* Hand-written v3 metadata: float fill values as IEEE 754 bits in hex
 * (missing chunks read as exactly those bits), and a storage transformer,
 * which cannot be read right without knowing it, refused by name. */
static int write_text(const char *dir, const char *text) {
    mkdir(dir, 0755);
    char path[1024];
    snprintf(path, sizeof path, "%s/zarr.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(v3_hex_fills_and_transformers) {
    static const char *const meta =
        "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[6],\"data_type\":\"%s\","
        "\"chunk_grid\":{\"name\":\"regular\",\"configuration\":{\"chunk_shape\":[4]}},"
        "\"chunk_key_encoding\":{\"name\":\"default\"},\"fill_value\":%s,"
        "\"codecs\":[{\"name\":\"bytes\",\"configuration\":{\"endian\":\"little\"}}]%s}";
    char text[1024];
    const char *dir = tmp_path("hexfill.zarr");
    snprintf(text, sizeof text, meta, "float32", "\"0x7fc00001\"", "");
    CHECK(write_text(dir, text) == 0);
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_open(&z, dir, NULL));
    uint64_t start[1] = {0}, shape[1] = {6};
    uint32_t f[6];
    CHECK_RC(lumio_zarr_read(z, start, shape, f));
    for (int i = 0; i < 6; i++) CHECK_EQ(f[i], 0x7fc00001u); /* this NaN, not any NaN */
    lumio_zarr_close(z);
    const char *dir2 = tmp_path("hexfill8.zarr");
    snprintf(text, sizeof text, meta, "float64", "\"0x3ff8000000000000\"", "");
    CHECK(write_text(dir2, text) == 0);
    CHECK_RC(lumio_zarr_open(&z, dir2, NULL));
    double d[6];
    CHECK_RC(lumio_zarr_read(z, start, shape, d));
    for (int i = 0; i < 6; i++) CHECK(d[i] == 1.5);
    lumio_zarr_close(z);
    /* Too few digits for the type: malformed, named. */
    snprintf(text, sizeof text, meta, "float64", "\"0x7fc00000\"", "");
    CHECK(write_text(dir2, text) == 0);
    CHECK(lumio_zarr_open(&z, dir2, NULL) < 0);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "fill_value") != NULL);
    snprintf(text, sizeof text, meta, "float32", "0",
             ",\"storage_transformers\":[{\"name\":\"chunk-manifest-json\"}]");
    CHECK(write_text(dir, text) == 0);
    CHECK_EQ(lumio_zarr_open(&z, dir, NULL), LUMIO_E_UNSUPPORTED);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "chunk-manifest-json") != NULL);
    snprintf(text, sizeof text, meta, "float32", "0", ",\"storage_transformers\":[]");
    CHECK(write_text(dir, text) == 0);
    CHECK_RC(lumio_zarr_open(&z, dir, NULL));
    lumio_zarr_close(z);
}

TEST(fill_value_bytes) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 1;
    o.shape[0] = 10;
    o.chunks[0] = 4;
    o.dtype = ">u2";
    o.fill_value = "258";
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("fill.zarr"), &o, NULL));
    uint8_t b[20];
    uint64_t s = 0, n = 10;
    CHECK_RC(lumio_zarr_read(z, &s, &n, b));
    CHECK(b[0] == 1 && b[1] == 2 && b[18] == 1 && b[19] == 2);
    lumio_zarr_close(z);
}

TEST(bad_options_named) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 1;
    o.shape[0] = 10;
    o.chunks[0] = 4;
    lumio_zarr *z;
    o.dtype = "<c8";
    CHECK(lumio_zarr_create(&z, tmp_path("b1.zarr"), &o, NULL) < 0);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "<c8") != NULL);
    o.dtype = "uint8";
    o.codec = "lzma";
    CHECK(lumio_zarr_create(&z, tmp_path("b2.zarr"), &o, NULL) < 0);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "lzma") != NULL);
    o.codec = "zlib";
    o.format = 3;
    CHECK_EQ(lumio_zarr_create(&z, tmp_path("b3.zarr"), &o, NULL), LUMIO_E_UNSUPPORTED);
    o.codec = "delta,zstd";
    CHECK_EQ(lumio_zarr_create(&z, tmp_path("b3.zarr"), &o, NULL), LUMIO_E_UNSUPPORTED);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "delta is a Zarr v2 filter") != NULL);
    o.format = 2;
    o.codec = "zstd";
    o.fill_value = "300";
    CHECK(lumio_zarr_create(&z, tmp_path("b4.zarr"), &o, NULL) < 0);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "300") != NULL);
    o.fill_value = "0";
    CHECK_RC(lumio_zarr_create(&z, tmp_path("b5.zarr"), &o, NULL));
    lumio_zarr_close(z);
    CHECK_EQ(lumio_zarr_create(&z, tmp_path("b5.zarr"), &o, NULL), -EEXIST);
    /* Bad metadata: not JSON, a wrong field. */
    mkdir(tmp_path("m1.zarr"), 0755);
    FILE *f = fopen(tmp_path("m1.zarr/.zarray"), "w");
    fputs("{\"zarr_format\": 2, \"shape\": [10], \"chunks\": [0], \"dtype\": \"<u2\","
          " \"order\": \"C\", \"compressor\": null, \"fill_value\": 0}",
          f);
    fclose(f);
    CHECK_EQ(lumio_zarr_open(&z, tmp_path("m1.zarr"), NULL), LUMIO_E_FORMAT);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), "chunks[0]") != NULL);
    f = fopen(tmp_path("m1.zarr/.zarray"), "w");
    fputs("{\"zarr_format\": 2, \"shape\": [10", f);
    fclose(f);
    CHECK_EQ(lumio_zarr_open(&z, tmp_path("m1.zarr"), NULL), LUMIO_E_FORMAT);
    CHECK(strstr(lumio_zarr_last_error(NULL, ERRBUF), ".zarray") != NULL);
}

/* A writer SIGKILLed at random instants: every chunk on disk decodes, and
 * holds either the old value or the new one, never a mix. */
TEST(killed_writer_leaves_whole_chunks) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 2;
    o.shape[0] = 256;
    o.shape[1] = 256;
    o.chunks[0] = 32;
    o.chunks[1] = 32;
    o.dtype = "<u4";
    o.codec = "zstd:1";
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("kill.zarr"), &o, NULL));
    lumio_zarr_close(z);
    uint64_t seed = 5;
    for (int round = 1; round <= 10; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            lumio_zarr *cz;
            if (lumio_zarr_open(&cz, tmp_path("kill.zarr"), NULL) < 0) _exit(1);
            uint32_t *v = malloc(256 * 256 * 4);
            uint64_t s[2] = {0, 0}, n[2] = {256, 256};
            for (uint32_t gen = (uint32_t)round * 1000;; gen++) {
                for (int i = 0; i < 256 * 256; i++) v[i] = gen;
                lumio_zarr_write(cz, s, n, v);
            }
        }
        usleep((useconds_t)(20000 + rnd(&seed) % 60000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        CHECK_RC(lumio_zarr_open(&z, tmp_path("kill.zarr"), NULL));
        uint32_t *v = malloc(256 * 256 * 4);
        uint64_t s[2] = {0, 0}, n[2] = {256, 256};
        int rc = lumio_zarr_read(z, s, n, v);
        if (rc < 0) fprintf(stderr, "  round %d: %s\n", round, lumio_zarr_last_error(z, ERRBUF));
        CHECK_EQ(rc, 0);
        /* Each 32x32 chunk holds one generation throughout. */
        for (int cy = 0; rc == 0 && cy < 8; cy++)
            for (int cx = 0; cx < 8; cx++) {
                uint32_t g = v[(cy * 32) * 256 + cx * 32];
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                        if (v[(cy * 32 + y) * 256 + cx * 32 + x] != g) {
                            CHECK(!"a chunk mixes two writes");
                            y = x = 32;
                        }
            }
        free(v);
        lumio_zarr_close(z);
    }
}

/* Ordered series along an axis: every slab in order, equal to the region
 * of the reference, with read-ahead of several slabs. */
TEST(series_in_order) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 3;
    uint64_t shp[3] = {50, 30, 20}, chk[3] = {8, 7, 6};
    memcpy(o.shape, shp, sizeof shp);
    memcpy(o.chunks, chk, sizeof chk);
    o.dtype = "<i4";
    o.codec = "blosc:lz4:5:shuffle";
    lumio_zarr *z;
    for (int sharded = 0; sharded < 2; sharded++) {
        if (sharded) {
            o.format = 3;
            uint64_t sh[3] = {16, 14, 12};
            memcpy(o.shard, sh, sizeof sh);
        }
        CHECK_RC(
            lumio_zarr_create(&z, tmp_path(sharded ? "series3.zarr" : "series.zarr"), &o, NULL));
        uint64_t total = 50 * 30 * 20;
        int32_t *ref = malloc(total * 4);
        for (uint64_t i = 0; i < total; i++) ref[i] = (int32_t)(i * 7 + 3);
        uint64_t zero[3] = {0};
        CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
        for (unsigned axis = 0; axis < 3; axis++) {
            uint64_t step = axis == 1 ? 4 : 0; /* 0: the chunk size along it */
            uint64_t rs[3] = {2, 3, 1}, rn[3] = {45, 25, 17};
            lumio_zarr_series *s;
            CHECK_RC(lumio_zarr_series_open(&s, z, axis, step, rs, rn, 3));
            lumio_zarr_info zi;
            lumio_zarr_get_info(z, &zi); /* a sharded array: slabs of inner chunks */
            uint64_t eff = step                    ? step
                           : zi.inner_chunks[axis] ? zi.inner_chunks[axis]
                                                   : zi.chunks[axis],
                     at = 0, want_index = 0, idx;
            const void *data;
            int64_t n;
            int32_t *expect = malloc(total * 4);
            while ((n = lumio_zarr_series_next(s, &data, &idx)) > 0) {
                CHECK_EQ(idx, want_index);
                want_index++;
                uint64_t st[3], sh[3];
                memcpy(st, rs, sizeof st);
                memcpy(sh, rn, sizeof sh);
                st[axis] = rs[axis] + at;
                sh[axis] = eff < rn[axis] - at ? eff : rn[axis] - at;
                region_copy((uint8_t *)ref, shp, 3, st, sh, (uint8_t *)expect, 4, false);
                CHECK_EQ(n, (int64_t)(sh[0] * sh[1] * sh[2] * 4));
                CHECK(memcmp(data, expect, (size_t)n) == 0);
                at += sh[axis];
            }
            CHECK_EQ(n, 0);
            CHECK_EQ(at, rn[axis]);
            free(expect);
            lumio_zarr_series_close(s);
        }
        lumio_zarr_series *s;
        CHECK_EQ(lumio_zarr_series_open(&s, z, 3, 0, NULL, NULL, 0), -EINVAL);
        free(ref);
        lumio_zarr_close(z);
    }
}

/* Many crops at once: each equal to the reference's region. */
TEST(read_batch_crops) {
    for (int pass = 0; pass < 6; pass++) {
        int sharded = pass & 1;
        /* no cache; about four chunks' worth (evicting); all of it */
        uint64_t cache = (uint64_t[]){0, 1000, 1 << 20}[pass / 2];
        lumio_zarr_create_options o;
        o = (lumio_zarr_create_options){0};
        o.format = sharded ? 3 : 2;
        o.ndim = 3;
        uint64_t shp[3] = {40, 33, 27}, chk[3] = {8, 6, 5}, shard[3] = {16, 12, 10};
        memcpy(o.shape, shp, sizeof shp);
        memcpy(o.chunks, chk, sizeof chk);
        if (sharded) memcpy(o.shard, shard, sizeof shard);
        o.dtype = "<u2";
        lumio_zarr *z;
        lumio_zarr_options zo;
        zo = (lumio_zarr_options){0};
        zo.cache_bytes = cache;
        char name[64];
        snprintf(name, sizeof name, "batch%d.zarr", pass);
        CHECK_RC(lumio_zarr_create(&z, tmp_path(name), &o, &zo));
        uint64_t total = 40 * 33 * 27;
        uint16_t *ref = malloc(total * 2);
        for (uint64_t i = 0; i < total; i++) ref[i] = (uint16_t)(i * 31 + 7);
        uint64_t zero[3] = {0};
        CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
        enum { N = 40 };
        uint64_t crop[3] = {9, 7, 11}, starts[N * 3], seed = 3;
        void *bufs[N];
        uint8_t *mem = malloc(N * 9 * 7 * 11 * 2), *want = malloc(9 * 7 * 11 * 2);
        for (int i = 0; i < N; i++) {
            bufs[i] = mem + (size_t)i * 9 * 7 * 11 * 2;
            for (int d = 0; d < 3; d++) starts[i * 3 + d] = rnd(&seed) % (shp[d] - crop[d] + 1);
        }
        /* Twice (the second time from the cache, if any), then again after
         * a write through the same handle changed every element. */
        for (int round = 0; round < 3; round++) {
            if (round == 2) {
                for (uint64_t i = 0; i < total; i++) ref[i] = (uint16_t)(i * 17 + 1);
                CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
            }
            CHECK_RC(lumio_zarr_read_batch(z, N, starts, crop, bufs));
            for (int i = 0; i < N; i++) {
                region_copy((uint8_t *)ref, shp, 3, &starts[i * 3], crop, want, 2, false);
                CHECK(memcmp(bufs[i], want, 9 * 7 * 11 * 2) == 0);
            }
        }
        lumio_zarr_stats st;
        lumio_zarr_get_stats(z, &st);
        if (cache == 0) CHECK(st.cache_hits == 0 && st.cache_misses == 0);
        if (cache > 1000) CHECK(st.cache_hits > st.cache_misses); /* rounds 2 of 3 hit */
        CHECK(st.cache_bytes <= cache);
        /* A crop outside the array: an error, named. */
        starts[0] = 39;
        CHECK_EQ(lumio_zarr_read_batch(z, 1, starts, crop, bufs), LUMIO_E_RANGE);
        free(mem);
        free(want);
        free(ref);
        lumio_zarr_close(z);
    }
}

/* A write through the handle while a series reads ahead on it: slabs
 * already in flight may hold the old data, but nothing read before the
 * write may stay in the cache, and no slab may mix a new shard with its
 * old index. */
TEST(write_beside_a_series) {
    for (int round = 0; round < 8; round++) {
        lumio_zarr_create_options o;
        o = (lumio_zarr_create_options){0};
        o.ndim = 2;
        uint64_t shp[2] = {512, 512}, chk[2] = {64, 512};
        memcpy(o.shape, shp, sizeof shp);
        memcpy(o.chunks, chk, sizeof chk);
        o.dtype = "<u4";
        o.codec = round % 2 ? "gzip:9" : "zstd:3";
        lumio_zarr_options zo;
        zo = (lumio_zarr_options){0};
        zo.cache_bytes = 64 << 20;
        char name[64];
        snprintf(name, sizeof name, "ws%d.zarr", round);
        lumio_zarr *z;
        CHECK_RC(lumio_zarr_create(&z, tmp_path(name), &o, &zo));
        uint32_t *a = malloc(512 * 512 * 4), *b = malloc(512 * 512 * 4),
                 *back = malloc(512 * 512 * 4);
        for (uint32_t i = 0; i < 512 * 512; i++) a[i] = i * 2654435761u, b[i] = ~a[i];
        uint64_t zero[2] = {0};
        CHECK_RC(lumio_zarr_write(z, zero, shp, a));
        lumio_zarr_series *s;
        CHECK_RC(lumio_zarr_series_open(&s, z, 0, 0, NULL, NULL, 4));
        const void *d;
        CHECK(lumio_zarr_series_next(s, &d, NULL) > 0); /* slabs 1..4 in flight */
        CHECK_RC(lumio_zarr_write(z, zero, shp, b));
        lumio_zarr_series_close(s);
        CHECK_RC(lumio_zarr_read(z, zero, shp, back));
        CHECK(memcmp(back, b, 512 * 512 * 4) == 0);
        lumio_zarr_close(z);
        free(a);
        free(b);
        free(back);
    }
    /* Sharded: the first inner chunk becomes all fill, so every offset in
     * the shard's index moves. */
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.format = 3;
    o.ndim = 2;
    uint64_t shp[2] = {64, 8}, chk[2] = {8, 8}, shd[2] = {64, 8};
    memcpy(o.shape, shp, sizeof shp);
    memcpy(o.chunks, chk, sizeof chk);
    memcpy(o.shard, shd, sizeof shd);
    o.dtype = "<u4";
    o.codec = "none";
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("wsshard.zarr"), &o, NULL));
    uint32_t a[64 * 8], b[64 * 8];
    for (int i = 0; i < 64 * 8; i++)
        a[i] = 1000 + (uint32_t)i, b[i] = i < 64 ? 0 : 50000u + (uint32_t)i;
    uint64_t zero[2] = {0};
    CHECK_RC(lumio_zarr_write(z, zero, shp, a));
    lumio_zarr_series *s;
    CHECK_RC(lumio_zarr_series_open(&s, z, 0, 0, NULL, NULL, 1));
    const void *d;
    uint64_t idx;
    int64_t n = lumio_zarr_series_next(s, &d, &idx);
    CHECK_EQ(n, 64 * 4);
    CHECK_RC(lumio_zarr_write(z, zero, shp, b));
    /* Slab 1 was in flight: old, new, or (its index read before the write,
     * its inner chunks after) an error saying the shard was replaced. */
    while ((n = lumio_zarr_series_next(s, &d, &idx)) > 0) {
        bool old = memcmp(d, a + idx * 64, (size_t)n) == 0,
             fresh = memcmp(d, b + idx * 64, (size_t)n) == 0;
        if (!old && !fresh)
            fprintf(stderr, "  slab %llu is neither old nor new\n", (unsigned long long)idx);
        CHECK(old || fresh);
        if (idx >= 2) CHECK(fresh); /* submitted after the write */
    }
    if (n < 0) {
        CHECK_EQ(n, LUMIO_E_CHANGED);
        CHECK(strstr(lumio_zarr_last_error(z, ERRBUF), "replaced") != NULL);
    }
    CHECK(n <= 0);
    lumio_zarr_series_close(s);
    lumio_zarr_close(z);
}

/* A read while a series is open on the same array (and ring): each keeps
 * its own completions. */
TEST(read_beside_series) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 2;
    uint64_t shp[2] = {256, 256}, chk[2] = {32, 32};
    memcpy(o.shape, shp, sizeof shp);
    memcpy(o.chunks, chk, sizeof chk);
    o.dtype = "<u4";
    lumio_zarr_options zo;
    zo = (lumio_zarr_options){0};
    zo.max_chunks_in_flight = 4;
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("beside.zarr"), &o, &zo));
    uint32_t *ref = malloc(256 * 256 * 4), *back = malloc(256 * 256 * 4);
    for (uint32_t i = 0; i < 256 * 256; i++) ref[i] = i * 2654435761u;
    uint64_t zero[2] = {0};
    CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
    lumio_zarr_series *s;
    CHECK_RC(lumio_zarr_series_open(&s, z, 0, 0, NULL, NULL, 4));
    const void *data;
    CHECK(lumio_zarr_series_next(s, &data, NULL) > 0);
    for (int k = 0; k < 5; k++) {
        memset(back, 0, 256 * 256 * 4);
        CHECK_RC(lumio_zarr_read(z, zero, shp, back));
        CHECK(memcmp(back, ref, 256 * 256 * 4) == 0);
    }
    int64_t n;
    uint64_t rows = 1;
    while ((n = lumio_zarr_series_next(s, &data, NULL)) > 0) {
        CHECK(memcmp(data, ref + rows * 32 * 256, (size_t)n) == 0);
        rows++;
    }
    CHECK_EQ(rows, 8);
    lumio_zarr_series_close(s);
    /* The other format's metadata in the same place: refused. */
    lumio_zarr *z2;
    o.format = 3;
    CHECK_EQ(lumio_zarr_create(&z2, tmp_path("beside.zarr"), &o, NULL), -EEXIST);
    /* Rechunking an array with an empty dimension: just the metadata. */
    o.format = 2;
    o.shape[0] = 0;
    CHECK_RC(lumio_zarr_create(&z2, tmp_path("empty.zarr"), &o, NULL));
    lumio_zarr_close(z2);
    lumio_zarr_create_options r;
    r = (lumio_zarr_create_options){0};
    r.ndim = 2;
    r.chunks[0] = r.chunks[1] = 3;
    r.fill_value = NULL;
    CHECK_RC(lumio_zarr_rechunk(tmp_path("empty.zarr"), tmp_path("empty2.zarr"), &r, NULL, 64 << 20,
                                NULL, NULL));
    free(ref);
    free(back);
    lumio_zarr_close(z);
}

/* Regions of 32 MiB and more are copied into place with streaming stores
 * where a run's bytes and address allow, and with memcpy elsewhere: the
 * bytes must be the same either way, aligned or not, whole or cut. */
TEST(large_regions_stream) {
    lumio_zarr_create_options o;
    o = (lumio_zarr_create_options){0};
    o.ndim = 2;
    uint64_t shp[2] = {4100, 4100}, chk[2] = {256, 256};
    memcpy(o.shape, shp, sizeof shp);
    memcpy(o.chunks, chk, sizeof chk);
    o.dtype = "<u2";
    o.codec = "none";
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, tmp_path("large.zarr"), &o, NULL));
    size_t total = 4100 * 4100;
    uint16_t *ref = malloc(total * 2);
    uint8_t *mem = malloc(total * 2 + 64), *want = malloc(total * 2);
    for (size_t i = 0; i < total; i++) ref[i] = (uint16_t)(i * 40503u >> 3);
    uint64_t zero[2] = {0};
    CHECK_RC(lumio_zarr_write(z, zero, shp, ref));
    /* The whole array (runs of 512 bytes, and 8 at the edge); rows 1.. and
     * columns 3.. (runs of 506 bytes); each at an aligned and an odd address. */
    uint64_t cases[2][4] = {{0, 0, 4100, 4100}, {1, 3, 4099, 4097}};
    for (int c = 0; c < 2; c++)
        for (int odd = 0; odd < 2; odd++) {
            uint64_t *k = cases[c];
            uint8_t *buf = (uint8_t *)(((uintptr_t)mem + 15) & ~(uintptr_t)15) + odd * 2;
            memset(buf, 0xEE, k[2] * k[3] * 2);
            CHECK_RC(lumio_zarr_read(z, k, k + 2, buf));
            region_copy((uint8_t *)ref, shp, 2, k, k + 2, want, 2, false);
            CHECK(memcmp(buf, want, k[2] * k[3] * 2) == 0);
        }
    free(ref);
    free(mem);
    free(want);
    lumio_zarr_close(z);
}

/* A ring shared with the caller, who holds every pool buffer: a read cannot
 * go on and says so (LUMIO_E_STALLED), and gives its groups up: none is
 * left in the ring to be decoded into a region that is gone once the
 * caller's buffers come back (ASan would see that). */
TEST(stalled_shared_ring) {
    /* With files to spare, and with the one open file held by the caller's
     * op (the read's ops then wait to be opened). */
    for (int files = 0; files < 2; files++) {
        lumio_ring_options ro;
        ro = (lumio_ring_options){0};
        ro.max_buffers = 2;
        ro.coalesce_gap = -1; /* one buffer per range the caller holds */
        if (files) ro.max_open_files = 1;
        lumio_ring *ring;
        CHECK_RC(lumio_ring_create(&ring, &ro));
        lumio_zarr_create_options o;
        o = (lumio_zarr_create_options){0};
        o.ndim = 1;
        o.shape[0] = 4096;
        o.chunks[0] = 256;
        o.dtype = "<u4";
        lumio_zarr_options zo;
        zo = (lumio_zarr_options){0};
        zo.ring = ring;
        lumio_zarr *z;
        char name[32];
        snprintf(name, sizeof name, "stall%d.zarr", files);
        CHECK_RC(lumio_zarr_create(&z, tmp_path(name), &o, &zo));
        uint32_t *ref = malloc(4096 * 4), *back = malloc(4096 * 4);
        for (uint32_t i = 0; i < 4096; i++) ref[i] = i * 7;
        uint64_t zero[1] = {0}, all[1] = {4096};
        CHECK_RC(lumio_zarr_write(z, zero, all, ref));
        /* The caller's own reads, their buffers kept. */
        free(make_file(tmp_path("stall.bin"), 1 << 16, 3));
        lumio_op op = {.kind = LUMIO_OP_GET, .path = tmp_path("stall.bin"), .block_size = 4096};
        uint64_t g;
        CHECK_RC(lumio_ring_submit(ring, &op, 1, NULL, &g));
        lumio_completion held[2], c[16];
        int have = hold_completions(ring, g, held, 2);
        CHECK_EQ(have, 2);
        CHECK_EQ(lumio_zarr_read(z, zero, all, back), LUMIO_E_STALLED);
        CHECK(strstr(lumio_zarr_last_error(z, ERRBUF), "stalled") != NULL);
        CHECK_EQ(lumio_ring_pending_groups(ring), 1); /* the caller's alone */
        for (int i = 0; i < have; i++) lumio_buffer_release(held[i].buffer);
        int n;
        while ((n = lumio_ring_wait(ring, LUMIO_ANY_GROUP, c, 16, 1)) > 0)
            for (int i = 0; i < n; i++) {
                CHECK_EQ(c[i].group, g);
                lumio_buffer_release(c[i].buffer);
            }
        CHECK_EQ(lumio_ring_pending_groups(ring), 0);
        /* With the buffers back, the same read works. */
        CHECK_RC(lumio_zarr_read(z, zero, all, back));
        CHECK(memcmp(back, ref, 4096 * 4) == 0);
        lumio_zarr_close(z);
        lumio_ring_close(ring);
        free(ref);
        free(back);
    }
}

int main(void) {
    return run_tests("zarr");
}
