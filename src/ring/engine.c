/* The engine's front end: rings, groups, the compute stage, ordered delivery
 * and the wait loop that drives the backend. */
#include "ring/engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ring_wake(void *arg) {
    lumio_ring *r = arg;
    r->be->wake(r->be);
}

/* The remote backend, made on the first URL. */
static int ensure_remote(lumio_ring *r) {
    if (r->rbe) return 0;
    if (!r->remote) {
        int rc = lumio_remote_create(&r->remote, NULL);
        if (rc < 0) return rc;
        r->own_remote = true;
    }
    return lumio__backend_remote_create(&r->rbe, r->remote, ring_wake, r);
}

static int choose_backend(lumio_backend want, const backend_config *cfg, backend **out) {
    const char *env = getenv("LUMIO_BACKEND");
    if (want == LUMIO_BACKEND_AUTO && env && *env) {
        if (!strcmp(env, "threads"))
            want = LUMIO_BACKEND_THREADS;
        else if (!strcmp(env, "uring") || !strcmp(env, "io_uring"))
            want = LUMIO_BACKEND_URING;
    }
    if (want == LUMIO_BACKEND_THREADS) return lumio__backend_threads_create(out, cfg);
    int rc = lumio__backend_uring_create(out, cfg);
    if (rc == 0) return 0;
    if (want == LUMIO_BACKEND_URING) return rc == -ENOMEM ? rc : LUMIO_E_BACKEND;
    return lumio__backend_threads_create(out, cfg);
}

/* Zero is the default (docs/API.md); -1 turns merging off. */
static int ring_defaults(lumio_ring_options *o) {
    if (!lumio__zero(o->reserved, sizeof o->reserved)) {
        lumio__err_set(NULL, "lumio_ring_options: reserved fields are not zero");
        return -EINVAL;
    }
    if (o->backend > LUMIO_BACKEND_THREADS || o->coalesce_gap < -1) {
        lumio__err_set(NULL, "lumio_ring_options: %s is out of range",
                       o->coalesce_gap < -1 ? "coalesce_gap" : "backend");
        return -EINVAL;
    }
    if (o->coalesce_gap == 0) o->coalesce_gap = 4096;
    if (o->coalesce_gap < 0) o->coalesce_gap = 0;
    if (o->coalesce_max == 0) o->coalesce_max = 1u << 20;
    if (o->queue_depth == 0) o->queue_depth = 64;
    if (o->queue_depth > 4096) o->queue_depth = 4096;
    if (o->max_buffers == 0) o->max_buffers = 256;
    if (o->max_bytes == 0) o->max_bytes = 256ull << 20;
    if (o->max_open_files == 0) o->max_open_files = 128;
    if (o->max_open_files > 4096) o->max_open_files = 4096;
    if (o->workers == 0) o->workers = lumio__ncores();
    /* The kernel moves at most 2 GiB - 4 KiB in one read or write. */
    if (o->max_io_size == 0) o->max_io_size = 1ull << 30;
    if (o->max_io_size > 0x7ffff000u) o->max_io_size = 0x7ffff000u;
    if (o->max_io_size < 4096) o->max_io_size = 4096;
    return 0;
}

static int ring_create_impl(lumio_ring **out, const lumio_ring_options *opts) {
    if (!out) return -EINVAL;
    *out = NULL;
    lumio_ring_options o = {0};
    if (opts) o = *opts;
    int rc = ring_defaults(&o);
    if (rc < 0) return rc;

    lumio_ring *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    r->o = o;
    r->fd_cap = o.max_open_files;
    lumio__err_init(&r->err);
    r->remote = o.remote; /* the caller's client, if any */
    pthread_mutex_init(&r->mu, NULL);
    backend_config cfg = {.depth = o.queue_depth,
                          .io_threads = o.io_threads,
                          .max_open_files = o.max_open_files,
                          .sqpoll = o.sqpoll != 0,
                          .fixed_files = o.fixed_files != 0};
    rc = choose_backend(o.backend, &cfg, &r->be);
    if (rc < 0) goto fail;
    rc = lumio__pool_create(&r->pool, o.max_buffers, o.max_bytes, ring_wake, r);
    if (rc < 0) goto fail;
    *out = r;
    return 0;
fail:
    lumio__err_set(NULL, "lumio_ring_create: %s",
                   rc == LUMIO_E_BACKEND ? "io_uring is not usable here" : lumio_strerror(rc));
    lumio_ring_close(r);
    return rc;
}

