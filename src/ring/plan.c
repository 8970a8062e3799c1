/* The planner: opens files, resolves ranges against the file size, turns
 * ranges into reads and writes (merging nearby ones, splitting large ones,
 * aligning for O_DIRECT), and finishes them as the backend hands them back:
 * short transfers are resubmitted, end of file is noticed, errors stay with
 * the range they belong to. */
#include "ring/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void op_opened(lumio_ring *r, op_state *op);
static void op_check_loaded(lumio_ring *r, op_state *op);

/* ---- request allocation --------------------------------------------------- */

ioreq *lumio__plan_req_new(lumio_ring *r) {
    if (!r->free_reqs) {
        enum { SLAB = 256 };
        ioreq *slab = calloc(SLAB, sizeof(ioreq));
        void **slabs = slab ? realloc(r->slabs, (r->nslabs + 1) * sizeof(void *)) : NULL;
        if (!slabs) {
            free(slab);
            return NULL;
        }
        r->slabs = slabs;
        r->slabs[r->nslabs++] = slab;
        for (int i = 0; i < SLAB; i++) {
            slab[i].next_free = r->free_reqs;
            r->free_reqs = &slab[i];
        }
    }
    ioreq *q = r->free_reqs;
    r->free_reqs = q->next_free;
    memset(q, 0, sizeof(*q));
    q->et.role = ROLE_IO;
    return q;
}

void lumio__plan_req_free(lumio_ring *r, ioreq *q) {
    q->next_free = r->free_reqs;
    r->free_reqs = q;
}

void lumio__plan_free_reqs(lumio_ring *r) {
    for (size_t i = 0; i < r->nslabs; i++) free(r->slabs[i]);
    free(r->slabs);
    r->slabs = NULL;
    r->nslabs = 0;
    r->free_reqs = NULL;
}

void lumio__plan_req_submit(lumio_ring *r, ioreq *q) {
    op_state *op = q->et.op;
    q->et.t.kind = q->poll ? TASK_POLL : op->kind == LUMIO_OP_GET ? TASK_READ : TASK_WRITE;
    q->et.t.fd = op->fd;
    q->et.t.fixed = op->fixed;
    q->et.t.buf = q->mem;
    q->et.t.len = q->end - q->start;
    /* A file that cannot seek (a pipe, a terminal) is read at its position. */
    q->et.t.off = q->stream && op->seq ? UINT64_MAX : q->start;
    op->inflight++;
    if (q->poll)
        ; /* not I/O */
    else if (op->kind == LUMIO_OP_GET)
        r->stats.reads++;
    else
        r->stats.writes++;
    lumio__engine_queue(r, &q->et);
}

/* ---- opening and resolving ------------------------------------------------ */

/* Prepare one of the op's own tasks (open, statx, fsync, close). */
static etask *op_task(op_state *op, etask *et, enum role role, task_kind kind) {
    memset(&et->t, 0, sizeof et->t);
    et->role = role;
    et->op = op;
    et->t.kind = kind;
    et->t.path = op->path;
    et->t.fd = op->fd;
    et->t.fixed = op->fixed;
    return et;
}

static bool needs_size(const op_state *op) {
    if (op->kind != LUMIO_OP_GET) return false;
    if (op->direct || op->nranges == 0) return true;
    for (uint32_t i = 0; i < op->nranges; i++)
        if (op->ranges[i].req_off < 0 || op->ranges[i].req_len == LUMIO_WHOLE) return true;
    return false;
}

static int open_flags(const op_state *op) {
    int nofollow = op->flags & LUMIO_OP_NOFOLLOW ? O_NOFOLLOW : 0;
    if (op->kind == LUMIO_OP_GET) return O_RDONLY | nofollow | (op->direct ? O_DIRECT : 0);
    int f = O_WRONLY | nofollow;
    if (op->flags & LUMIO_OP_CREATE) f |= O_CREAT;
    if (op->flags & LUMIO_OP_TRUNCATE) f |= O_TRUNC;
    if (op->flags & LUMIO_OP_EXCL) f |= O_EXCL | O_CREAT;
    return f;
}

