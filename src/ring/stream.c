/* Files without a trustworthy size (pipes, FIFOs, devices, files of /proc
 * and /sys, empty regular files): telling them apart when they are opened,
 * and reading them until end of file, one read at a time, as a whole file
 * in a growing buffer or as a series of blocks (docs/ENGINE.md, "Files
 * without a size"). The planner (plan.c) hands such ops over here. */
#include "ring/engine.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

/* The first buffer of a whole-file stream read; it doubles as it fills. */
#define STREAM_FIRST (64u << 10)

/* File systems whose files report a size that is not their content's: a
 * /proc file says 0, a /sys attribute 4096 whatever it holds. */
static bool pseudo_magic(uint64_t t) {
    static const uint64_t magics[] = {
        PROC_SUPER_MAGIC, SYSFS_MAGIC,        DEBUGFS_MAGIC,       TRACEFS_MAGIC,
        SECURITYFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, 0x62656570 /* configfs */,
        0xde5e81e4 /* efivarfs */};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (t == magics[i]) return true;
    return false;
}

/* Such file systems have no block device (major 0), as tmpfs and others do:
 * statfs tells them apart, once per device. */
static bool pseudo_fs(lumio_ring *r, const op_state *op) {
    if (op->stx.stx_dev_major != 0) return false;
    uint64_t dev = makedev(op->stx.stx_dev_major, op->stx.stx_dev_minor);
    unsigned n = LUMIO_MIN(r->fs_memo_n, 16u);
    for (unsigned i = 0; i < n; i++)
        if (r->fs_memo[i].dev == dev) return r->fs_memo[i].pseudo;
    struct statfs sf;
    int rc = op->path ? statfs(op->path, &sf) : fstatfs(op->fd, &sf);
    bool pseudo = rc == 0 && pseudo_magic((uint64_t)sf.f_type);
    unsigned slot = r->fs_memo_n++ % 16;
    r->fs_memo[slot].dev = dev;
    r->fs_memo[slot].pseudo = pseudo;
    return pseudo;
}

/* A file without a trustworthy size (anything but a regular file, an empty
 * regular file, a file of /proc or /sys) is read until end of file. A whole
 * file, or a file in blocks, becomes a stream; other ranges are read where
 * they are, and need no size. */
void lumio__stream_classify(lumio_ring *r, op_state *op) {
    uint32_t mode = (op->stx.stx_mask & STATX_TYPE) ? op->stx.stx_mode : S_IFREG;
    bool reg = S_ISREG(mode);
    op->nosize =
        !reg || !(op->stx.stx_mask & STATX_SIZE) || op->stx.stx_size == 0 || pseudo_fs(r, op);
    if (!op->nosize) return;
    op->have_size = false;
    op->size = 0;
    op->seq = !reg && !S_ISBLK(mode);
    if (op->nranges == 0) {
        op->stream = true; /* in blocks */
    } else if (op->nranges == 1 && op->ranges[0].req_len == LUMIO_WHOLE &&
               op->ranges[0].req_off >= 0 && (!op->seq || op->ranges[0].req_off == 0)) {
        op->stream = true; /* whole, into one growing buffer */
        op->ranges[0].off = (uint64_t)op->ranges[0].req_off;
        op->ranges[0].eof_at = UINT64_MAX;
    }
    if (op->stream) op->s_pos = op->nranges ? op->ranges[0].off : 0;
}

/* ---- reading ------------------------------------------------------------------ */

/* Hand the filled buffer over as the next block (a node made now, freed once
 * delivered). Out of memory, the op's own node carries the error instead,
 * and false says that the stream must end. */
static bool stream_block(lumio_ring *r, op_state *op, int err) {
    node *n = calloc(1, sizeof(*n));
    bool ok = n != NULL;
    if (!n) {
        n = &op->opnode;
        err = -ENOMEM;
    } else {
        n->heap = true;
        n->op = op;
        n->index = op->s_count++;
        n->user_data = op->user_data + n->index;
    }
    n->eof_at = UINT64_MAX;
    n->off = op->s_pos - op->s_fill;
    n->planned = true;
    n->result = err;
    if (err == 0) {
        n->len = op->s_fill;
        n->buf = op->s_buf;
        n->data = op->s_buf->mem;
        r->stats.bytes_read += n->len;
    } else {
        lumio_buffer_release(op->s_buf);
    }
    op->s_buf = NULL;
    op->s_fill = 0;
    lumio__engine_stream_node(r, op, n);
    lumio__engine_node_finished(r, n);
    return ok;
}

/* The end of a stream: at end of file (err 0) or on an error. A whole-file
 * read completes its one range with what was read; a read in blocks hands
 * over the last, partly filled block (or the error), and its group learns
 * that no more blocks will come. */