lumio_backend lumio_ring_backend(const lumio_ring *r) {
    return strcmp(r->be->name, "threads") ? LUMIO_BACKEND_URING : LUMIO_BACKEND_THREADS;
}

/* ---- groups ----------------------------------------------------------------- */

static void group_free(group *g) {
    for (uint32_t i = 0; i < g->nops; i++) {
        op_state *op = &g->ops[i];
        if (op->own_ranges) free(op->ranges);
        free(op->remote_err);
        free(op->order);
    }
    free(g->range_mem);
    free(g->strings);
    free(g->ops);
    free(g);
}

static void activate(lumio_ring *r, group *g) {
    g->active = true;
    for (uint32_t i = 0; i < g->nops; i++) {
        op_state *op = &g->ops[i];
        op->next = NULL;
        if (r->open_tail)
            r->open_tail->next = op;
        else
            r->open_head = op;
        r->open_tail = op;
    }
}

static bool loading_done(const group *g) {
    return g->active && g->ops_loading == 0;
}

/* With ordered groups, the oldest group not yet loaded is the one loading. */
static void activate_next(lumio_ring *r) {
    for (group *g = r->groups_head; g; g = g->next) {
        if (!g->active) {
            activate(r, g);
            if (!loading_done(g)) return;
        } else if (!loading_done(g)) {
            return;
        }
    }
}

__attribute__((format(printf, 3, 4))) static int submit_error(lumio_ring *r, int code,
                                                              const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    lumio__err_set(&r->err, "submit: %s", what);
    return code;
}

static int validate(lumio_ring *r, const lumio_op *ops, size_t nops) {
    if (nops > UINT32_MAX - 1) return submit_error(r, -EINVAL, "too many operations (%zu)", nops);
    for (size_t i = 0; i < nops; i++) {
        const lumio_op *op = &ops[i];
        if (op->kind != LUMIO_OP_GET && op->kind != LUMIO_OP_PUT)
            return submit_error(r, -EINVAL, "op %zu: unknown kind", i);
        if (!lumio__zero(op->reserved, sizeof op->reserved))
            return submit_error(r, -EINVAL, "op %zu: reserved fields are not zero", i);
        if (!op->path && op->fd < 0)
            return submit_error(r, -EBADF, "op %zu: neither a path nor a file descriptor", i);
        if (op->nranges && !op->ranges)
            return submit_error(r, -EINVAL, "op %zu: nranges is set but ranges is NULL", i);
        if (op->nranges > UINT32_MAX - 1)
            return submit_error(r, -EINVAL, "op %zu: too many ranges", i);
        if (op->path && lumio_remote_is_url(op->path)) {
            if (op->kind == LUMIO_OP_PUT)
                return submit_error(r, LUMIO_E_UNSUPPORTED,
                                    "op %zu: writing to a remote object is not supported", i);
            int rc = ensure_remote(r);
            if (rc < 0) return submit_error(r, rc, "op %zu: cannot start the remote client", i);
        }
        for (size_t j = 0; j < op->nranges; j++) {
            const lumio_range *rg = &op->ranges[j];
            if (!lumio__zero(rg->reserved, sizeof rg->reserved))
                return submit_error(r, -EINVAL, "op %zu range %zu: reserved fields are not zero", i,
                                    j);
            if (op->kind == LUMIO_OP_PUT) {
                if (!rg->buf && rg->length)
                    return submit_error(r, -EINVAL, "op %zu range %zu: a put needs a buffer", i, j);
                if (rg->offset < 0 || rg->length == LUMIO_WHOLE)
                    return submit_error(
                        r, -EINVAL,
                        "op %zu range %zu: a put needs a non-negative offset and a length", i, j);
            } else if (rg->buf && rg->length == LUMIO_WHOLE) {
                return submit_error(r, -EINVAL,
                                    "op %zu range %zu: a destination buffer needs a length", i, j);
            }
            if (rg->length != LUMIO_WHOLE && rg->offset >= 0 &&
                rg->length > (uint64_t)INT64_MAX - (uint64_t)rg->offset)
                return submit_error(r, -EOVERFLOW, "op %zu range %zu: offset + length overflows", i,
                                    j);
        }
    }
    return 0;
}

