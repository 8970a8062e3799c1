/* Zarr arrays from metadata someone else wrote (issue 11): every field's
 * JSON type checked and named, sizes that do not fit refused at open or at
 * the read, keys that cannot leave the array, huge virtual arrays of missing
 * chunks read as their fill value, and groups whose consolidated metadata
 * lies. */
#include "src/zarr/zarr.h"
#include "tests/testutil.h"

#include <errno.h>
#include <lumio/zarr.h>
#include <sys/stat.h>
#include <unistd.h>

static void put_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A fresh directory dir with one metadata file. */
static const char *array_dir(const char *dir, const char *name, const char *text) {
    char cmd[600];
    const char *d = tmp_path(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) return d;
    mkdir(d, 0700);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", d, name);
    put_text(p, text);
    return d;
}

/* Opening fails with the error "DIR/NAME: want", whole (docs/ZARR.md:
 * "PATH/.zarray: FIELD: what is wrong"). */
static void refused(const char *name, const char *text, const char *want) {
    const char *d = array_dir("h", name, text);
    lumio_zarr *z = NULL;
    int rc = lumio_zarr_open(&z, d, NULL);
    if (rc >= 0) FAIL("%s: opened", text);
    char whole[1200];
    snprintf(whole, sizeof whole, "%s/%s: %s", d, name, want);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), whole);
    lumio_zarr_close(z);
}

#define V2(extra)                                                                                  \
    "{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"|u1\",\"order\":\"C\"" extra "}"
#define V3(extra, codecs)                                                                          \
    "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[4],\"data_type\":\"uint8\","            \
    "\"chunk_grid\":{\"name\":\"regular\",\"configuration\":{\"chunk_shape\":[2]}}," extra         \
    "\"codecs\":" codecs "}"
#define BYTES "[{\"name\":\"bytes\"}]"

TEST(errors_name_the_field) {
    refused(".zarray", "[1,2,3]", "not a JSON object (the document is a list)");
    refused(".zarray", "", "empty (no JSON object)");
    refused(".zarray", "{\"zarr_format\":2,",
            "not JSON (line 1, column 17: 'string or '}' expected near end of file')");
    refused(".zarray", "{\"zarr_format\":\"2\",\"shape\":[4]}",
            "zarr_format: must be the number 2, not a string");
    refused(".zarray", V2(",\"dimension_separator\":1"),
            "dimension_separator: must be a string, not an integer");
    refused(".zarray", V2(",\"compressor\":{\"id\":\"zstd\",\"level\":\"x\"}"),
            "compressor.level: must be an integer from -131072 to 22, not a string");
    refused(".zarray", V2(",\"compressor\":{\"id\":\"zstd\",\"level\":4294967299}"),
            "compressor.level: must be an integer from -131072 to 22, not that");
    refused(".zarray", V2(",\"compressor\":\"zstd\""),
            "compressor: must be an object, not a string");
    refused(".zarray", V2(",\"compressor\":{\"id\":\"blosc\",\"cname\":\"lz4\",\"shuffle\":\"1\"}"),
            "blosc.shuffle: must be an integer from -1 to 2, not a string");
    refused(".zarray",
            V2(",\"compressor\":{\"id\":\"blosc\",\"cname\":\"lz4\",\"shuffle\":8589934593}"),
            "blosc.shuffle: must be an integer from -1 to 2, not that");
    refused(".zarray", V2(",\"filters\":[7]"), "filters[0]: must be an object, not an integer");
    refused(".zarray", V2(",\"filters\":{}"), "filters: must be a list or null, not an object");
    refused(".zarray",
            "{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":7,\"order\":\"C\"}",
            "dtype: must be a string, not an integer");
    refused(".zarray",
            "{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"|u1\",\"order\":1}",
            "order: must be a string, not an integer");
    refused(".zarray", "{\"zarr_format\":2,\"shape\":4,\"chunks\":[2],\"dtype\":\"|u1\"}",
            "shape: must be a list of at most 32 integers, not an integer");
    refused("zarr.json", V3("", "[]"), "codecs: empty (an array needs at least the bytes codec)");
    refused("zarr.json", V3("", "{}"), "codecs: must be a list of codecs, not an object");
    refused("zarr.json", V3("", "[7]"), "codecs[0]: must be an object, not an integer");
    refused("zarr.json", V3("", "[{\"name\":3}]"),
            "codecs[0].name: must be a string, not an integer");
    refused("zarr.json",
            "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[4],\"data_type\":7,"
            "\"chunk_grid\":{\"name\":\"regular\",\"configuration\":{\"chunk_shape\":[2]}},"
            "\"codecs\":" BYTES "}",
            "data_type: must be a string, not an integer");
    refused(
        "zarr.json",
        V3("", "[{\"name\":\"bytes\"},{\"name\":\"zstd\",\"configuration\":{\"level\":\"x\"}}]"),
        "zstd.level: must be an integer from -131072 to 22, not a string");
    refused("zarr.json", V3("", "[{\"name\":\"bytes\",\"configuration\":[]}]"),
            "codecs[0].configuration: must be an object, not a list");
    refused("zarr.json", "{\"zarr_format\":3,\"node_type\":7}",
            "node_type: must be a string, not an integer");
    refused("zarr.json", "{\"zarr_format\":\"3\"}",
            "zarr_format: must be the number 3, not a string");
    /* What reaches the message from the document is quoted and escaped. */
    refused(".zarray", V2(",\"dimension_separator\":\"\\u001b[2J\\n\""),
            "dimension_separator: '\\x1b[2J\\x0a' is not \".\" or \"/\"");
}

