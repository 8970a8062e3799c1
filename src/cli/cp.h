/* lumio cp, shared between cp.c (the walk, the ring and the command) and
 * cp_file.c (one file copied with system calls: temporary names, reflinks,
 * copy_file_range, holes, reads to end of file, the helper threads). */
#ifndef LUMIO_CLI_CP_H
#define LUMIO_CLI_CP_H

#include "cli/common.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A directory tree copied to a new name is made under a temporary name
 * beside it, filled, and renamed when all its files are done: then the files
 * inside need no temporary names of their own. */
typedef struct cp_root {
    char *tmp, *final;
    size_t tmplen;
    unsigned pending; /* its files not yet finished */
    bool walked;      /* its walk is over */
} cp_root;

/* How a file is copied. */
typedef enum cp_route {
    CP_RING,   /* small, dense: read and written through the ring, no fd of ours */
    CP_KERNEL, /* FICLONE, else copy_file_range over the data (holes kept), else read/write */
    CP_STREAM  /* no size to trust (proc, sys, FIFO, device): read until end of file */
} cp_route;

/* Whether two file systems share extents (FICLONE), learnt on the first file. */
typedef enum cp_clone { CLONE_UNKNOWN, CLONE_YES, CLONE_NO } cp_clone;

typedef struct cp_job {
    struct cp_job *next, *prev;
    char *src;
    char *dst; /* the final name (a symlink destination already resolved) */
    char *tmp; /* the temporary name while it is written, else NULL */
    mode_t mode;
    cp_route route;
    bool sparse;     /* fewer blocks than bytes: copy the data segments only */
    bool in_place;   /* the destination is not a regular file, or is one that
                        a rename cannot replace (below): written as is */
    bool truncate;   /* in place over a regular file: cut to 0 first */
    bool truncated;  /* ... which was done: a failure leaves it incomplete */
    mode_t dst_type; /* in place: the S_IFMT found, checked again once open */
    bool follow;     /* a command-line symlink to a file: opened through it */
    bool chown;      /* the copy takes the replaced file's owner (root only) */
    uid_t uid;
    gid_t gid;
    bool direct;          /* inside a directory tree still under its temporary name:
                             written under its own name, no rename */
    struct cp_root *root; /* that tree, or NULL */
    int pair;             /* index of the (source, destination) file-system pair */
    cp_clone clone;       /* in: what is known of the pair; out: what was learnt */
    /* Ring route. */
    int tries;         /* temporary names tried */
    lumio_buffer *buf; /* the data read, written by the PUT */
    uint8_t *data;
    uint64_t len;
    bool in_put;
    uint64_t bytes_done;
    uint64_t *moved; /* helpers: the bytes they copied, all jobs together, as
                        they go (atomic; for the progress line) */
    /* Result: 0, or a negative errno with the path it concerns. */
    int err;
    bool err_on_src;
    bool removed;  /* a partial copy was removed */
    bool complete; /* its data was all written: only the rename failed */
} cp_job;

/* Temporary names: ".lumio-cp.XXXXXXXXXXXX" beside the final name, random
 * from a seed drawn at start, so that they cannot be foreseen. */
void cp_names_init(void);
/* A new temporary name in the directory of `dst`; NULL if out of memory. */
char *cp_tmp_name(const char *dst);

/* The mode a file is created with, and whether it needs an fchmod after its
 * data (then it does not go through the ring, which has no descriptor for
 * it): the ring takes mode 0 as 0644, and the sticky bit is not given at
 * creation. */
mode_t cp_create_mode(mode_t mode);
bool cp_mode_after(mode_t mode);

/* Copy one file by system calls (CP_KERNEL, CP_STREAM, or in place), from
 * open to rename. Fills job->err, job->removed and job->clone. */
void cp_copy_file(cp_job *job, char *buf, size_t bufsize);

/* A direct file that failed after it was created: remove it. */
void cp_remove_direct(cp_job *job);

/* Rename a finished temporary file (its mode set already, on its
 * descriptor) to its final name; on failure, or if job->err is set already,
 * remove it. */
void cp_commit(cp_job *job);

/* The helper threads that run cp_copy_file(). Jobs go in with
 * cp_helpers_push() and come back, finished, from cp_helpers_take(). */