static void queue_open(lumio_ring *r, op_state *op) {
    etask *et = op_task(op, &op->open_task, ROLE_OPEN, TASK_OPEN);
    et->t.open_flags = open_flags(op);
    et->t.mode = op->mode ? op->mode : 0644;
    op->opening++;
    lumio__engine_queue(r, et);
}

void lumio__plan_start_open(lumio_ring *r, op_state *op) {
    op->phase = OP_OPENING;
    r->opening++;
    if (op->g->canceled) {             /* no file opened: the op ends at once */
        if (op->path) r->files_open++; /* as lumio__engine_op_closed will count it */
        op_opened(r, op);
        op_check_loaded(r, op);
        return;
    }
    op->remote = op->path && lumio_remote_is_url(op->path);
    op->direct = op->kind == LUMIO_OP_GET && r->o.direct && !op->remote;
    op->gap = r->o.coalesce_gap;
    op->cmax = r->o.coalesce_max;
    op->max_io = r->o.max_io_size;
    if (op->remote) lumio__backend_remote_sizes(r->remote, &op->gap, &op->cmax, &op->max_io);
    op->need_stat = needs_size(op);
    if (op->path) {
        r->files_open++;
        queue_open(r, op);
    }
    if (op->need_stat) {
        etask *et = op_task(op, &op->stat_task, ROLE_STATX, TASK_STATX);
        et->t.stx = &op->stx;
        op->opening++;
        lumio__engine_queue(r, et);
    }
    if (op->opening == 0) { /* a caller's fd whose size is not needed */
        op_opened(r, op);
        op_check_loaded(r, op);
    }
}

static int cmp_node_off(const void *a, const void *b) {
    const node *x = *(node *const *)a, *y = *(node *const *)b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x < y ? -1 : (x > y); /* stable: submission order */
}

/* Ranges are sorted only to find neighbours to merge, and callers often
 * submit them in file order already: skip the sort then. */
static bool sorted(const op_state *op) {
    for (uint32_t i = 1; i < op->nranges; i++)
        if (op->ranges[i].off < op->ranges[i - 1].off) return false;
    return true;
}

static void resolve_range(op_state *op, node *n) {
    n->eof_at = UINT64_MAX;
    bool allow_short = n->flags & LUMIO_RANGE_ALLOW_SHORT;
    if (op->kind == LUMIO_OP_PUT) {
        n->off = (uint64_t)n->req_off;
        n->len = n->req_len;
        return;
    }
    uint64_t size = op->size;
    /* Without a size there is no end to count from; a pipe has no offsets. */
    if (op->seq || (!op->have_size && (n->req_off < 0 || n->req_len == LUMIO_WHOLE))) {
        n->off = n->req_off < 0 ? 0 : (uint64_t)n->req_off;
        n->len = 0;
        n->result = -ESPIPE;
        return;
    }
    if (n->req_off >= 0) {
        n->off = (uint64_t)n->req_off;
    } else if ((uint64_t)(-(n->req_off + 1)) + 1 <= size) {
        n->off = size - ((uint64_t)(-(n->req_off + 1)) + 1);
    } else if (allow_short) {
        n->off = 0;
        n->cflags |= LUMIO_CQE_SHORT;
    } else {
        n->off = 0;
        n->len = n->req_len == LUMIO_WHOLE ? 0 : n->req_len;
        n->result = LUMIO_E_RANGE;
        return;
    }
    if (n->req_len == LUMIO_WHOLE) {
        n->len = n->off <= size ? size - n->off : 0;
        if (n->off > size && !allow_short) n->result = LUMIO_E_RANGE;
        return;
    }
    n->len = n->req_len;
    if (op->have_size && (n->off > size || n->len > size - n->off)) {
        if (allow_short) {
            n->len = n->off < size ? size - n->off : 0;
            n->cflags |= LUMIO_CQE_SHORT;
        } else {
            n->result = LUMIO_E_RANGE;
        }
    }
}