/* A separator or key encoding from metadata never makes a key that leaves
 * the array: anything but "." and "/" is refused at open. */
TEST(keys_stay_inside_the_array) {
    const char *seps[] = {"/..", "..", "../", "\\\\", "", "//", "/./", "%2F", ".."};
    /* As the message shows them: quoted, escaped. */
    const char *shown[] = {"/..", "..", "../", "\\x5c", "", "//", "/./", "%2F", ".."};
    for (size_t i = 0; i < sizeof seps / sizeof *seps; i++) {
        char text[600], want[200];
        snprintf(text, sizeof text, V2(",\"dimension_separator\":\"%s\""), seps[i]);
        snprintf(want, sizeof want, "dimension_separator: '%s' is not \".\" or \"/\"", shown[i]);
        refused(".zarray", text, want);
        snprintf(want, sizeof want, "chunk_key_encoding: separator '%s' is not \".\" or \"/\"",
                 shown[i]);
        snprintf(text, sizeof text,
                 V3("\"chunk_key_encoding\":{\"name\":\"default\",\"configuration\":{"
                    "\"separator\":\"%s\"}},",
                    BYTES),
                 seps[i]);
        refused("zarr.json", text, want);
        snprintf(text, sizeof text,
                 V3("\"chunk_key_encoding\":{\"name\":\"v2\",\"configuration\":{"
                    "\"separator\":\"%s\"}},",
                    BYTES),
                 seps[i]);
        refused("zarr.json", text, want);
    }
    refused("zarr.json", V3("\"chunk_key_encoding\":{\"name\":\"../../x\"},", BYTES),
            "chunk_key_encoding: unsupported '../../x'");
    refused("zarr.json",
            V3("\"chunk_key_encoding\":{\"name\":\"default\",\"configuration\":{\"separator\":7}},",
               BYTES),
            "chunk_key_encoding.configuration.separator: must be a string, not an integer");
    /* Every key an accepted array makes: digits, its separator and "c". */
    const char *ok[] = {V2(""), V2(",\"dimension_separator\":\"/\""),
                        V2(",\"dimension_separator\":null")};
    for (size_t i = 0; i < 3; i++) {
        const char *d = array_dir("k", ".zarray", ok[i]);
        lumio_zarr *z;
        CHECK_RC(lumio_zarr_open(&z, d, NULL));
        uint64_t cc[1] = {1};
        char key[64];
        lumio__zarr_chunk_key(z, cc, key, sizeof key);
        CHECK(!strcmp(key, "1"));
        lumio_zarr_close(z);
    }
}