int lumio_ring_submit(lumio_ring *r, const lumio_op *ops, size_t nops,
                      const lumio_group_options *go, uint64_t *group_out) {
    if (!r || (nops && !ops)) return -EINVAL;
    if (go && !lumio__zero(go->reserved, sizeof go->reserved))
        return submit_error(r, -EINVAL, "lumio_group_options: reserved fields are not zero");
    int rc = validate(r, ops, nops);
    if (rc < 0) return rc;
    group *g = calloc(1, sizeof(*g));
    if (!g) return -ENOMEM;
    g->r = r;
    g->id = r->next_group_id++;
    g->nops = (uint32_t)nops;
    g->in_order = go && go->in_order ? go->in_order > 0 : r->o.in_order != 0;
    g->compute = go && go->compute ? go->compute : r->o.compute;
    g->compute_arg = go && go->compute ? go->compute_arg : r->o.compute_arg;
    g->discard = go && go->compute ? go->discard : r->o.discard;
    size_t strbytes = 0, nnodes = 0;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].path) strbytes += strlen(ops[i].path) + 1;
        nnodes +=
            ops[i].nranges ? ops[i].nranges : (ops[i].kind == LUMIO_OP_GET && !ops[i].block_size);
    }
    g->ops = nops ? calloc(nops, sizeof(op_state)) : NULL;
    g->strings = strbytes ? malloc(strbytes) : NULL;
    g->range_mem = nnodes ? calloc(nnodes, sizeof(node)) : NULL;
    if ((nops && !g->ops) || (strbytes && !g->strings) || (nnodes && !g->range_mem)) {
        group_free(g);
        return -ENOMEM;
    }
    char *s = g->strings;
    node *nm = g->range_mem;
    for (size_t i = 0; i < nops; i++) {
        const lumio_op *src = &ops[i];
        op_state *op = &g->ops[i];
        op->g = g;
        op->index = (uint32_t)i;
        op->kind = src->kind;
        if (src->path) {
            size_t l = strlen(src->path) + 1;
            memcpy(s, src->path, l);
            op->path = s;
            s += l;
        }
        op->fd = src->path ? -1 : src->fd;
        op->flags = src->flags;
        op->mode = src->mode;
        op->block_size = src->block_size;
        op->user_data = src->user_data;
        op->opnode.op = op;
        op->opnode.index = LUMIO_NO_RANGE;
        op->opnode.user_data = src->user_data;
        op->ranges = (src->nranges || (src->kind == LUMIO_OP_GET && !src->block_size)) ? nm : NULL;
        if (src->nranges) {
            for (size_t j = 0; j < src->nranges; j++) {
                node *n = &nm[j];
                n->op = op;
                n->index = (uint32_t)j;
                n->req_off = src->ranges[j].offset;
                n->req_len = src->ranges[j].length;
                n->user_data = src->ranges[j].user_data;
                n->dst = src->ranges[j].buf;
                n->flags = src->ranges[j].flags;
            }
            op->nranges = (uint32_t)src->nranges;
        } else if (src->kind == LUMIO_OP_GET && !src->block_size) {
            nm->op = op; /* no ranges: the whole file, as one range */
            nm->index = 0;
            nm->req_off = 0;
            nm->req_len = LUMIO_WHOLE;
            nm->user_data = src->user_data;
            op->nranges = 1;
        }
        if (op->nranges) nm += op->nranges;
    }
    g->ops_loading = g->nops;
    g->ops_open = g->nops;
    g->unresolved = g->nops;
    g->endnode.index = LUMIO_NO_RANGE;
    g->endnode.done = true;
    if (r->groups_tail)
        r->groups_tail->next = g;
    else
        r->groups_head = g;
    r->groups_tail = g;
    r->open_groups++;
    if (r->o.ordered_groups)
        activate_next(r);
    else
        activate(r, g);
    if (nops == 0) lumio__engine_op_resolved(r, NULL), (void)0;
    if (group_out) *group_out = g->id;
    return 0;
}

/* ---- delivery ----------------------------------------------------------------- */

static group *node_group(const node *n, group *fallback) {
    return n->op ? n->op->g : fallback;
}

