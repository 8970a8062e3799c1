/* Creating an array whose metadata is written last (defer_metadata, then
 * lumio_zarr_commit): written region by region and read back through its
 * handle, opened by no one until committed, gone if never committed, and a
 * commit that loses to another creator refused. */
#include "tests/testutil.h"

#include <errno.h>
#include <stdbool.h>
#include <lumio/zarr.h>
#include <sys/stat.h>
#include <unistd.h>

static void options(lumio_zarr_create_options *o, int format, int shard) {
    *o = (lumio_zarr_create_options){0};
    o->format = format;
    o->ndim = 2;
    o->shape[0] = 50, o->shape[1] = 70;
    o->chunks[0] = 16, o->chunks[1] = 10;
    if (shard) o->shard[0] = 32, o->shard[1] = 20;
    o->dtype = "<u2";
    o->defer_metadata = 1;
}

static bool exists(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static void deferred(int format, int shard, const char *name) {
    lumio_zarr_create_options o;
    options(&o, format, shard);
    const char *path = tmp_path(name);
    lumio_zarr *z, *other;
    CHECK_RC(lumio_zarr_create(&z, path, &o, NULL));
    uint16_t ref[50 * 70], back[50 * 70];
    for (unsigned i = 0; i < 50 * 70; i++) ref[i] = (uint16_t)(i * 13 + 1);
    /* Region by region, as a Python caller would: the top half, then the rest. */
    uint64_t s0[2] = {0, 0}, n0[2] = {25, 70}, s1[2] = {25, 0}, n1[2] = {25, 70};
    CHECK_RC(lumio_zarr_write(z, s0, n0, ref));
    CHECK_EQ(lumio_zarr_open(&other, path, NULL), -ENOENT); /* nothing opens yet */
    CHECK_RC(lumio_zarr_write(z, s1, n1, ref + 25 * 70));
    uint64_t all[2] = {50, 70};
    CHECK_RC(lumio_zarr_read(z, s0, all, back)); /* the handle reads what it wrote */
    CHECK(memcmp(back, ref, sizeof ref) == 0);
    CHECK(!exists(path, ".zarray") && !exists(path, "zarr.json"));
    CHECK_RC(lumio_zarr_commit(z));
    CHECK(exists(path, format == 2 ? ".zarray" : "zarr.json"));
    CHECK_RC(lumio_zarr_commit(z)); /* once committed: nothing more to do */
    lumio_zarr_close(z);
    CHECK_RC(lumio_zarr_open(&other, path, NULL));
    memset(back, 0, sizeof back);
    CHECK_RC(lumio_zarr_read(other, s0, all, back));
    CHECK(memcmp(back, ref, sizeof ref) == 0);
    lumio_zarr_close(other);
}

TEST(deferred_v2) {
    deferred(2, 0, "d2.zarr");
}

TEST(deferred_v3_sharded) {
    deferred(3, 1, "d3.zarr");
}

/* Closed without a commit: the directory create made goes, with its chunks. */
TEST(uncommitted_removed) {
    lumio_zarr_create_options o;
    options(&o, 2, 0);
    const char *path = tmp_path("gone.zarr");
    lumio_zarr *z;
    CHECK_RC(lumio_zarr_create(&z, path, &o, NULL));
    uint16_t ref[50 * 70] = {1};
    uint64_t s0[2] = {0, 0}, n0[2] = {50, 70};
    CHECK_RC(lumio_zarr_write(z, s0, n0, ref));
    CHECK(exists(path, "0.0"));
    lumio_zarr_close(z);
    struct stat st;
    CHECK(stat(path, &st) < 0 && errno == ENOENT);
}

/* In a directory that was there: its other files stay, nothing opens. */
TEST(uncommitted_in_existing_dir) {
    const char *path = tmp_path("kept");
    CHECK(mkdir(path, 0755) == 0);
    lumio_zarr_create_options o;
    options(&o, 3, 0);
    lumio_zarr *z, *other;
    CHECK_RC(lumio_zarr_create(&z, path, &o, NULL));
    uint16_t ref[50 * 70] = {1};
    uint64_t s0[2] = {0, 0}, n0[2] = {16, 10};
    CHECK_RC(lumio_zarr_write(z, s0, n0, ref));
    lumio_zarr_close(z);
    CHECK_EQ(lumio_zarr_open(&other, path, NULL), -ENOENT);
}

/* Another creator committed first: this commit is -EEXIST, theirs stays. */
TEST(commit_loses_race) {
    lumio_zarr_create_options o;
    options(&o, 2, 0);
    const char *path = tmp_path("race.zarr");
    lumio_zarr *a, *b;
    CHECK_RC(lumio_zarr_create(&a, path, &o, NULL));
    CHECK_RC(lumio_zarr_create(&b, path, &o, NULL)); /* neither has committed */
    CHECK_RC(lumio_zarr_commit(a));
    CHECK_EQ(lumio_zarr_commit(b), -EEXIST);
    CHECK(strstr(lumio_zarr_last_error(b, ERRBUF), "already an array") != NULL);
    lumio_zarr_close(a);
    lumio_zarr_close(b);
    lumio_zarr *c;
    CHECK_RC(lumio_zarr_open(&c, path, NULL)); /* (b's close removed nothing of a's) */
    lumio_zarr_close(c);
    /* And a deferred create where an array is already committed fails at once. */
    CHECK_EQ(lumio_zarr_create(&c, path, &o, NULL), -EEXIST);
}

/* numpy's short type strings. */
TEST(short_dtypes) {
    static const char *const in[] = {"u1", "i2", "f8", "=u4", "|u2", ">u1", "<i1", ">f4", "b1"};
    static const char *const want[] = {"|u1", "<i2", "<f8", "<u4", "<u2",
                                       "|u1", "|i1", ">f4", "|b1"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        lumio_zarr_create_options o;
        options(&o, 2, 0);
        o.defer_metadata = 0;
        o.dtype = in[i];
        char name[32];
        snprintf(name, sizeof name, "dt%zu.zarr", i);
        lumio_zarr *z;
        CHECK_RC(lumio_zarr_create(&z, tmp_path(name), &o, NULL));
        lumio_zarr_info info;
        lumio_zarr_get_info(z, &info);
        if (strcmp(info.dtype, want[i]))
            fprintf(stderr, "  %s: %s, expected %s\n", in[i], info.dtype, want[i]);
        CHECK(strcmp(info.dtype, want[i]) == 0);
        lumio_zarr_close(z);
    }
}

int main(void) {
    return run_tests("zarr_write");
}
