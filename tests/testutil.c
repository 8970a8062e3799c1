#include "tests/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CASE_PASSED = 0, CASE_FAILED = 1, CASE_SKIPPED = 77 };

static struct {
    const char *name;
    test_fn fn;
} tests[256];
static int ntests;
static char tmpdir[256];  /* the suite's */
static char casedir[512]; /* the running case's, inside it */
/* The running case's process (and process group), for the signal handler. */
static volatile sig_atomic_t running_case;

void register_test(const char *name, test_fn fn) {
    if (ntests < 256) {
        tests[ntests].name = name;
        tests[ntests++].fn = fn;
    }
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    /* _exit: no leak report for what the interrupted case still holds. */
    fflush(NULL);
    _exit(CASE_FAILED);
}

void test_skip(const char *why) {
    printf("  SKIP: %s\n", why);
    fflush(NULL);
    _exit(CASE_SKIPPED);
}
const char *tmp_path(const char *name) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 4096, "%s/%s", casedir, name);
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

/* ctest's timeout or http_env.sh's signal: the case's processes go too. */
static void on_signal(int sig) {
    if (running_case > 0) kill(-running_case, SIGKILL);
    _exit(128 + sig);
}

static void child_runs(int i, pid_t runner) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a runner killed outright takes its case along */
    if (getppid() != runner) _exit(CASE_FAILED);
    snprintf(casedir, sizeof casedir, "%s/%s", tmpdir, tests[i].name);
    if (mkdir(casedir, 0755) < 0) FAIL("mkdir %s: %s", casedir, strerror(errno));
    tests[i].fn();
    exit(CASE_PASSED); /* exit, not _exit: under ASan the leak check runs per case */
}

/* Stops what the case in process group pg left, and reaps it (the runner
 * is a subreaper: the case's orphans are its children). Whether any was left. */
static int stop_leftovers(pid_t pg) {
    while (waitpid(-pg, NULL, WNOHANG) > 0) continue; /* exited already */
    int left = kill(-pg, 0) == 0;
    kill(-pg, SIGKILL);
    while (waitpid(-pg, NULL, 0) > 0) continue;
    return left;
}

/* Runs case i in a child; what it started is stopped when it ends. */
static int run_case(int i) {
    pid_t runner = getpid();
    while (waitpid(-1, NULL, WNOHANG) > 0) continue; /* an earlier case's stragglers */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return CASE_FAILED;
    }
    if (pid == 0) child_runs(i, runner);
    setpgid(pid, pid); /* whichever of the two runs first */
    running_case = pid;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) continue;
    int leftovers = stop_leftovers(pid);
    running_case = 0;
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "  killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
        return CASE_FAILED;
    }
    int code = WEXITSTATUS(st);
    if (code == CASE_PASSED && leftovers) {
        fprintf(stderr, "  passed, but left processes running (now killed)\n");
        return CASE_FAILED;
    }
    if (code != CASE_PASSED && code != CASE_SKIPPED && code != CASE_FAILED)
        fprintf(stderr, "  exited with status %d\n", code);
    return code == CASE_PASSED || code == CASE_SKIPPED ? code : CASE_FAILED;
}

/* Whether name is in the comma-separated list. */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Every name in LUMIO_TEST_ONLY and LUMIO_TEST_EXCLUDE is a case: a typo
 * must not make a test that runs nothing and passes. */
static int names_known(const char *list) {
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = 0;
        for (int i = 0; i < ntests && !found; i++)
            found = strlen(tests[i].name) == len && strncmp(p, tests[i].name, len) == 0;
        if (!found) {
            fprintf(stderr, "no test case named '%.*s'\n", (int)len, p);
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return 1;
}

int run_tests(const char *suite) {
    const char *only = getenv("LUMIO_TEST_ONLY"), *exclude = getenv("LUMIO_TEST_EXCLUDE");
    if (!names_known(only) || !names_known(exclude)) return 2;
    const char *base = getenv("LUMIO_TEST_DIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lumio-%s-XXXXXX", base ? base : "/var/tmp", suite);
    if (!mkdtemp(tmpdir)) {
        perror(tmpdir);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < ntests; i++) {
        if ((only && !listed(only, tests[i].name)) || listed(exclude, tests[i].name)) continue;
        int r = run_case(i);
        passed += r == CASE_PASSED;
        failed += r == CASE_FAILED;
        skipped += r == CASE_SKIPPED;
        printf("%s %s\n",
               r == CASE_PASSED    ? "ok  "
               : r == CASE_SKIPPED ? "skip"
                                   : "FAIL",
               tests[i].name);
        fflush(stdout);
    }
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s: %d passed, %d failed, %d skipped\n", suite, passed, failed, skipped);
    if (passed + failed + skipped == 0) {
        printf("%s: no case ran\n", suite);
        return 1;
    }
    return failed ? 1 : skipped ? 77 : 0;
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
