/* The store: an array's keys wherever it lives (a local directory, an HTTP
 * server, S3). Whole keys are read through the array's ring; a chunk is
 * written to a temporary name and renamed over the old one (a PUT replaces
 * an object whole), so a killed writer leaves every chunk whole; a new
 * array's metadata document goes only where no array is yet. Nothing here
 * knows regions, codecs or caches. */
#include "zarr/zarr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void lumio__zarr_abandon(lumio_zarr *z, uint64_t g) {
    lumio_ring_cancel(z->ring, g);
    lumio_completion c[64];
    int got;
    while ((got = lumio_ring_wait(z->ring, g, c, 64, 1)) > 0)
        for (int i = 0; i < got; i++) lumio_buffer_release(c[i].buffer);
}

/* ---- reading a key -------------------------------------------------------------- */

static char *join(const char *base, const char *key) {
    size_t n = strlen(base) + strlen(key) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", base, key);
    return p;
}

int lumio__zarr_fetch_key(lumio_zarr *z, const char *key, char **data, size_t *len) {
    char *path = join(z->base, key);
    if (!path) return -ENOMEM;
    lumio_range rg = {.offset = 0, .length = LUMIO_WHOLE};
    lumio_op op = {.kind = LUMIO_OP_GET, .path = path, .ranges = &rg, .nranges = 1};
    uint64_t g;
    int rc = lumio_ring_submit(z->ring, &op, 1, NULL, &g);
    *data = NULL;
    lumio_completion c[4];
    int n = 0;
    while (rc == 0 && (n = lumio_ring_wait(z->ring, g, c, 4, 1)) > 0)
        for (int i = 0; i < n; i++) {
            if (c[i].result < 0) {
                rc = c[i].result;
                lumio_ring_last_error(z->ring, z->err, sizeof z->err);
            } else if (!*data) {
                *data = malloc(c[i].length + 1);
                if (!*data)
                    rc = -ENOMEM;
                else {
                    if (c[i].length) memcpy(*data, c[i].data, c[i].length); /* empty: no data */
                    (*data)[c[i].length] = 0;
                    *len = c[i].length;
                }
            }
            lumio_buffer_release(c[i].buffer);
        }
    if (n < 0) { /* the ring itself failed (stalled on a shared ring) */
        rc = n;
        lumio_ring_last_error(z->ring, z->err, sizeof z->err);
        lumio__zarr_abandon(z, g);
    } else if (rc == 0 && !*data) {
        rc = -EIO;
        snprintf(z->err, sizeof z->err, "%s: no data came back", path);
    }
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    free(path);
    return rc;
}

/* ---- writing a key -------------------------------------------------------------- */

/* 1 when the last directory of path was made here, 0 when it was there. */
static int mkdirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc < 0 && errno != EEXIST) return -errno;
    }
    if (mkdir(path, 0755) == 0) return 1;
    return errno == EEXIST ? 0 : -errno;
}

/* A new temporary file beside path (its directory made if missing: a key
 * with '/'), its name in tmp. */
static int open_temp(const char *path, char *tmp, size_t cap) {
    static unsigned long counter;
    snprintf(tmp, cap, "%s.lumio-tmp.%d.%lu", path, (int)getpid(),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) {
            *slash = 0;
            mkdirs(dir);
        }
        free(dir);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    return fd;
}

/* Write data to path through a temporary name and a rename (or, with
 * exclusive, a link, which fails if path exists). */
static int write_atomic(const char *path, const void *data, size_t len, bool exclusive) {
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp) return -ENOMEM;
    int fd = open_temp(path, tmp, n);
    int rc = fd < 0 ? -errno : 0;
    const uint8_t *p = data;
    while (rc == 0 && len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            rc = w < 0 ? -errno : -EIO;
        else
            p += w, len -= (size_t)w;
    }
    if (fd >= 0 && close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && exclusive) {
        if (link(tmp, path) < 0) {
            rc = -errno;
            struct stat st;
            if (rc == -EPERM || rc == -EOPNOTSUPP || rc == -ENOSYS) /* no hard links here */
                rc = stat(path, &st) == 0 ? -EEXIST : rename(tmp, path) < 0 ? -errno : 0;
        }
        unlink(tmp); /* (gone already if renamed) */
    } else if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
    }
    if (rc < 0 && fd >= 0) unlink(tmp);
    free(tmp);
    return rc;
}

int lumio__zarr_put_key(const lumio_zarr *z, const char *key, const void *data, size_t len,
                        char *err, size_t errlen) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", z->base, key);
    int rc;
    if (z->remote) { /* an object is replaced whole by a PUT */
        rc = lumio_remote_put(z->rm, path, data, len);
        if (rc < 0) lumio_remote_last_error(z->rm, err, errlen);
    } else {
        rc = write_atomic(path, data, len, false);
        if (rc < 0) snprintf(err, errlen, "%s/%s: %s", z->base, key, lumio_strerror(rc));
    }
    return rc;
}