static int expand_blocks(op_state *op) {
    uint64_t bs = op->block_size;
    uint64_t count = op->size / bs + (op->size % bs != 0);
    if (count > UINT32_MAX) return -EOVERFLOW;
    node *ns = count ? calloc(count, sizeof(node)) : NULL;
    if (count && !ns) return -ENOMEM;
    for (uint64_t i = 0; i < count; i++) {
        ns[i].op = op;
        ns[i].index = (uint32_t)i;
        ns[i].req_off = (int64_t)(i * bs);
        ns[i].req_len = LUMIO_MIN(bs, op->size - i * bs);
        ns[i].user_data = op->user_data + i;
    }
    op->ranges = ns;
    op->nranges = (uint32_t)count;
    op->own_ranges = true;
    return 0;
}

/* The open (and statx) of an op finished: resolve its ranges, or fail it. */
static void op_opened(lumio_ring *r, op_state *op) {
    r->opening--;
    if (op->g->canceled && !op->error) op->error = -ECANCELED;
    if (!op->error && op->need_stat) {
        op->have_size = true;
        op->size = op->stx.stx_size;
        if (op->kind == LUMIO_OP_GET && !op->remote) lumio__stream_classify(r, op);
        if (op->direct) {
            uint32_t a = 4096;
            if ((op->stx.stx_mask & STATX_DIOALIGN) && op->stx.stx_dio_offset_align)
                a = LUMIO_MAX(op->stx.stx_dio_offset_align, op->stx.stx_dio_mem_align);
            op->align = a;
        }
        if (op->kind == LUMIO_OP_GET && op->nranges == 0 && op->block_size && !op->stream)
            op->error = expand_blocks(op);
    }
    if (!op->error && op->stream) {
        op->resolved = true;
        op->phase = OP_ISSUING;
        /* In blocks, the op stays unresolved for its group until the end of
         * the file: the group cannot end before it. */
        if (op->nranges) lumio__engine_op_resolved(r, op);
        lumio__engine_add_issue(r, op);
        return;
    }
    if (!op->error) {
        for (uint32_t i = 0; i < op->nranges; i++) resolve_range(op, &op->ranges[i]);
        if (op->nranges) {
            op->order = malloc(op->nranges * sizeof(node *));
            if (!op->order)
                op->error = -ENOMEM;
            else {
                for (uint32_t i = 0; i < op->nranges; i++) op->order[i] = &op->ranges[i];
                if (op->kind == LUMIO_OP_GET && !op->g->in_order && op->gap && !sorted(op))
                    qsort(op->order, op->nranges, sizeof(node *), cmp_node_off);
            }
        }
        op->writes_pending = op->kind == LUMIO_OP_PUT ? op->nranges : 0;
    }
    op->resolved = true;
    if (op->error || (op->kind == LUMIO_OP_PUT && op->nranges == 0)) {
        op->opnode.result = op->error;
        op->phase = OP_DRAINING;
        lumio__engine_op_resolved(r, op);
        lumio__engine_node_finished(r, &op->opnode);
        lumio__engine_op_fully_issued(r, op);
        return;
    }
    op->phase = OP_ISSUING;
    lumio__engine_op_resolved(r, op);
    lumio__engine_add_issue(r, op);
}

/* ---- issuing -------------------------------------------------------------- */

static void finish_range(lumio_ring *r, node *n);

/* A range done without I/O: empty, or failed while resolving. */
static void finish_now(lumio_ring *r, node *n) {
    n->planned = true;
    n->parts_left = 0;
    if (n->result == 0) n->data = n->dst;
    finish_range(r, n);
}

/* One part of a range that is split (too big for one request, or bounced
 * through the pool for O_DIRECT). Returns false when the pool is full. */