static void push_ready(lumio_ring *r, group *g, node *n) {
    n->next = NULL;
    if (g->ready_tail)
        g->ready_tail->next = n;
    else
        g->ready_head = n;
    g->ready_tail = n;
    if (!g->in_ready_list) {
        g->in_ready_list = true;
        g->next_ready = NULL;
        if (r->ready_tail)
            r->ready_tail->next_ready = g;
        else
            r->ready_head = g;
        r->ready_tail = g;
    }
}

static uint32_t op_nnodes(const op_state *op) {
    if (op->error || (op->kind == LUMIO_OP_PUT && op->nranges == 0)) return 1;
    return op->nranges;
}

static node *op_node(op_state *op, uint32_t i) {
    if (op->error || (op->kind == LUMIO_OP_PUT && op->nranges == 0)) return &op->opnode;
    return &op->ranges[i];
}

/* An op read in blocks until end of file: its blocks, as they are done,
 * until the last. Returns whether the op has nothing more to release. */
static bool release_stream(lumio_ring *r, group *g, op_state *op) {
    while (op->s_rel && op->s_rel->done) {
        node *n = op->s_rel;
        op->s_rel = n->rnext;
        if (!op->s_rel) op->s_rtail = NULL;
        push_ready(r, g, n);
    }
    return !op->s_rel && op->s_done;
}

static void release_in_order(lumio_ring *r, group *g) {
    while (g->dl_op < g->nops) {
        op_state *op = &g->ops[g->dl_op];
        if (!op->resolved) return;
        if (op->stream && op->nranges == 0) {
            if (!release_stream(r, g, op)) return;
            g->dl_op++;
            g->dl_node = 0;
            continue;
        }
        if (g->dl_node >= op_nnodes(op)) {
            g->dl_op++;
            g->dl_node = 0;
            continue;
        }
        node *n = op_node(op, g->dl_node);
        if (!n->done) return;
        push_ready(r, g, n);
        g->dl_node++;
    }
}

static void node_done(lumio_ring *r, node *n) {
    group *g = n->op->g;
    n->done = true;
    if (g->in_order)
        release_in_order(r, g);
    else
        push_ready(r, g, n);
}

static void fill_completion(const node *n, const group *g, lumio_completion *c) {
    memset(c, 0, sizeof *c); /* the reserved words too */
    c->group = g->id;
    c->user_data = n->user_data;
    c->result = n->result;
    c->flags = n->cflags;
    c->op_index = n->op ? n->op->index : LUMIO_NO_RANGE;
    c->range_index = n->index;
    c->offset = n->off;
    /* A failed range says what was asked for: its messages name it whole. */
    c->length = n->result < 0 && n->index == LUMIO_NO_RANGE ? 0 : n->len;
    c->data = n->result < 0 ? NULL : n->data;
    c->buffer = n->buf;
    c->path = n->op ? n->op->path : NULL;
    c->out = n->out;
    c->out_length = n->out_length;
}

static void compute_run(lumio_job *j) {
    node *n = (node *)((char *)j - offsetof(node, job));
    group *g = n->op->g;
    lumio_ring *r = g->r;
    lumio_completion c;
    fill_completion(n, g, &c);
    /* Canceled while queued for the workers: not computed after all. */
    bool run = !atomic_load_explicit(&g->canceled, memory_order_relaxed);
    int rc = run ? g->compute(g->compute_arg, &c) : c.result < 0 ? c.result : -ECANCELED;
    n->computed = run;
    n->result = rc > 0 ? -ECANCELED : rc; /* the callbacks' convention (docs/API.md) */
    n->data = c.data;
    n->len = c.length;
    n->buf = c.buffer;
    n->out = c.out;
    n->out_length = c.out_length;
    if (n->result < 0 && n->buf) { /* a failed completion carries no data */
        lumio_buffer_release(n->buf);
        n->buf = NULL;
    }
    pthread_mutex_lock(&r->mu);
    n->next = NULL;
    if (r->computed_tail)
        r->computed_tail->next = n;
    else
        r->computed_head = n;
    r->computed_tail = n;
    bool wake = r->sleeping; /* a wake-up costs a system call: only when needed */
    pthread_mutex_unlock(&r->mu);
    if (wake) r->be->wake(r->be);
}