/* Sizes: a chunk or a shard index too large for memory is refused at open
 * naming the field; an array larger than 2^64 bytes opens (its chunks are
 * missing: the fill value), and a region too large for memory is refused at
 * the read. */
TEST(sizes_are_checked) {
    refused(
        ".zarray",
        "{\"zarr_format\":2,\"shape\":[4294967296,4294967296],\"chunks\":[4294967296,"
        "4294967296],\"dtype\":\"|u1\",\"order\":\"C\"}",
        "chunks: a chunk of 2^64 bytes (1-byte elements) is more than the 1 TiB a chunk may take");
    refused(".zarray",
            "{\"zarr_format\":2,\"shape\":[1],\"chunks\":[2199023255553],\"dtype\":\"<f8\","
            "\"order\":\"C\"}",
            "chunks: a chunk of 17592186044424 bytes (8-byte elements) is more than the 1 TiB a "
            "chunk may take");
    refused(
        "zarr.json",
        "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[65536,65536],\"data_type\":"
        "\"uint8\",\"chunk_grid\":{\"name\":\"regular\",\"configuration\":{\"chunk_shape\":"
        "[65536,65536]}},\"codecs\":[{\"name\":\"sharding_indexed\",\"configuration\":{"
        "\"chunk_shape\":[1,1],\"codecs\":" BYTES "}}]}",
        "sharding_indexed.chunk_shape: more than 2^22 inner chunks in a shard (an index of more "
        "than 64 MiB)");

    /* Issue 11's array: 2^64 one-byte elements. */
    const char *d = array_dir("big", ".zarray",
                              "{\"zarr_format\":2,\"shape\":[1,4294967296,4294967296],\"chunks\":"
                              "[1,1,4294967296],\"dtype\":\"|u1\",\"order\":\"C\","
                              "\"fill_value\":5}");
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_open(&z, d, NULL));
    lumio_zarr_info in;
    lumio_zarr_get_info(z, &in);
    CHECK(in.nchunks == 4294967296ull);
    uint64_t start[3] = {0, 4294967295ull, 4294967290ull}, shape[3] = {1, 1, 6};
    uint8_t buf[6] = {0};
    CHECK_RC(lumio_zarr_read(z, start, shape, buf));
    for (int i = 0; i < 6; i++) CHECK(buf[i] == 5);
    /* The whole array as one region: its size does not fit in 64 bits. */
    uint64_t zero[3] = {0}, all[3] = {1, 4294967296ull, 4294967296ull};
    CHECK_EQ(lumio_zarr_read(z, zero, all, buf), LUMIO_E_RANGE);
    char want[1200];
    snprintf(want, sizeof want,
             "%s: a region of more than 2^63 bytes (3 dimensions of 1-byte elements) cannot be "
             "read into memory; read it in parts",
             d);
    CHECK_STREQ(lumio_zarr_last_error(z, ERRBUF), want);
    lumio_zarr_close(z);

    /* 2^128 elements of 2^124 chunks, none stored: a region anywhere is the
     * fill value at once. A cache, keyed by chunk number, is refused. */
    const char *big = "{\"zarr_format\":2,\"shape\":[4611686018427387904,4611686018427387904,16],"
                      "\"chunks\":[1,1,16],\"dtype\":\"<u2\",\"order\":\"C\",\"fill_value\":7}";
    d = array_dir("huge", ".zarray", big);
    CHECK_RC(lumio_zarr_open(&z, d, NULL));
    lumio_zarr_get_info(z, &in);
    CHECK(in.nchunks == UINT64_MAX); /* saturated: more than 2^64 */
    CHECK(z->m.grid_big);
    uint64_t s2[3] = {4611686018427387903ull, 4611686018427387902ull, 0}, n2[3] = {1, 2, 16};
    uint16_t b2[32];
    memset(b2, 0, sizeof b2);
    CHECK_RC(lumio_zarr_read(z, s2, n2, b2));
    for (int i = 0; i < 32; i++) CHECK(b2[i] == 7);
    lumio_zarr_close(z);
    lumio_zarr_options o;
    o = (lumio_zarr_options){0};
    o.cache_bytes = 1 << 20;
    CHECK(lumio_zarr_open(&z, d, &o) == LUMIO_E_UNSUPPORTED);
    snprintf(want, sizeof want,
             "%s: a grid of more than 2^64 chunks cannot be cached (open it without a cache)", d);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), want);

    /* The same as a sharded v3 array: the indexes of missing shards too. */
    d = array_dir("hugeshard", "zarr.json",
                  "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[4611686018427387904,"
                  "4611686018427387904,16],\"data_type\":\"uint16\",\"chunk_grid\":{\"name\":"
                  "\"regular\",\"configuration\":{\"chunk_shape\":[64,64,16]}},\"fill_value\":7,"
                  "\"codecs\":[{\"name\":\"sharding_indexed\",\"configuration\":{\"chunk_shape\":"
                  "[1,1,16],\"codecs\":[{\"name\":\"bytes\",\"configuration\":{\"endian\":"
                  "\"little\"}}]}}]}");
    CHECK_RC(lumio_zarr_open(&z, d, NULL));
    memset(b2, 0, sizeof b2);
    CHECK_RC(lumio_zarr_read(z, s2, n2, b2));
    for (int i = 0; i < 32; i++) CHECK(b2[i] == 7);
    lumio_zarr_close(z);
}