static bool issue_part(lumio_ring *r, op_state *op, node *n, uint64_t base, uint64_t end,
                       uint64_t chunk, uint8_t *mem, bool bounce) {
    uint64_t pstart = base + op->part_off;
    uint64_t pend = LUMIO_MIN(pstart + chunk, end);
    lumio_buffer *b = NULL;
    if (bounce && !(b = lumio__pool_get(r->pool, pend - pstart))) return false;
    ioreq *q = lumio__plan_req_new(r);
    if (!q) { /* out of memory: the range fails, the loop finishes it */
        lumio_buffer_release(b);
        n->result = -ENOMEM;
        return true;
    }
    q->et.op = op;
    q->ranges = &op->order[op->cursor];
    q->nr = 1;
    q->start = pstart;
    q->end = pend;
    q->need_end = LUMIO_MIN(pend, n->off + n->len);
    if (bounce) {
        q->buf = b;
        q->mem = b->mem;
        q->bounce = n;
        q->bounce_base = pstart;
    } else {
        q->mem = mem + op->part_off;
    }
    n->parts_left++;
    op->part_off += pend - pstart;
    if (pstart + (pend - pstart) >= end) {
        n->planned = true;
        op->cursor++;
        op->part_off = 0;
        op->part_buf = NULL;
    }
    lumio__plan_req_submit(r, q);
    return true;
}

/* Plan the range at the cursor into the pool: merged with its neighbours when
 * they are close, as one request when it fits, else split. */
static enum issue_result issue_pooled(lumio_ring *r, op_state *op, node *n) {
    uint64_t a = op->direct ? op->align : 1;
    if (op->part_off == 0 && !op->part_buf) {
        uint64_t span_start = n->off, span_end = n->off + n->len;
        uint32_t k = 1;
        if (op->gap && n->len < op->cmax) {
            while (op->cursor + k < op->nranges) {
                node *m = op->order[op->cursor + k];
                if (m->dst || m->result < 0 || m->len == 0 || m->off < span_start) break;
                if (m->off > span_end && m->off - span_end >= op->gap) break;
                uint64_t e = LUMIO_MAX(span_end, m->off + m->len);
                /* Not past one request's size: a split span serves one range. */
                if (e - span_start > LUMIO_MIN(op->cmax, op->max_io)) break;
                span_end = e;
                k++;
            }
        }
        uint64_t astart = lumio_align_down(span_start, a), aend = lumio_align_up(span_end, a);
        if (!lumio__pool_fits(r->pool, aend - astart)) {
            n->result = LUMIO_E_TOOBIG;
            finish_now(r, n);
            op->cursor++;
            return ISSUED_ALL;
        }
        lumio_buffer *b = lumio__pool_get(r->pool, aend - astart);
        if (!b) return BLOCKED_POOL;
        if (aend - astart > op->max_io) { /* one range, split into parts */
            n->buf = b;
            n->data = b->mem + (n->off - astart);
            op->part_buf = b;
            op->part_base = astart;
            op->part_end = aend;
        } else {
            ioreq *q = lumio__plan_req_new(r);
            if (!q) { /* out of memory: the range fails */
                lumio_buffer_release(b);
                n->result = -ENOMEM;
                return ISSUED_ALL;
            }
            if (k > 1) {
                lumio__buffer_ref(b, k - 1);
                r->stats.ranges_coalesced += k;
            }
            q->et.op = op;
            q->ranges = &op->order[op->cursor];
            q->nr = k;
            q->start = astart;
            q->end = aend;
            q->need_end = span_end;
            q->mem = b->mem;
            for (uint32_t i = 0; i < k; i++) {
                node *m = op->order[op->cursor + i];
                m->buf = b;
                m->data = b->mem + (m->off - astart);
                m->parts_left = 1;
                m->planned = true;
            }
            op->cursor += k;
            lumio__plan_req_submit(r, q);
            return ISSUED_ALL;
        }
    }
    issue_part(r, op, n, op->part_base, op->part_end, LUMIO_MAX(a, lumio_align_down(op->max_io, a)),
               op->part_buf->mem, false);
    return ISSUED_ALL;
}