void lumio__engine_node_finished(lumio_ring *r, node *n) {
    group *g = n->op->g;
    if (!g->compute) {
        node_done(r, n);
        return;
    }
    if (g->canceled) { /* what the compute stage would have made is not wanted */
        lumio_buffer_release(n->buf);
        n->buf = NULL;
        n->data = NULL;
        if (n->result == 0) n->result = -ECANCELED;
        node_done(r, n);
        return;
    }
    if (!r->workers && lumio__workers_create(&r->workers, r->o.workers) < 0) {
        node_done(r, n); /* no threads to be had: deliver uncomputed would be wrong */
        if (n->result == 0) {
            lumio_buffer_release(n->buf);
            n->buf = NULL;
            n->data = NULL;
            n->result = -EAGAIN;
        }
        return;
    }
    r->computing++;
    n->job.run = compute_run;
    lumio__workers_push(r->workers, &n->job);
}

static void drain_computed(lumio_ring *r) {
    if (!r->computing) return;
    pthread_mutex_lock(&r->mu);
    node *n = r->computed_head;
    r->computed_head = r->computed_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (n) {
        node *next = n->next;
        r->computing--;
        node_done(r, n);
        n = next;
    }
}

void lumio__engine_op_resolved(lumio_ring *r, op_state *op) {
    if (op) {
        group *g = op->g;
        uint32_t k = op_nnodes(op);
        g->unresolved--;
        g->undelivered += k;
        g->total_nodes += k;
        if (g->in_order) release_in_order(r, g);
        /* The last op resolved with nothing to deliver, after everything else
         * was delivered (or there was nothing at all): the end needs a
         * completion of its own. */
        if (g->unresolved == 0 && g->undelivered == 0) {
            g->undelivered++;
            push_ready(r, g, &g->endnode);
        }
        return;
    }
    /* An empty group: its end is its only completion. */
    group *g = r->groups_tail;
    g->undelivered++;
    push_ready(r, g, &g->endnode);
}

void lumio__engine_stream_node(lumio_ring *r, op_state *op, node *n) {
    (void)r;
    group *g = op->g;
    g->undelivered++;
    g->total_nodes++;
    n->lprev = NULL;
    n->lnext = op->s_live;
    if (op->s_live) op->s_live->lprev = n;
    op->s_live = n;
    if (!g->in_order) return;
    n->rnext = NULL;
    if (op->s_rtail)
        op->s_rtail->rnext = n;
    else
        op->s_rel = n;
    op->s_rtail = n;
}

void lumio__engine_stream_end(lumio_ring *r, op_state *op) {
    group *g = op->g;
    g->unresolved--;
    if (g->in_order) release_in_order(r, g);
    if (g->unresolved == 0 && g->undelivered == 0) {
        g->undelivered++;
        push_ready(r, g, &g->endnode);
    }
}

/* Delivered: a stream's block is gone for good. */
static void stream_node_free(node *n) {
    op_state *op = n->op;
    if (n->lprev)
        n->lprev->lnext = n->lnext;
    else if (op->s_live == n)
        op->s_live = n->lnext;
    if (n->lnext) n->lnext->lprev = n->lprev;
    if (n->heap) free(n);
}

/* Ops refused a descriptor wait at the head of the open queue, in
 * submission order, so that an in-order group opens its ops in turn. */
void lumio__engine_requeue_open(lumio_ring *r, op_state *op) {
    op_state **pp = &r->open_head;
    while (*pp && ((*pp)->g->id < op->g->id || ((*pp)->g == op->g && (*pp)->index < op->index)))
        pp = &(*pp)->next;
    op->next = *pp;
    *pp = op;
    if (!op->next) r->open_tail = op;
}

void lumio__engine_add_issue(lumio_ring *r, op_state *op) {
    op->next = NULL;
    if (r->issue_tail)
        r->issue_tail->next = op;
    else
        r->issue_head = op;
    r->issue_tail = op;
}

bool lumio__engine_op_fully_issued(lumio_ring *r, op_state *op) {
    (void)r;
    group *g = op->g;
    op->fully_issued = true;
    if (!g->in_order || op->index != g->issue_cursor) return false;
    while (g->issue_cursor < g->nops && g->ops[g->issue_cursor].fully_issued) g->issue_cursor++;
    return true;
}

