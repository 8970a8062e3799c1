/* io_uring blocked by seccomp (as in many containers): a ring created with
 * LUMIO_BACKEND_AUTO must fall back to the thread pool and still work, and
 * asking for io_uring explicitly must fail with LUMIO_E_BACKEND. */
#include "tests/testutil.h"

#include <lumio/ring.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int block_io_uring(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) return -errno;
    return 0;
}

TEST(auto_falls_back_to_threads) {
    uint8_t *want = make_file(tmp_path("fb.bin"), 100000, 3);
    lumio_ring_options o;
    o = (lumio_ring_options){0};
    o.backend = LUMIO_BACKEND_URING;
    lumio_ring *r = NULL;
    CHECK_EQ(lumio_ring_create(&r, &o), LUMIO_E_BACKEND);
    CHECK(r == NULL);
    o.backend = LUMIO_BACKEND_AUTO;
    CHECK_RC(lumio_ring_create(&r, &o));
    CHECK_EQ(lumio_ring_backend(r), LUMIO_BACKEND_THREADS);
    lumio_range rg = {.offset = -1000, .length = 1000, .user_data = 1};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = tmp_path("fb.bin"), .ranges = &rg, .nranges = 1};
    uint64_t g;
    CHECK_RC(lumio_ring_submit(r, &op, 1, NULL, &g));
    lumio_completion c[2];
    CHECK_EQ(lumio_ring_wait(r, g, c, 2, 1), 1);
    CHECK_EQ(c[0].result, 0);
    CHECK(c[0].length == 1000 && memcmp(c[0].data, want + 99000, 1000) == 0);
    CHECK(c[0].flags & LUMIO_CQE_GROUP_END);
    lumio_buffer_release(c[0].buffer);
    lumio_ring_close(r);
    free(want);
}

int main(void) {
    unsetenv("LUMIO_BACKEND"); /* AUTO must decide by itself */
    int rc = block_io_uring();
    if (rc < 0) {
        printf("SKIP: cannot install a seccomp filter here (%s)\n", lumio_strerror(rc));
        return 77;
    }
    return run_tests("fallback");
}