static enum issue_result issue_op(lumio_ring *r, op_state *op) {
    if (op->stream) return lumio__stream_issue(r, op);
    while (op->cursor < op->nranges) {
        if (r->inflight >= r->o.queue_depth) return BLOCKED_DEPTH;
        node *n = op->order[op->cursor];
        if (op->g->canceled && n->result == 0) n->result = -ECANCELED;
        if (n->result < 0 || n->len == 0) {
            bool started = n->parts_left || n->planned || op->part_off || op->part_buf;
            op->cursor++;
            if (!started) { /* failed while resolving, or empty: no I/O */
                finish_now(r, n);
                continue;
            }
            /* A part failed while the range was being split: issue no more
             * of it; the last part in flight (or this) finishes it. */
            n->planned = true;
            op->part_off = 0;
            op->part_buf = NULL;
            if (n->parts_left == 0) finish_range(r, n);
            continue;
        }
        if (op->kind == LUMIO_OP_PUT) {
            issue_part(r, op, n, n->off, n->off + n->len, op->max_io, n->dst, false);
            continue;
        }
        if (!n->dst) {
            if (issue_pooled(r, op, n) == BLOCKED_POOL) return BLOCKED_POOL;
            continue;
        }
        n->data = n->dst;
        uint64_t a = op->direct ? op->align : 1;
        bool aligned = (((uintptr_t)n->dst | n->off | n->len) & (a - 1)) == 0;
        if (aligned) {
            issue_part(r, op, n, n->off, n->off + n->len,
                       LUMIO_MAX(a, lumio_align_down(op->max_io, a)), n->dst, false);
        } else {
            /* O_DIRECT into unaligned memory: aligned reads into pool buffers,
             * copied into place as they land. */
            uint64_t base = lumio_align_down(n->off, a);
            uint64_t end = lumio_align_up(n->off + n->len, a);
            uint64_t chunk = LUMIO_MAX(
                a, lumio_align_down(LUMIO_MIN(r->o.coalesce_max ? r->o.coalesce_max : (1u << 20),
                                              r->o.max_io_size),
                                    a));
            if (!issue_part(r, op, n, base, end, chunk, NULL, true)) return BLOCKED_POOL;
        }
    }
    return ISSUED_ALL;
}

/* Issue requests for the ops that have them, in FIFO order, until the queue
 * depth or the pool stops us. In an in-order group, an op issues only once
 * every op before it has issued everything: then the range the consumer
 * waits for is always in flight, and held-back data can never starve it of
 * buffers. */
void lumio__plan_issue(lumio_ring *r) {
    r->pool_blocked = false;
again:
    for (op_state *prev = NULL, *op = r->issue_head; op;) {
        if (r->inflight >= r->o.queue_depth) return;
        group *g = op->g;
        /* Past a read stopped at the pool cap, only writes go on: they need
         * no buffer, and they are often what gives buffers back (a copy). */
        bool skip = (g->in_order && op->index != g->issue_cursor) ||
                    (r->pool_blocked && op->kind == LUMIO_OP_GET && !g->canceled);
        if (skip) {
            prev = op;
            op = op->next;
            continue;
        }
        enum issue_result res = issue_op(r, op);
        if (res == BLOCKED_POOL) {
            r->pool_blocked = true;
            r->stats.pool_waits++;
            prev = op;
            op = op->next;
            continue;
        }
        if (res == BLOCKED_DEPTH) return;
        if (res == BLOCKED_WAIT) {
            prev = op;
            op = op->next;
            continue;
        }
        /* Fully issued: off the list. */
        op_state *next = op->next;
        if (prev)
            prev->next = next;
        else
            r->issue_head = next;
        if (r->issue_tail == op) r->issue_tail = prev;
        op->next = NULL;
        op->phase = OP_DRAINING;
        bool advanced = lumio__engine_op_fully_issued(r, op);
        op_check_loaded(r, op);
        if (advanced && !r->pool_blocked) goto again;
        op = next;
    }
}

/* ---- finishing ------------------------------------------------------------ */

/* A range checked against the file's size met its end sooner: the file
 * shrank while it was read, which the bare code would not say. */
static void note_shrank(op_state *op, uint64_t eof_at) {
    if (op->remote || op->remote_err || !op->have_size) return;
    char text[1200];
    snprintf(text, sizeof text,
             "%s: the file shrank while it was read (it ends at byte %llu, its size was %llu)",
             op->path ? op->path : "(fd)", (unsigned long long)eof_at,
             (unsigned long long)op->size);
    op->remote_err = strdup(text);
    op->remote_err_code = LUMIO_E_RANGE;
}