void lumio__engine_op_loaded(lumio_ring *r, op_state *op) {
    group *g = op->g;
    if (--g->ops_loading == 0 && r->o.ordered_groups) activate_next(r);
}

void lumio__engine_op_closed(lumio_ring *r, op_state *op) {
    if (op->path) r->files_open--;
    op->g->ops_open--;
}

void lumio__engine_queue(lumio_ring *r, etask *et) {
    r->inflight++;
    backend *b = et->op && et->op->remote ? r->rbe : r->be;
    b->queue(b, &et->t);
}

/* ---- the wait loop -------------------------------------------------------------- */

static group *find_group(lumio_ring *r, uint64_t id) {
    for (group *g = r->groups_head; g; g = g->next)
        if (g->id == id) return g->ended ? NULL : g;
    return NULL;
}

static void retire_groups(lumio_ring *r) {
    while (r->groups_head && r->groups_head->ended && r->groups_head->ops_open == 0) {
        group *g = r->groups_head;
        r->groups_head = g->next;
        if (!r->groups_head) r->groups_tail = NULL;
        group_free(g);
    }
}

static void unlink_ready_group(lumio_ring *r, group *g) {
    group **pp = &r->ready_head, *prev = NULL;
    while (*pp && *pp != g) {
        prev = *pp;
        pp = &(*pp)->next_ready;
    }
    if (!*pp) return;
    *pp = g->next_ready;
    if (r->ready_tail == g) r->ready_tail = prev;
    g->in_ready_list = false;
}

static void describe_into(lumio_ring *r, const lumio_completion *c, const op_state *op) {
    /* A remote object's error says more: the URL, the range, the server. */
    if (op && op->remote_err && c->result == op->remote_err_code) {
        lumio__err_set(&r->err, "%s", op->remote_err);
        return;
    }
    char text[LUMIO_ERROR_MAX];
    lumio_completion_describe(c, text, sizeof text);
    lumio__err_set(&r->err, "%s", text);
}

/* Hand ready completions of `g` (or of any group) to the caller. */
static unsigned pop_ready(lumio_ring *r, group *target, lumio_completion *out, unsigned max) {
    unsigned got = 0;
    while (got < max) {
        group *g = target ? target : r->ready_head;
        if (!g || !g->ready_head) break;
        node *n = g->ready_head;
        g->ready_head = n->next;
        if (!g->ready_head) {
            g->ready_tail = NULL;
            unlink_ready_group(r, g);
        }
        g->undelivered--;
        lumio_completion *c = &out[got++];
        fill_completion(n, node_group(n, g), c);
        n->delivered = true;
        if (g->unresolved == 0 && g->undelivered == 0) {
            c->flags |= LUMIO_CQE_GROUP_END;
            g->ended = true;
            r->open_groups--;
        }
        if (c->result < 0) describe_into(r, c, n->op);
        if (n->op && n->op->stream && n->op->nranges == 0) stream_node_free(n);
        if (g->ended && target) break;
    }
    return got;
}

static void pump(lumio_ring *r) {
    /* Opens take at most a quarter of the depth, so reads keep flowing. */
    unsigned open_cap = LUMIO_MAX(1u, r->o.queue_depth / 4);
    while (r->open_head && r->opening < open_cap &&
           r->inflight + 2 <= LUMIO_MAX(r->o.queue_depth, 2u)) {
        op_state *op = r->open_head;
        if (op->open_retry) break; /* refused a descriptor; its statx is not back yet */
        /* The op an in-order group waits for may pass the cap lowered by
         * EMFILE: later ops of its group hold files until it is read. */
        group *g = op->g;
        bool turn = g->in_order && op->index == g->issue_cursor;
        if (r->files_open >= (turn ? r->o.max_open_files : r->fd_cap)) break;
        r->open_head = op->next;
        if (!r->open_head) r->open_tail = NULL;
        op->next = NULL;
        lumio__plan_start_open(r, op);
    }
    lumio__plan_issue(r);
    /* No flush: the reap that follows submits and waits in one system call. */
}

static int reap_now(lumio_ring *r, task **done, bool block) {
    /* Remote tasks finish on the client's thread, which then wakes the
     * local backend: look at them first, then block (if asked) there. */
    int n = r->rbe ? r->rbe->reap(r->rbe, done, 128, false) : 0;
    n += r->be->reap(r->be, done + n, 256 - n, block && n == 0);
    for (int i = 0; i < n; i++) {
        r->inflight--;
        lumio__plan_task_done(r, (etask *)done[i]);
    }
    return n;
}