/* A shard of 2^20 inner chunks (a 16 MiB index), all missing but one: a
 * read plans only the inner chunks its region touches, and few such shards
 * at a time. */
TEST(large_shards) {
    const char *d = array_dir(
        "bigshard", "zarr.json",
        "{\"zarr_format\":3,\"node_type\":\"array\",\"shape\":[1024,2048],\"data_type\":"
        "\"uint8\",\"chunk_grid\":{\"name\":\"regular\",\"configuration\":{\"chunk_shape\":"
        "[1024,1024]}},\"fill_value\":9,\"codecs\":[{\"name\":\"sharding_indexed\","
        "\"configuration\":{\"chunk_shape\":[1,1],\"codecs\":" BYTES "}}]}");
    enum { N = 1 << 20 };
    uint64_t *index = malloc(16 * (size_t)N);
    if (!index) return;
    memset(index, 0xff, 16 * (size_t)N);
    index[2 * (5 * 1024 + 7)] = 0; /* inner chunk (5, 7): the shard's first byte */
    index[2 * (5 * 1024 + 7) + 1] = 1;
    char p[600];
    snprintf(p, sizeof p, "%s/c", d);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/c/0", d);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/c/0/0", d);
    FILE *f = fopen(p, "w");
    CHECK(f && fputc(42, f) == 42 && fwrite(index, 16, N, f) == N);
    if (f) fclose(f);
    free(index);
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_open(&z, d, NULL));
    uint64_t start[2] = {4, 6}, shape[2] = {3, 3};
    uint8_t buf[9];
    CHECK_RC(lumio_zarr_read(z, start, shape, buf));
    for (int i = 0; i < 9; i++) CHECK(buf[i] == (i == 4 ? 42 : 9));
    /* Across both shards (the second is missing). */
    uint64_t s2[2] = {5, 1022}, n2[2] = {1, 4};
    CHECK_RC(lumio_zarr_read(z, s2, n2, buf));
    for (int i = 0; i < 4; i++) CHECK(buf[i] == 9);
    /* A batch of crops through the same path. */
    uint64_t starts[4] = {5, 7, 1000, 2000}, one[2] = {1, 1};
    uint8_t a = 0, b = 0;
    void *bufs[2] = {&a, &b};
    CHECK_RC(lumio_zarr_read_batch(z, 2, starts, one, bufs));
    CHECK(a == 42 && b == 9);
    lumio_zarr_close(z);
}

/* Review of the open path under UBSan: an empty metadata file is an error,
 * not a NULL passed to memcpy. */