static void finish_range(lumio_ring *r, node *n) {
    op_state *op = n->op;
    if (op->kind == LUMIO_OP_GET) {
        if (n->result == 0 && n->eof_at < n->off + n->len) {
            if (n->flags & LUMIO_RANGE_ALLOW_SHORT) {
                n->len = n->eof_at > n->off ? n->eof_at - n->off : 0;
                n->cflags |= LUMIO_CQE_SHORT;
            } else {
                n->result = LUMIO_E_RANGE;
                note_shrank(op, n->eof_at);
            }
        }
        if (n->result < 0) {
            lumio_buffer_release(n->buf);
            n->buf = NULL;
            n->data = NULL;
        } else {
            r->stats.bytes_read += n->len;
        }
        lumio__engine_node_finished(r, n);
        return;
    }
    if (n->result == 0) n->data = n->dst, r->stats.bytes_written += n->len;
    if (!(op->flags & LUMIO_OP_FSYNC)) {
        lumio__engine_node_finished(r, n);
        return;
    }
    /* With FSYNC, ranges complete together once the fsync is done. */
    if (--op->writes_pending == 0) lumio__plan_after_writes(r, op);
}

void lumio__plan_after_writes(lumio_ring *r, op_state *op) {
    op->inflight++;
    lumio__engine_queue(r, op_task(op, &op->end_task, ROLE_FSYNC, TASK_FSYNC));
}

static void fsync_done(lumio_ring *r, op_state *op, int res) {
    op->inflight--;
    for (uint32_t i = 0; i < op->nranges; i++) {
        node *n = &op->ranges[i];
        if (n->result == 0 && res < 0) n->result = res;
        lumio__engine_node_finished(r, n);
    }
}

static void io_done(lumio_ring *r, ioreq *q, int res) {
    if (q->stream) {
        lumio__stream_done(r, q, res);
        return;
    }
    op_state *op = q->et.op;
    op->inflight--;
    bool get = op->kind == LUMIO_OP_GET;
    if (res == -EAGAIN || res == -EINTR) {
        lumio__plan_req_submit(r, q); /* transient: try the same request again */
        return;
    }
    if (res > 0) {
        q->start += (uint64_t)res;
        q->mem += res;
        uint64_t want = get ? q->need_end : q->end;
        if (q->start < want) {
            /* Short. For O_DIRECT an unaligned stop is the end of the file;
             * otherwise ask for the rest. */
            if (!(get && op->direct && (q->start & (op->align - 1)))) {
                r->stats.short_retries++;
                lumio__plan_req_submit(r, q);
                return;
            }
            res = 0;
        }
    }
    int err = res < 0 ? res : 0;
    if (res == 0 && q->start < (get ? q->need_end : q->end)) {
        if (get)
            for (uint32_t i = 0; i < q->nr; i++)
                q->ranges[i]->eof_at = LUMIO_MIN(q->ranges[i]->eof_at, q->start);
        else
            err = -EIO; /* a write that makes no progress */
    }
    if (q->bounce && !err) {
        node *n = q->bounce;
        uint64_t lo = LUMIO_MAX(q->bounce_base, n->off);
        uint64_t hi = LUMIO_MIN(q->start, n->off + n->len);
        if (hi > lo) memcpy(n->dst + (lo - n->off), q->buf->mem + (lo - q->bounce_base), hi - lo);
    }
    if (q->bounce) lumio_buffer_release(q->buf);
    for (uint32_t i = 0; i < q->nr; i++) {
        node *n = q->ranges[i];
        if (err && n->result == 0) n->result = err;
        if (--n->parts_left == 0 && n->planned) finish_range(r, n);
    }
    lumio__plan_req_free(r, q);
}