/* ---- a new array's metadata ----------------------------------------------------- */

/* A directory a new array is made in holds nothing of an earlier one: the
 * chunks of a create that was killed before its metadata (written last)
 * would otherwise read as the new array's data. Its attributes may stay. */
static int check_empty(const char *path, char *err, size_t errlen) {
    DIR *d = opendir(path);
    if (!d) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, lumio_strerror(rc));
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".zattrs") || !strcmp(n, ".zarray") ||
            !strcmp(n, "zarr.json"))
            continue; /* (metadata: said below, by name) */
        char shown[65];
        size_t k = 0;
        for (; n[k] && k < sizeof shown - 1; k++) /* a name is one line, without escapes */
            shown[k] = n[k] > 0x20 && n[k] < 0x7f ? n[k] : '?';
        shown[k] = 0;
        snprintf(err, errlen,
                 "%s: the directory is not empty ('%s'; chunks of a failed create?): "
                 "remove it or create elsewhere",
                 path, shown);
        rc = -EEXIST;
    }
    closedir(d);
    return rc;
}

/* The metadata document of a new array in a directory (text NULL: only
 * check that it may be written): made if missing (*made says if here); an
 * array of either format already there is -EEXIST, this format's checked
 * atomically as the document is linked into place. */
static int put_meta_local(const char *path, int format, const char *text, bool *made, char *err,
                          size_t errlen) {
    char *dir = strdup(path);
    size_t mlen = strlen(path) + 16;
    char *meta = malloc(mlen);
    int rc = dir && meta ? mkdirs(dir) : -ENOMEM;
    if (made) *made = rc == 1;
    if (rc > 0) rc = 0;
    if (rc == 0 && made && !*made) rc = check_empty(path, err, errlen);
    struct stat st;
    for (int k = 0; rc == 0 && k < 2; k++) { /* the other format's, then this one's */
        snprintf(meta, mlen, "%s/%s", path, (format == 2) == (k == 0) ? "zarr.json" : ".zarray");
        if (lstat(meta, &st) == 0) {
            snprintf(err, errlen, "%s: already an array%s", meta,
                     k ? "" : " (of the other format)");
            rc = -EEXIST;
        }
    }
    if (rc < 0 && rc != -EEXIST) {
        snprintf(err, errlen, "%s: %s", path, lumio_strerror(rc));
    } else if (rc == 0 && text) {
        rc = write_atomic(meta, text, strlen(text), true);
        if (rc == -EEXIST)
            snprintf(err, errlen, "%s: already an array", meta);
        else if (rc < 0)
            snprintf(err, errlen, "%s: %s", meta, lumio_strerror(rc));
    }
    free(dir);
    free(meta);
    return rc;
}

/* The same in a store at a URL: neither document may be there (checked,
 * then written: a store has no atomic create). */
static int put_meta_remote(const char *path, int format, const char *text, lumio_ring *ring,
                           lumio_remote *remote, char *err, size_t errlen) {
    bool own = !ring;
    if (own) {
        lumio_ring_options ro;
        ro = (lumio_ring_options){0};
        ro.remote = remote;
        if (lumio_ring_create(&ring, &ro) < 0) {
            snprintf(err, errlen, "%s: cannot start the I/O engine", path);
            return -ENOMEM;
        }
    }
    lumio_remote *rm = lumio_ring_remote(ring);
    int rc = rm ? 0 : -ENOMEM;
    char url[1100];
    for (int k = 0; rc == 0 && k < 2; k++) {
        snprintf(url, sizeof url, "%s/%s", path,
                 (format == 2) == (k == 0) ? ".zarray" : "zarr.json");
        rc = lumio_remote_stat(rm, url, NULL);
        if (rc == 0) {
            snprintf(err, errlen, "%.400s: already an array%s", url,
                     k ? " (of the other format)" : "");
            rc = -EEXIST;
        } else if (rc == -ENOENT) {
            rc = 0;
        } else {
            lumio_remote_last_error(rm, err, errlen);
        }
    }
    if (rc == 0 && text) {
        snprintf(url, sizeof url, "%s/%s", path, format == 2 ? ".zarray" : "zarr.json");
        if ((rc = lumio_remote_put(rm, url, text, strlen(text))) < 0)
            lumio_remote_last_error(rm, err, errlen);
    }
    if (own) lumio_ring_close(ring);
    return rc;
}

int lumio__zarr_put_meta(const char *path, int format, const char *text, lumio_ring *ring,
                         lumio_remote *remote, bool *made, char *err, size_t errlen) {
    if (made) *made = false;
    return lumio_remote_is_url(path)
               ? put_meta_remote(path, format, text, ring, remote, err, errlen)
               : put_meta_local(path, format, text, made, err, errlen);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)f;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void lumio__zarr_remove_unless_array(const char *dir) {
    char p[1100];
    struct stat st;
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, k ? "zarr.json" : ".zarray");
        if (lstat(p, &st) == 0) return;
    }
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