static void stream_end(lumio_ring *r, op_state *op, int err) {
    if (op->nranges == 0) {
        if (err || op->s_fill) stream_block(r, op, err);
        lumio_buffer_release(op->s_buf);
        op->s_buf = NULL;
        op->s_done = true;
        lumio__engine_stream_end(r, op);
        return;
    }
    node *n = &op->ranges[0];
    n->planned = true;
    n->result = err;
    n->len = err ? 0 : op->s_fill;
    if (err == 0 && op->s_fill) {
        n->buf = op->s_buf;
        n->data = op->s_buf->mem;
        r->stats.bytes_read += n->len;
    } else {
        lumio_buffer_release(op->s_buf);
    }
    op->s_buf = NULL;
    op->s_done = true;
    lumio__engine_node_finished(r, n);
}

/* Room for the next read: a block's buffer, or for a whole file a buffer
 * twice as large with the bytes so far copied over (both must fit under the
 * pool's cap at once, else the file is too big for it). */
static enum issue_result stream_room(lumio_ring *r, op_state *op, uint64_t limit) {
    if (op->s_buf && op->s_fill < limit) return ISSUED_ALL;
    uint64_t have = op->s_buf ? op->s_buf->cap : 0;
    uint64_t want = op->nranges == 0 ? op->block_size : have ? 2 * have : STREAM_FIRST;
    if (!lumio__pool_fits(r->pool, want) || !lumio__pool_fits(r->pool, want + have)) {
        stream_end(r, op, LUMIO_E_TOOBIG);
        return ISSUED_ALL;
    }
    lumio_buffer *b = lumio__pool_get(r->pool, want);
    if (!b) return BLOCKED_POOL;
    if (op->s_buf) {
        memcpy(b->mem, op->s_buf->mem, op->s_fill);
        lumio_buffer_release(op->s_buf);
    }
    op->s_buf = b;
    return ISSUED_ALL;
}

/* One read at a time, at the end of what was read so far. */
enum issue_result lumio__stream_issue(lumio_ring *r, op_state *op) {
    if (op->s_reading) return BLOCKED_WAIT;
    if (op->s_done) return ISSUED_ALL;
    if (op->g->canceled) {
        stream_end(r, op, -ECANCELED);
        return ISSUED_ALL;
    }
    if (r->inflight >= r->o.queue_depth) return BLOCKED_DEPTH;
    uint64_t limit = op->nranges == 0 ? op->block_size : op->s_buf ? op->s_buf->cap : 0;
    enum issue_result res = stream_room(r, op, limit);
    if (res != ISSUED_ALL || op->s_done) return res;
    if (op->nranges != 0) limit = op->s_buf->cap;
    ioreq *q = lumio__plan_req_new(r);
    if (!q) {
        stream_end(r, op, -ENOMEM);
        return ISSUED_ALL;
    }
    q->et.op = op;
    q->stream = true;
    q->mem = op->s_buf->mem + op->s_fill;
    q->start = op->s_pos;
    q->end = op->s_pos + LUMIO_MIN(limit - op->s_fill, op->max_io);
    q->need_end = q->end;
    op->s_reading = true;
    lumio__plan_req_submit(r, q);
    return BLOCKED_WAIT;
}

/* A non-blocking pipe or terminal with nothing to read: wait until it has
 * something (or its end) rather than spin on EAGAIN. */
static void stream_poll(lumio_ring *r, op_state *op) {
    ioreq *q = lumio__plan_req_new(r);
    if (!q) return; /* the next pass reads again */
    q->et.op = op;
    q->stream = true;
    q->poll = true;
    op->s_reading = true;
    lumio__plan_req_submit(r, q);
}

void lumio__stream_done(lumio_ring *r, ioreq *q, int res) {
    op_state *op = q->et.op;
    bool poll = q->poll;
    op->inflight--;
    op->s_reading = false;
    lumio__plan_req_free(r, q);
    if (poll) return; /* readable (or failed: the read says why) */
    if (res == -EAGAIN && op->seq) {
        stream_poll(r, op);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) return; /* the next pass reads again */
    if (res <= 0) {
        stream_end(r, op, res);
        return;
    }
    op->s_fill += (uint64_t)res;
    op->s_pos += (uint64_t)res;
    /* A block goes out full; from a pipe or a terminal, with whatever came,
     * as cat writes what each read returns. */
    if (op->nranges == 0 && (op->s_fill >= op->block_size || op->seq) && !stream_block(r, op, 0)) {
        op->s_done = true;
        lumio__engine_stream_end(r, op);
    }
}