static void op_check_loaded(lumio_ring *r, op_state *op) {
    if (op->phase != OP_DRAINING || op->inflight) return;
    if (op->kind == LUMIO_OP_PUT && (op->flags & LUMIO_OP_FSYNC) && op->writes_pending) return;
    op->phase = OP_CLOSING;
    lumio__engine_op_loaded(r, op);
    if (!op->owned) {
        op->phase = OP_CLOSED;
        lumio__engine_op_closed(r, op);
        return;
    }
    lumio__engine_queue(r, op_task(op, &op->end_task, ROLE_CLOSE, TASK_CLOSE));
}

/* Whether a file open in the ring will be closed without this op's help, so
 * that an op refused a descriptor (EMFILE, ENFILE) can wait for its slot:
 * not one of its own group's later ops when the group issues in order. */
static bool open_later(lumio_ring *r, const op_state *op) {
    if (op->g->canceled) return false;
    for (group *g = r->groups_head; g; g = g->next)
        for (uint32_t i = 0; i < g->nops; i++) {
            const op_state *o = &g->ops[i];
            /* Open, or being opened (whose open may yet succeed). */
            bool holds = o->owned || (o->phase == OP_OPENING && !o->open_retry && o->path);
            if (o == op || !holds || o->remote || o->phase < OP_OPENING || o->phase > OP_CLOSING)
                continue;
            if (g == op->g && g->in_order && o->index > op->index) continue;
            return true;
        }
    return false;
}

static bool my_turn(const op_state *op) {
    return op->g->in_order && op->index == op->g->issue_cursor;
}

/* An op of an in-order group that waits for an earlier one (not yet read)
 * can wait for its slot: that one will get one (below). */
static bool earlier_pending(const op_state *op) {
    if (!op->g->in_order) return false;
    for (uint32_t i = op->g->issue_cursor; i < op->index; i++)
        if (!op->g->ops[i].fully_issued) return true;
    return false;
}

/* A later op of the group, opened but not yet started (it waits for this
 * one), can give its descriptor back and be opened again later: only a
 * regular file with a size, which opening again gives back as it was. A
 * FIFO, a pipe or a device would lose what it held (and a FIFO whose writer
 * is gone would never open again). */
static bool stealable(const op_state *o) {
    return o->kind == LUMIO_OP_GET && o->phase == OP_ISSUING && o->owned && !o->fixed &&
           !o->remote && o->path && !o->error && o->inflight == 0 && o->cursor == 0 &&
           o->have_size && !o->nosize && !o->stream && !o->seq && o->part_off == 0 &&
           !o->part_buf && !o->s_reading && !o->s_buf && o->s_count == 0;
}

static bool opening_later(const op_state *op) {
    for (uint32_t i = op->index + 1; i < op->g->nops; i++) {
        const op_state *o = &op->g->ops[i];
        if (o->phase == OP_OPENING && !o->open_retry) return true;
    }
    return false;
}

/* Undo an op's open: off the issue list, its ranges as submitted, its file
 * closed, back to the open queue. */
static void unopen(lumio_ring *r, op_state *op) {
    for (op_state *prev = NULL, *p = r->issue_head; p; prev = p, p = p->next) {
        if (p != op) continue;
        if (prev)
            prev->next = p->next;
        else
            r->issue_head = p->next;
        if (r->issue_tail == p) r->issue_tail = prev;
        break;
    }
    group *g = op->g;
    if (!(op->stream && op->nranges == 0)) { /* counted by lumio__engine_op_resolved */
        g->unresolved++;
        g->undelivered -= op->nranges;
        g->total_nodes -= op->nranges;
    }
    if (op->own_ranges) {
        free(op->ranges);
        op->ranges = NULL;
        op->nranges = 0;
        op->own_ranges = false;
    }
    for (uint32_t i = 0; i < op->nranges; i++) {
        node *n = &op->ranges[i], keep = *n;
        memset(n, 0, sizeof(*n));
        n->op = op;
        n->index = keep.index;
        n->req_off = keep.req_off;
        n->req_len = keep.req_len;
        n->user_data = keep.user_data;
        n->dst = keep.dst;
        n->flags = keep.flags;
    }
    free(op->order);
    op->order = NULL;
    op->resolved = op->have_size = op->nosize = op->stream = op->seq = false;
    op->size = op->s_pos = 0;
    op->s_done = false;
    close(op->fd);
    op->fd = -1;
    op->owned = false;
    op->phase = OP_IDLE;
    r->files_open--;
    lumio__engine_requeue_open(r, op);
}