TEST(empty_metadata) {
    refused(".zarray", "", "empty (no JSON object)");
    refused("zarr.json", "", "empty (no JSON object)");
    refused(".zarray", "  \n", "empty (no JSON object)");
}

/* A group whose consolidated metadata names paths outside it, or with
 * control characters: those are not listed (and counted); the walk of a
 * local group does not follow links out of it. */
TEST(hostile_groups) {
    const char *d = array_dir("g", ".zgroup", "{\"zarr_format\":2}");
    char p[600];
    snprintf(p, sizeof p, "%s/.zmetadata", d);
    put_text(p, "{\"zarr_format\":1,\"metadata\":{\"ok/.zarray\":{},\"../../etc/.zarray\":{},"
                "\"/abs/.zarray\":{},\"a//b/.zarray\":{},\"\\u001b[2J/.zarray\":{},"
                "\"./x/.zarray\":{},\"big\":18446744073709551615}}");
    lumio_zarr *z;
    CHECK(lumio_zarr_open(&z, d, NULL) == -ENOENT);
    /* As docs/ZARR.md shows a group's error, with the names left out counted. */
    char want[1200];
    snprintf(want, sizeof want,
             "%s: a Zarr v2 group, not an array; its arrays: ok (5 names in its consolidated "
             "metadata are not paths inside the group)",
             d);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), want);

    /* v3, inline consolidated metadata. */
    d = array_dir("g3", "zarr.json",
                  "{\"zarr_format\":3,\"node_type\":\"group\",\"consolidated_metadata\":{"
                  "\"metadata\":{\"a\":{\"node_type\":\"array\"},\"../b\":{\"node_type\":"
                  "\"array\"},\"c\":{\"node_type\":7},\"d\":[]}}}");
    CHECK(lumio_zarr_open(&z, d, NULL) == -ENOENT);
    snprintf(want, sizeof want,
             "%s: a Zarr v3 group, not an array; its arrays: a (1 names in its consolidated "
             "metadata are not paths inside the group)",
             d);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), want);

    /* No consolidated metadata: the walk lists the array inside, not the one
     * a link points to outside. */
    d = array_dir("g4", ".zgroup", "{\"zarr_format\":2}");
    const char *out = array_dir("outside", ".zarray", V2(""));
    char in[512], link[600];
    snprintf(in, sizeof in, "%s/inner", d);
    mkdir(in, 0700);
    snprintf(p, sizeof p, "%s/.zarray", in);
    put_text(p, V2(""));
    snprintf(link, sizeof link, "%s/escape", d);
    CHECK(symlink(out, link) == 0);
    CHECK(lumio_zarr_open(&z, d, NULL) == -ENOENT);
    snprintf(want, sizeof want, "%s: a Zarr v2 group, not an array; its arrays: inner", d);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), want);
}

/* Every error text the library hands out has the secrets of URLs in it
 * redacted: a location's password never reaches a caller's log. (A local
 * directory named like a URL gives a quick, offline failing open.) */
TEST(no_secrets_in_errors) {
    char d[600], loc[700];
    snprintf(d, sizeof d, "%s", tmp_path("http:"));
    CHECK(mkdir(d, 0700) == 0);
    snprintf(loc, sizeof loc, "%s/user:hunter2@host", d);
    CHECK(mkdir(loc, 0700) == 0);
    snprintf(loc, sizeof loc, "%s//user:hunter2@host/a.zarr", d);
    CHECK(mkdir(loc, 0700) == 0);
    char p[800];
    snprintf(p, sizeof p, "%s/.zarray", loc);
    put_text(p, "[1,2,3]");
    lumio_zarr *z;
    CHECK(lumio_zarr_open(&z, loc, NULL) == LUMIO_E_FORMAT);
    char want[1200];
    snprintf(want, sizeof want,
             "%s//user:***@host/a.zarr/.zarray: not a JSON object (the document is a list)", d);
    CHECK_STREQ(lumio_zarr_last_error(NULL, ERRBUF), want);
}

int main(void) {
    return run_tests("zarr_hostile");
}
