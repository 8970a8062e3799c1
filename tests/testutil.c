#include "tests/testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

int test_failed;
static struct {
    const char *name;
    test_fn fn;
} tests[256];
static int ntests;
static char tmpdir[256];

void register_test(const char *name, test_fn fn) {
    if (ntests < 256) {
        tests[ntests].name = name;
        tests[ntests++].fn = fn;
    }
}

const char *tmp_path(const char *name) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 4096, "%s/%s", tmpdir, name);
    return b;
}

uint64_t rnd(uint64_t *s) {
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint8_t *make_file(const char *path, size_t size, uint64_t seed) {
    uint8_t *d = malloc(size ? size : 1);
    uint64_t s = seed;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = rnd(&s);
        memcpy(d + i, &v, size - i < 8 ? size - i : 8);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, d, size) != (ssize_t)size) {
        perror(path);
        exit(2);
    }
    close(fd);
    return d;
}

uint8_t *read_file(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return NULL;
    uint8_t *d = malloc((size_t)st.st_size + 1);
    ssize_t n = read(fd, d, (size_t)st.st_size);
    close(fd);
    if (n != st.st_size) {
        free(d);
        return NULL;
    }
    if (size) *size = (size_t)n;
    return d;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

int run_tests(const char *suite) {
    const char *base = getenv("LUMIO_TEST_DIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumio-%s-XXXXXX", base ? base : "/var/tmp", suite);
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 2;
    }
    const char *only = getenv("LUMIO_TEST_ONLY");
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (only && strcmp(only, tests[i].name)) continue;
        test_failed = 0;
        tests[i].fn();
        printf("%s %s\n", test_failed ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
        if (test_failed)
            failed++;
        else
            passed++;
    }
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}

int hold_completions(lumio_ring *r, uint64_t g, lumio_completion *held, int want) {
    int have = 0;
    while (have < want) {
        int n = lumio_ring_wait(r, g, held + have, (unsigned)(want - have), 1);
        if (n <= 0) break;
        have += n;
    }
    return have;
}
