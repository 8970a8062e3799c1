/* LD_PRELOAD shim for the threads backend's tests: pread and pwrite move at
 * most 777 bytes at a time and now and then fail with EINTR or EAGAIN, as a
 * slow or signalled file system may. The engine must still deliver exact bytes. */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_uint calls;

/* O_DIRECT transfers are never short but at the end of the file. */
static size_t cap(int fd, size_t len) {
    if (fcntl(fd, F_GETFL) & O_DIRECT) return len;
    return len > 777 ? 777 : len;
}

static int fault(void) {
    unsigned n = atomic_fetch_add(&calls, 1);
    if (n % 5 == 3) return EINTR;
    if (n % 7 == 5) return EAGAIN;
    return 0;
}

typedef ssize_t (*rw_fn)(int, void *, size_t, off_t);

/* LUMIO_SHIM_EIO_AT=OFFSET: a read that starts there fails with EIO. */
static int eio_at(off_t off) {
    const char *v = getenv("LUMIO_SHIM_EIO_AT");
    return v && *v && strtoll(v, NULL, 10) == (long long)off;
}

ssize_t pread(int fd, void *buf, size_t len, off_t off) {
    static rw_fn real;
    if (!real) real = (rw_fn)dlsym(RTLD_NEXT, "pread");
    if (eio_at(off)) {
        errno = EIO;
        return -1;
    }
    int e = fault();
    if (e) {
        errno = e;
        return -1;
    }
    return real(fd, buf, cap(fd, len), off);
}
ssize_t pread64(int fd, void *buf, size_t len, off_t off) {
    return pread(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    static rw_fn real;
    if (!real) real = (rw_fn)dlsym(RTLD_NEXT, "pwrite");
    int e = fault();
    if (e) {
        errno = e;
        return -1;
    }
    return real(fd, (void *)buf, cap(fd, len), off);
}
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
    return pwrite(fd, buf, len, off);
}
