/* The planner: opens files, resolves ranges against the file size, turns
 * ranges into reads and writes (merging nearby ones, splitting large ones,
 * aligning for O_DIRECT), and finishes them as the backend hands them back:
 * short transfers are resubmitted, end of file is noticed, errors stay with
 * the range they belong to. */
#include "ring/engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum issue_result { ISSUED_ALL, BLOCKED_DEPTH, BLOCKED_POOL };

static void op_opened(lumio_ring *r, op_state *op);
static void op_check_loaded(lumio_ring *r, op_state *op);

/* ---- request allocation --------------------------------------------------- */

static ioreq *req_new(lumio_ring *r) {
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

static void req_free(lumio_ring *r, ioreq *q) {
    q->next_free = r->free_reqs;
    r->free_reqs = q;
}

void plan_free_reqs(lumio_ring *r) {
    for (size_t i = 0; i < r->nslabs; i++) free(r->slabs[i]);
    free(r->slabs);
    r->slabs = NULL;
    r->nslabs = 0;
    r->free_reqs = NULL;
}

static void req_submit(lumio_ring *r, ioreq *q) {
    op_state *op = q->et.op;
    q->et.t.kind = op->kind == LUMIO_OP_GET ? TASK_READ : TASK_WRITE;
    q->et.t.fd = op->fd;
    q->et.t.fixed = op->fixed;
    q->et.t.buf = q->mem;
    q->et.t.len = q->end - q->start;
    q->et.t.off = q->start;
    op->inflight++;
    if (op->kind == LUMIO_OP_GET)
        r->stats.reads++;
    else
        r->stats.writes++;
    engine_queue(r, &q->et);
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
    if (op->kind == LUMIO_OP_GET) return O_RDONLY | (op->direct ? O_DIRECT : 0);
    int f = O_WRONLY;
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
    engine_queue(r, et);
}

void plan_start_open(lumio_ring *r, op_state *op) {
    op->phase = OP_OPENING;
    r->opening++;
    if (op->g->canceled) {             /* no file opened: the op ends at once */
        if (op->path) r->files_open++; /* as engine_op_closed will count it */
        op_opened(r, op);
        op_check_loaded(r, op);
        return;
    }
    op->remote = op->path && lumio_is_remote(op->path);
    op->direct = op->kind == LUMIO_OP_GET && r->o.direct && !op->remote;
    op->gap = r->o.coalesce_gap;
    op->cmax = r->o.coalesce_max;
    op->max_io = r->o.max_io_size;
    if (op->remote) backend_remote_sizes(r->remote, &op->gap, &op->cmax, &op->max_io);
    op->need_stat = needs_size(op);
    if (op->path) {
        r->files_open++;
        queue_open(r, op);
    }
    if (op->need_stat) {
        etask *et = op_task(op, &op->stat_task, ROLE_STATX, TASK_STATX);
        et->t.stx = &op->stx;
        op->opening++;
        engine_queue(r, et);
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
    if (n->req_off >= 0) {
        n->off = (uint64_t)n->req_off;
    } else if (!op->have_size) {
        n->result = LUMIO_E_RANGE; /* cannot happen: negative offsets ask for the size */
        return;
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
        if (op->direct) {
            uint32_t a = 4096;
            if ((op->stx.stx_mask & STATX_DIOALIGN) && op->stx.stx_dio_offset_align)
                a = LUMIO_MAX(op->stx.stx_dio_offset_align, op->stx.stx_dio_mem_align);
            op->align = a;
        }
        if (op->kind == LUMIO_OP_GET && op->nranges == 0 && op->block_size)
            op->error = expand_blocks(op);
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
        engine_op_resolved(r, op);
        engine_node_finished(r, &op->opnode);
        engine_op_fully_issued(r, op);
        return;
    }
    op->phase = OP_ISSUING;
    engine_op_resolved(r, op);
    engine_add_issue(r, op);
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
    if (bounce && !(b = lumio_pool_get(r->pool, pend - pstart))) return false;
    ioreq *q = req_new(r);
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
    req_submit(r, q);
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
        if (!lumio_pool_fits(r->pool, aend - astart)) {
            n->result = LUMIO_E_TOOBIG;
            finish_now(r, n);
            op->cursor++;
            return ISSUED_ALL;
        }
        lumio_buffer *b = lumio_pool_get(r->pool, aend - astart);
        if (!b) return BLOCKED_POOL;
        if (aend - astart > op->max_io) { /* one range, split into parts */
            n->buf = b;
            n->data = b->mem + (n->off - astart);
            op->part_buf = b;
            op->part_base = astart;
            op->part_end = aend;
        } else {
            ioreq *q = req_new(r);
            if (!q) { /* out of memory: the range fails */
                lumio_buffer_release(b);
                n->result = -ENOMEM;
                return ISSUED_ALL;
            }
            if (k > 1) {
                lumio_buffer_ref(b, k - 1);
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
            req_submit(r, q);
            return ISSUED_ALL;
        }
    }
    issue_part(r, op, n, op->part_base, op->part_end, LUMIO_MAX(a, lumio_align_down(op->max_io, a)),
               op->part_buf->mem, false);
    return ISSUED_ALL;
}

static enum issue_result issue_op(lumio_ring *r, op_state *op) {
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
void plan_issue(lumio_ring *r) {
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
        /* Fully issued: off the list. */
        op_state *next = op->next;
        if (prev)
            prev->next = next;
        else
            r->issue_head = next;
        if (r->issue_tail == op) r->issue_tail = prev;
        op->next = NULL;
        op->phase = OP_DRAINING;
        bool advanced = engine_op_fully_issued(r, op);
        op_check_loaded(r, op);
        if (advanced && !r->pool_blocked) goto again;
        op = next;
    }
}

/* ---- finishing ------------------------------------------------------------ */

static void finish_range(lumio_ring *r, node *n) {
    op_state *op = n->op;
    if (op->kind == LUMIO_OP_GET) {
        if (n->result == 0 && n->eof_at < n->off + n->len) {
            if (n->flags & LUMIO_RANGE_ALLOW_SHORT) {
                n->len = n->eof_at > n->off ? n->eof_at - n->off : 0;
                n->cflags |= LUMIO_CQE_SHORT;
            } else {
                n->result = LUMIO_E_RANGE;
            }
        }
        if (n->result < 0) {
            lumio_buffer_release(n->buf);
            n->buf = NULL;
            n->data = NULL;
        } else {
            r->stats.bytes_read += n->len;
        }
        engine_node_finished(r, n);
        return;
    }
    if (n->result == 0) n->data = n->dst, r->stats.bytes_written += n->len;
    if (!(op->flags & LUMIO_OP_FSYNC)) {
        engine_node_finished(r, n);
        return;
    }
    /* With FSYNC, ranges complete together once the fsync is done. */
    if (--op->writes_pending == 0) plan_after_writes(r, op);
}

void plan_after_writes(lumio_ring *r, op_state *op) {
    op->inflight++;
    engine_queue(r, op_task(op, &op->end_task, ROLE_FSYNC, TASK_FSYNC));
}

static void fsync_done(lumio_ring *r, op_state *op, int res) {
    op->inflight--;
    for (uint32_t i = 0; i < op->nranges; i++) {
        node *n = &op->ranges[i];
        if (n->result == 0 && res < 0) n->result = res;
        engine_node_finished(r, n);
    }
}

static void io_done(lumio_ring *r, ioreq *q, int res) {
    op_state *op = q->et.op;
    op->inflight--;
    bool get = op->kind == LUMIO_OP_GET;
    if (res == -EAGAIN || res == -EINTR) {
        req_submit(r, q); /* transient: try the same request again */
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
                req_submit(r, q);
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
    req_free(r, q);
}

static void op_check_loaded(lumio_ring *r, op_state *op) {
    if (op->phase != OP_DRAINING || op->inflight) return;
    if (op->kind == LUMIO_OP_PUT && (op->flags & LUMIO_OP_FSYNC) && op->writes_pending) return;
    op->phase = OP_CLOSING;
    engine_op_loaded(r, op);
    if (!op->owned) {
        op->phase = OP_CLOSED;
        engine_op_closed(r, op);
        return;
    }
    engine_queue(r, op_task(op, &op->end_task, ROLE_CLOSE, TASK_CLOSE));
}

void plan_task_done(lumio_ring *r, etask *et) {
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
        if (res < 0) {
            if (!op->error) op->error = res;
        } else {
            op->fd = res;
            op->owned = true;
            op->fixed = !op->remote && r->be->fixed_files;
            r->stats.files_opened++;
        }
        if (op->opening == 0) op_opened(r, op);
        break;
    case ROLE_STATX:
        op->opening--;
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
        engine_op_closed(r, op);
        return;
    }
    if (op->resolved) op_check_loaded(r, op);
}