typedef struct cp_helpers {
    pthread_mutex_t mu;
    pthread_cond_t work, done_cv;
    cp_job *queue, *queue_tail, *done;
    unsigned nthreads, outstanding; /* pushed and not yet taken back */
    bool stop;
    pthread_t th[8];
    uint64_t moved; /* bytes copied (atomic): see cp_job.moved */
} cp_helpers;

int cp_helpers_start(cp_helpers *h, unsigned nthreads);
void cp_helpers_stop(cp_helpers *h);
/* Jobs given to the helpers and not yet taken back. */
unsigned cp_helpers_pending(cp_helpers *h);
void cp_helpers_push(cp_helpers *h, cp_job *job);
/* The finished jobs (a list), waiting for one if any is pending: at most
 * wait_ms milliseconds (0: not at all; -1: as long as it takes). */
cp_job *cp_helpers_take(cp_helpers *h, int wait_ms);

/* ---- the copy as a whole (cp.c, cp_walk.c) ---------------------------------------- */

#define CP_SMALL   (1u << 20) /* the largest file copied through the ring */
#define CP_BATCH   32         /* files per GET group */
#define CP_IN_RING 128        /* files in the ring: 128 x 1 MiB fits the pool */
#define WAIT_MAX   256

typedef struct dir_mode {
    char *path;           /* where it was made (under the tree's temporary name) */
    struct cp_root *root; /* that tree, or NULL */
    mode_t mode;
} dir_mode;

typedef struct fs_pair {
    dev_t src, dst;
    cp_clone clone;
} fs_pair;

typedef struct fs_kind {
    dev_t dev;
    bool pseudo; /* sizes mean nothing: proc, sys and the like */
} fs_kind;

/* Where an earlier source went: a later one of the same name waits until
 * that one is complete, then merges into it (directories) or is refused
 * (files), as cp does. */
typedef struct made_name {
    char *dst;
    bool dir;
} made_name;

typedef struct copier {
    lumio_ring *r;
    cp_helpers h;
    bool helpers_on;
    int status;
    /* Sources, and the walk of the current one. */
    char **srcs;
    int nsrcs, next_src;
    const char *dst;
    bool dst_is_dir;
    walker *w;
    char *dst_root; /* where the current source goes */
    cp_root *root;  /* the same, while made under a temporary name */
    dev_t dst_dev;
    bool walk_done;
    bool stalled; /* the next source waits for the earlier one of its name */
    made_name *made;
    size_t nmade;
    bool follow_root; /* the current source is a symlink to a file: its data is copied */
    int fresh_level;  /* entries deeper than this are in a directory we made; -1: none */
    /* The ring's files: those waiting for their GET, and all in it. */
    cp_job *gets[CP_BATCH];
    size_t ngets;
    cp_job *ring_jobs; /* list of jobs the ring holds (for cleanup) */
    unsigned in_ring, ring_max, helper_max;
    lumio_op ops[WAIT_MAX];
    lumio_range ranges[WAIT_MAX];
    size_t nputs;
    fs_pair *pairs;
    size_t npairs;
    fs_kind *kinds;
    size_t nkinds;
    dir_mode *dirs;
    size_t ndirs, cap_dirs;
    progress prog;
    uint64_t files, bytes; /* done, bytes of the ring's files only (cp_helpers.moved) */
    uint64_t expect;       /* the sizes of the files walked */
    bool unsized;          /* and some (a FIFO, a device) have none */
    uid_t euid;
    mode_t umask; /* the caller's: copies get the source's mode less it, as cp */
} copier;

/* One line naming a path (under its final name) and an error; exit 1. */
void cp_fail_errno(copier *cp, const char *path, int err);
void cp_path_error(copier *cp, const char *path, int code);
char *cp_join(const char *a, const char *b);
/* A path under a tree made under a temporary name, as the user will see it. */
char *cp_shown(const cp_root *root, const char *path);
mode_t cp_copy_mode(const copier *cp, const struct stat *st);
void cp_job_free(cp_job *j);
/* A tree made under a temporary name is complete: rename it. */
void cp_root_commit(copier *cp, cp_root *root);
/* Submit the files waiting for their GET as one group. */
int cp_submit_gets(copier *cp);
/* Walk on while the ring and the helpers have room (cp_walk.c). */
int cp_walk_some(copier *cp);
/* Move to the next source that passes its checks; false when none is left. */
bool cp_next_source(copier *cp);

#endif
