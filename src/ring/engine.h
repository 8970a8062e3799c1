/* The engine's internal state, shared by its front end (engine.c: groups,
 * delivery, wait) and its planner (plan.c: opening files, resolving ranges,
 * turning them into reads and writes, finishing them). */
#ifndef LUMIO_RING_ENGINE_H
#define LUMIO_RING_ENGINE_H

#include "core/core.h"
#include "ring/backend.h"
#include "ring/pool.h"

#include <lumio/remote.h>
#include <lumio/ring.h>

typedef struct op_state op_state;
typedef struct group group;

/* A completion in the making: one per range, plus one per op (for an
 * op-level error) and one per group (the end of an empty group). */
typedef struct node {
    op_state *op; /* NULL for a group's end node */
    uint64_t off; /* resolved offset */
    uint64_t len; /* resolved length */
    int64_t req_off;
    uint64_t req_len;
    uint64_t user_data;
    uint8_t *dst; /* caller's memory (GET) or source (PUT) */
    uint32_t flags;
    uint32_t index; /* range index or LUMIO_NO_RANGE */
    /* Result, filled as the I/O finishes. */
    int result;
    uint32_t cflags;
    uint8_t *data;
    lumio_buffer *buf;
    uint32_t parts_left; /* I/O requests still in flight for this range */
    bool planned;        /* parts_left is final */
    bool done;           /* finished, after compute */
    bool delivered;      /* handed to the caller */
    bool computed;       /* the compute function ran on it */
    uint64_t eof_at;     /* lowest file offset where end of file was seen */
    void *out;
    uint64_t out_length;
    lumio_job job; /* the compute stage */
    struct node *next;
    /* A block of a stream (read until end of file) is made as the data
     * comes, and freed once delivered: on its op's list of live blocks,
     * and, in an in-order group, on the list of blocks not yet released. */
    bool heap;
    struct node *lprev, *lnext, *rnext;
} node;

enum role { ROLE_OPEN, ROLE_STATX, ROLE_IO, ROLE_FSYNC, ROLE_CLOSE };

typedef struct etask {
    task t; /* first: the backend hands back task pointers */
    enum role role;
    op_state *op;
} etask;

/* One read or write request: a span of the file into (or from) memory,
 * serving one range, part of one, or several merged ranges. */
typedef struct ioreq {
    etask et;
    node **ranges; /* the ranges served (in op->order), nr of them */
    uint32_t nr;
    uint64_t start, end;  /* file span still to transfer: [start, end) */
    uint64_t need_end;    /* bytes past this are padding (O_DIRECT alignment) */
    uint8_t *mem;         /* memory for `start` */
    lumio_buffer *buf;    /* pool buffer, if any */
    node *bounce;         /* copy the read into this range's dst afterwards */
    uint64_t bounce_base; /* file offset of buf->mem[0] for a bounce */
    bool stream;          /* a read of a stream op (plan.c: lumio__stream_done) */
    bool poll;            /* a stream's wait for data (a non-blocking pipe) */
    struct ioreq *next_free;
} ioreq;

enum op_phase { OP_IDLE, OP_OPENING, OP_ISSUING, OP_DRAINING, OP_CLOSING, OP_CLOSED };

struct op_state {
    group *g;
    uint32_t index;
    lumio_op_kind kind;
    const char *path;
    int fd;              /* open file (or fixed slot) */
    bool owned;          /* the engine opened it and closes it */
    bool fixed;          /* fd is a registered-file slot */
    bool direct;         /* opened with O_DIRECT */
    bool remote;         /* a URL: the remote backend's */
    char *remote_err;    /* the first failure's text that says more than its code
                            (the remote backend's, a file that shrank) */
    int remote_err_code; /* and its code: the text is used for completions with it */
    /* Planning sizes: the ring's for files, the remote client's for URLs. */
    uint64_t gap, cmax, max_io;
    uint32_t flags;
    unsigned mode;
    uint64_t block_size;
    uint64_t user_data;
    enum op_phase phase;
    int error;        /* op-level error: delivered through opnode */
    unsigned opening; /* open/statx tasks in flight */
    bool need_stat;
    struct statx stx;
    bool have_size;
    uint64_t size;
    uint32_t align;               /* O_DIRECT offset and memory alignment */
    node *ranges;                 /* nranges of them */
    bool own_ranges;              /* ranges made here (blocks), freed with the op */
    uint64_t part_base, part_end; /* file span of part_buf */
    uint32_t nranges;
    node **order;            /* issue order */
    uint32_t cursor;         /* next range in `order` to plan */
    uint64_t part_off;       /* progress inside order[cursor] when split */
    lumio_buffer *part_buf;  /* buffer of the range being split */
    unsigned inflight;       /* I/O requests in flight */
    uint32_t writes_pending; /* PUT ranges not yet written */
    bool fully_issued;
    bool resolved;                        /* ranges (or the error) are final */
    node opnode;                          /* the op-level completion */
    etask open_task, stat_task, end_task; /* end_task: fsync, then close */
    op_state *next;                       /* open queue / issue list */
    /* Files without a trustworthy size (pipes, devices, /proc, /sys, empty
     * regular files): a whole-file GET, or one read in blocks, is read until
     * end of file, one read at a time (see docs/ENGINE.md, "Files without a size"). */
    bool nosize;           /* the size from statx is not to be trusted */
    bool stream;           /* this op reads until end of file */
    bool seq;              /* not seekable: read at the file position */
    bool s_reading;        /* a read is in flight */
    bool s_done;           /* end of file (or an error): no more blocks */
    bool open_retry;       /* the open met EMFILE/ENFILE: open again later */
    bool open_alone;       /* ... with no other file open: tried once more */
    uint64_t s_pos;        /* file offset of the next read */
    node *s_cur;           /* the range or block being filled */
    lumio_buffer *s_buf;   /* its buffer */
    uint64_t s_fill;       /* bytes in s_buf */
    uint32_t s_count;      /* blocks made */
    node *s_live;          /* blocks made and not delivered */
    node *s_rel, *s_rtail; /* in-order: blocks not yet released */
};