/* The op its in-order group waits for was refused a descriptor, and the
 * group's later ops hold them: take one back from the last of them. */
static bool steal_slot(lumio_ring *r, const op_state *turn) {
    for (uint32_t i = turn->g->nops; i-- > turn->index + 1;) {
        op_state *o = &turn->g->ops[i];
        if (!stealable(o)) continue;
        unopen(r, o);
        return true;
    }
    return false;
}

/* Back to the open queue at once, in its turn, so that no later op takes
 * the slot it waits for (the pump starts it again once its statx is back);
 * and fewer files open at once from now on: half as many each time, down to
 * what is open now (which the order of completions may understate), so that
 * opens stop failing soon. */
static void requeue_open(lumio_ring *r, op_state *op) {
    op->open_retry = true;
    r->files_open--;
    r->fd_cap = LUMIO_MAX(1u, LUMIO_MIN(r->fd_cap, LUMIO_MAX(r->files_open, r->fd_cap / 2)));
    lumio__engine_requeue_open(r, op);
}

/* Its open and statx are back: the op can be opened again. */
static void retry_ready(lumio_ring *r, op_state *op) {
    op->open_retry = false;
    op->error = 0;
    op->phase = OP_IDLE;
    r->opening--;
}

void lumio__plan_task_done(lumio_ring *r, etask *et) {
    op_state *op = et->op;
    int res = et->t.res;
    if (et->t.detail) { /* keep the first failure's text for the op */
        if (!op->remote_err) {
            op->remote_err = et->t.detail;
            op->remote_err_code = et->t.res;
        } else
            free(et->t.detail);
        et->t.detail = NULL;
    }
    switch (et->role) {
    case ROLE_OPEN:
        op->opening--;
        if (res == -EINVAL && op->direct && !op->g->canceled) { /* no O_DIRECT here */
            op->direct = false;
            queue_open(r, op);
            return;
        }
        if ((res == -EMFILE || res == -ENFILE) && !op->remote && !op->g->canceled) {
            bool later = open_later(r, op) || earlier_pending(op) ||
                         (my_turn(op) && (steal_slot(r, op) || opening_later(op)));
            /* With nothing else open, once more: the files that held the
             * descriptors may have closed since (their completions came
             * first), but not twice. */
            if (later || !op->open_alone) {
                op->open_alone = !later;
                requeue_open(r, op);
                if (op->opening == 0) retry_ready(r, op);
                return;
            }
        }
        if (res < 0) {
            if (!op->error) op->error = res;
        } else {
            op->fd = res;
            op->owned = true;
            op->fixed = !op->remote && r->be->fixed_files;
            r->stats.files_opened++;
            /* Opens succeed again: the cap an EMFILE lowered grows back one
             * file at a time (a passing shortage, someone else's, must not
             * halve this ring's concurrency for good). */
            if (!op->remote && r->fd_cap < r->o.max_open_files && r->files_open >= r->fd_cap)
                r->fd_cap++;
        }
        if (op->opening == 0) op_opened(r, op);
        break;
    case ROLE_STATX:
        op->opening--;
        if (op->open_retry) {
            if (op->opening == 0) retry_ready(r, op);
            return;
        }
        if (res < 0 && !op->error) op->error = res;
        if (op->opening == 0) op_opened(r, op);
        break;
    case ROLE_IO:
        io_done(r, (ioreq *)et, res);
        break;
    case ROLE_FSYNC:
        fsync_done(r, op, res);
        break;
    case ROLE_CLOSE:
        op->phase = OP_CLOSED;
        op->owned = false;
        lumio__engine_op_closed(r, op);
        return;
    }
    if (op->resolved) op_check_loaded(r, op);
}