/* Collect finished I/O. Before sleeping, the driving thread runs queued
 * compute jobs itself, so the compute stage has every core, this one too;
 * and it sleeps only after telling the workers to wake it. */
static int reap(lumio_ring *r, task **done, bool block) {
    if (!block) return reap_now(r, done, false);
    if (r->computing && r->workers) {
        int n = reap_now(r, done, false);
        if (n) return n;
        if (lumio__workers_run_one(r->workers)) return 0;
    }
    pthread_mutex_lock(&r->mu);
    bool results = r->computed_head != NULL;
    r->sleeping = !results;
    pthread_mutex_unlock(&r->mu);
    if (results) return reap_now(r, done, false);
    int n = reap_now(r, done, true);
    pthread_mutex_lock(&r->mu);
    r->sleeping = false;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static bool has_ready(const lumio_ring *r, const group *target) {
    return target ? target->ready_head != NULL : r->ready_head != NULL;
}

int lumio_ring_wait(lumio_ring *r, uint64_t gid, lumio_completion *out, unsigned max,
                    unsigned min_complete) {
    if (!r || !out || max == 0) return -EINVAL;
    retire_groups(r);
    group *target = NULL;
    if (gid != LUMIO_ANY_GROUP && !(target = find_group(r, gid))) return 0;
    if (min_complete > max) min_complete = max;
    bool block = min_complete > 0;
    unsigned got = 0;
    task *done[256];
    for (;;) {
        drain_computed(r);
        got += pop_ready(r, target, out + got, max - got);
        if (got >= max || (block && got >= min_complete)) break;
        if (target ? target->ended : r->open_groups == 0) break;
        pump(r);
        if (r->inflight == 0 && r->computing == 0) {
            if (has_ready(r, target)) continue; /* made ready without I/O */
            if (got) break;
            /* Nothing in flight: only a buffer coming back from the caller
             * could let the engine go on. */
            if (r->pool_blocked) {
                /* Say where the buffers are: with the caller, or in the
                 * completions of another group not yet collected. */
                group *other = r->ready_head && r->ready_head != target ? r->ready_head : NULL;
                if (other)
                    lumio__err_set(
                        &r->err,
                        "stalled: the pool is full and group %llu has completions not yet "
                        "collected; wait on it (or on any group) and release them",
                        (unsigned long long)other->id);
                else
                    lumio__err_set(
                        &r->err,
                        "stalled: all pool buffers (cap %u) are held by the caller; release "
                        "some",
                        r->o.max_buffers);
                return LUMIO_E_STALLED;
            }
            break;
        }
        int n = reap(r, done, block);
        if (!block && n == 0) {
            drain_computed(r);
            got += pop_ready(r, target, out + got, max - got);
            break;
        }
    }
    return (int)got;
}

int lumio_ring_cancel(lumio_ring *r, uint64_t gid) {
    if (!r) return -EINVAL;
    group *g = find_group(r, gid);
    if (!g) {
        lumio__err_set(&r->err, "cancel: no group %llu in flight", (unsigned long long)gid);
        return -ENOENT;
    }
    /* Applied as the group moves on: ranges not yet issued end without I/O
     * (plan.c), and nothing more is computed (lumio__engine_node_finished, and
     * compute_run for jobs already queued). */
    atomic_store(&g->canceled, true);
    /* Ops waiting to be opened (behind the open-file cap, or, with ordered
     * groups, for their group's turn) end now: they need no file, so the
     * group ends whatever holds the files and the pool. */
    op_state *prev = NULL;
    for (op_state **pp = &r->open_head; *pp;) {
        if ((*pp)->g == g) {
            *pp = (*pp)->next;
        } else {
            prev = *pp;
            pp = &(*pp)->next;
        }
    }
    r->open_tail = prev;
    g->active = true;
    for (uint32_t i = 0; i < g->nops; i++) {
        op_state *op = &g->ops[i];
        if (op->phase != OP_IDLE) continue;
        op->next = NULL;
        lumio__plan_start_open(r, op);
    }
    return 0;
}

size_t lumio_ring_pending_groups(const lumio_ring *r) {
    size_t n = 0;
    for (group *g = r->groups_head; g; g = g->next) n += !g->ended;
    return n;
}

struct lumio_remote *lumio_ring_remote(lumio_ring *r) {
    return ensure_remote(r) == 0 ? r->remote : NULL;
}

char *lumio_ring_last_error(const lumio_ring *r, char *buf, size_t len) {
    return lumio__err_get(r ? &r->err : NULL, buf, len);
}

int lumio_completion_describe(const lumio_completion *c, char *buf, size_t len) {
    /* A path may be a URL with a password or a signature in it. */
    char path[8192], where[96] = "";
    lumio_redact(c->path ? c->path : "(fd)", path, sizeof path);
    if (c->range_index != LUMIO_NO_RANGE && c->length == LUMIO_WHOLE)
        snprintf(where, sizeof where, ": range %u (offset %llu, to the end)", c->range_index,
                 (unsigned long long)c->offset);
    else if (c->range_index != LUMIO_NO_RANGE)
        snprintf(where, sizeof where, ": range %u (offset %llu, length %llu)", c->range_index,
                 (unsigned long long)c->offset, (unsigned long long)c->length);
    int n = snprintf(buf, len, "%s%s: %s", path, where, lumio_strerror(c->result));
    return n < 0 ? -EINVAL : n; /* as snprintf: the whole length */
}

void lumio_ring_get_stats(const lumio_ring *r, lumio_ring_stats *s) {
    *s = r->stats;
    unsigned ob;
    uint64_t oby;
    lumio__pool_counts(r->pool, &ob, &oby, &s->pool_buffers_peak, &s->pool_bytes_peak);
}

static void discard_node(group *g, node *n) {
    if (n->delivered) return;
    if (n->done && n->computed && g->discard) {
        lumio_completion c;
        fill_completion(n, g, &c);
        g->discard(g->compute_arg, &c);
        n->buf = c.buffer;
    }
    lumio_buffer_release(n->buf);
    n->buf = NULL;
}

/* Cancel by draining: everything in flight completes (the kernel owns those
 * buffers until it does), and nothing new is issued. */
void lumio_ring_close(lumio_ring *r) {
    if (!r) return;
    if (r->be) {
        /* Stop issuing new work, then close what is open. The remote
         * backend is waited for like the kernel: its requests write into
         * the ring's buffers. */
        r->open_head = r->open_tail = NULL;
        r->issue_head = r->issue_tail = NULL;
        task *done[256];
        if (r->rbe) r->rbe->cancel(r->rbe);
        while (r->inflight > 0 || r->computing > 0) {
            reap(r, done, true);
            r->issue_head = r->issue_tail = NULL; /* completions may have re-added ops */
            r->open_head = r->open_tail = NULL;
            drain_computed(r);
            r->be->flush(r->be);
        }
    }
    lumio__workers_destroy(r->workers);
    drain_computed(r);
    /* Give back the buffers of completions never handed to the caller. */
    for (group *g = r->groups_head; g;) {
        group *next = g->next;
        for (uint32_t i = 0; i < g->nops; i++) {
            op_state *op = &g->ops[i];
            for (uint32_t j = 0; j <= op->nranges; j++)
                discard_node(g, j < op->nranges ? &op->ranges[j] : &op->opnode);
            while (op->s_live) {
                node *n = op->s_live;
                discard_node(g, n);
                stream_node_free(n);
            }
            lumio_buffer_release(op->s_buf);
            /* Fixed slots go with the ring, remote handles with its backend. */
            if (op->owned && !op->fixed && !op->remote) close(op->fd);
        }
        group_free(g);
        g = next;
    }
    lumio__pool_destroy(r->pool);
    lumio__plan_free_reqs(r);
    if (r->rbe) r->rbe->destroy(r->rbe);
    if (r->be) r->be->destroy(r->be);
    if (r->own_remote) lumio_remote_close(r->remote);
    pthread_mutex_destroy(&r->mu);
    lumio__err_fini(&r->err);
    free(r);
}

/* A failure always leaves a text for last_error(NULL) (docs/API.md). */
int lumio_ring_create(lumio_ring **out, const lumio_ring_options *opts) {
    uint64_t mark = lumio__err_mark();
    return lumio__err_ensure(mark, ring_create_impl(out, opts), "lumio_ring_create");
}