struct group {
    uint64_t id;
    lumio_ring *r;
    op_state *ops;
    uint32_t nops;
    bool in_order;
    lumio_compute_fn compute;
    lumio_discard_fn discard;
    void *compute_arg;
    bool active;          /* ops queued to open */
    uint32_t ops_loading; /* ops whose I/O is not finished */
    uint32_t ops_open;    /* ops not yet closed */
    uint32_t unresolved;  /* ops whose node count is not known yet */
    uint64_t undelivered; /* nodes not yet handed to the caller */
    uint64_t total_nodes;
    uint32_t issue_cursor;   /* in_order: ops before it have issued everything */
    uint32_t dl_op, dl_node; /* in_order: the next node to release */
    node *ready_head, *ready_tail;
    bool in_ready_list;
    bool ended;
    /* lumio_ring_cancel: no more I/O started, no more compute (read on the
     * workers too). */
    atomic_bool canceled;
    node endnode;
    char *strings;
    node *range_mem;
    node **order_mem;
    group *next;       /* all groups, in submission order */
    group *next_ready; /* groups with ready nodes */
};

struct lumio_ring {
    lumio_ring_options o;
    backend *be;
    backend *rbe; /* remote objects (made on the first URL) */
    struct lumio_remote *remote;
    bool own_remote;
    lumio_pool *pool;
    lumio_workers *workers;
    uint64_t next_group_id;
    group *groups_head, *groups_tail;
    group *ready_head, *ready_tail;
    op_state *open_head, *open_tail;   /* ops waiting to be opened */
    op_state *issue_head, *issue_tail; /* ops with I/O to issue, FIFO */
    unsigned inflight;                 /* tasks in the backend */
    unsigned open_groups;              /* groups whose end is not delivered */
    unsigned files_open;               /* files open or opening */
    unsigned fd_cap;                   /* open-file cap, lowered when opens meet EMFILE */
    /* Which file systems (by device) give sizes that are not the content's
     * (procfs, sysfs, ...): asked once per device, with statfs. */
    struct {
        uint64_t dev;
        bool pseudo;
    } fs_memo[16];
    unsigned fs_memo_n;
    unsigned opening; /* ops between open and resolved */
    ioreq *free_reqs;
    void **slabs;
    size_t nslabs;
    bool pool_blocked; /* issuing stopped at the pool cap */
    /* The compute stage hands finished nodes back here (any thread). */
    pthread_mutex_t mu;
    node *computed_head, *computed_tail;
    unsigned computing; /* nodes in the compute stage */
    bool sleeping;      /* blocked in the backend: compute results must wake it (under mu) */
    lumio_ring_stats stats;
    lumio__err err;
};

/* BLOCKED_WAIT: a stream op whose read is in flight; it stays on the list. */
enum issue_result { ISSUED_ALL, BLOCKED_DEPTH, BLOCKED_POOL, BLOCKED_WAIT };

/* plan.c */
void lumio__plan_start_open(lumio_ring *r, op_state *op);
ioreq *lumio__plan_req_new(lumio_ring *r); /* NULL when out of memory */
void lumio__plan_req_free(lumio_ring *r, ioreq *q);
void lumio__plan_req_submit(lumio_ring *r, ioreq *q);

/* stream.c: files without a trustworthy size */
void lumio__stream_classify(lumio_ring *r, op_state *op); /* after statx: nosize, stream, seq */
enum issue_result lumio__stream_issue(lumio_ring *r, op_state *op);
void lumio__stream_done(lumio_ring *r, ioreq *q, int res);
void lumio__plan_issue(lumio_ring *r);
void lumio__plan_task_done(lumio_ring *r, etask *et);
void lumio__plan_free_reqs(lumio_ring *r);
void lumio__plan_after_writes(lumio_ring *r, op_state *op);

/* engine.c */
void lumio__engine_node_finished(lumio_ring *r, node *n); /* I/O done: compute, then deliver */
void lumio__engine_op_resolved(lumio_ring *r, op_state *op);
/* A stream read in blocks made a block; and it made its last one. */
void lumio__engine_stream_node(lumio_ring *r, op_state *op, node *n);
void lumio__engine_stream_end(lumio_ring *r, op_state *op);
/* The open queue: put an op back at its head (an open to try again). */
void lumio__engine_requeue_open(lumio_ring *r, op_state *op);
void lumio__engine_op_loaded(lumio_ring *r, op_state *op);
void lumio__engine_op_closed(lumio_ring *r, op_state *op);
void lumio__engine_queue(lumio_ring *r, etask *et);
void lumio__engine_add_issue(lumio_ring *r, op_state *op);
/* The op has issued all its I/O; returns whether an in-order group can now
 * issue a later op. */
bool lumio__engine_op_fully_issued(lumio_ring *r, op_state *op);

#endif
