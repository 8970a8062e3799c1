/* Creating arrays and writing regions. A write reads the chunks it only
 * partly covers (through the ring, decoded on the workers), then encodes
 * every chunk it touches on a set of threads, each chunk written to a
 * temporary name and renamed over the old one, so a killed writer leaves
 * every chunk whole. */
#include "zarr/zarr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lumio_zarr_create_options_default(lumio_zarr_create_options *o) {
    memset(o, 0, sizeof *o);
    o->format = 2;
    o->dtype = "<f8";
    o->codec = "zstd:3";
    o->fill_value = "0";
}

/* ---- options into metadata --------------------------------------------------- */

/* numpy's other spellings of a type string, as numpy itself takes them:
 * "u1", "i2", "f8" (native order), "=u2", and "|" or "<"/">" whatever the
 * size ("<u1" is "|u1"; "|u2" is native). Into np, as Zarr writes them. */
static const char *numpy_short_dtype(const char *s, char np[4]) {
    size_t n = strlen(s);
    const char *t = n == 2 ? s : n == 3 && strchr("<>=|", s[0]) ? s + 1 : NULL;
    if (!t || !strchr("biuf", t[0]) || t[1] < '1' || t[1] > '8') return s;
    const uint16_t one = 1;
    char native = *(const uint8_t *)&one ? '<' : '>';
    char order = n == 2 || s[0] == '=' || s[0] == '|' ? native : s[0];
    np[0] = t[1] == '1' ? '|' : order;
    np[1] = t[0];
    np[2] = t[1];
    np[3] = 0;
    return np;
}

static const struct {
    const char *name, *np;
} dtype_names[] = {
    {"bool", "|b1"},   {"int8", "|i1"},    {"int16", "<i2"},   {"int32", "<i4"},
    {"int64", "<i8"},  {"uint8", "|u1"},   {"uint16", "<u2"},  {"uint32", "<u4"},
    {"uint64", "<u8"}, {"float32", "<f4"}, {"float64", "<f8"},
};

static int parse_codec(const char *s, int format, unsigned itemsize, codec *k, char *err,
                       size_t errlen) {
    memset(k, 0, sizeof *k);
    char name[16] = "", a[16] = "", b[16] = "", c[16] = "";
    int n = sscanf(s, "%15[^:]:%15[^:]:%15[^:]:%15s", name, a, b, c);
    if (n < 1) goto bad;
    char *end;
    if (!strcmp(name, "none")) {
        if (n > 1) goto bad;
        k->id = CODEC_NONE;
        return 0;
    }
    if (!strcmp(name, "zstd") || !strcmp(name, "gzip") || !strcmp(name, "zlib")) {
        k->id = name[0] == 'z' && name[1] == 's' ? CODEC_ZSTD
                : name[1] == 'z'                 ? CODEC_GZIP
                                                 : CODEC_ZLIB;
        if (k->id == CODEC_ZLIB && format == 3) {
            snprintf(err, errlen, "codec zlib: not a Zarr v3 codec (use gzip)");
            return LUMIO_E_UNSUPPORTED;
        }
        k->level = k->id == CODEC_ZSTD ? 3 : k->id == CODEC_GZIP ? 6 : 1;
        if (n >= 2) {
            long l = strtol(a, &end, 10);
            if (*end || n > 2) goto bad;
            if (l < (k->id == CODEC_ZSTD ? -7 : 0) || l > (k->id == CODEC_ZSTD ? 22 : 9)) goto bad;
            k->level = (int)l;
        }
        return 0;
    }
    if (!strcmp(name, "blosc")) {
        k->id = CODEC_BLOSC;
        snprintf(k->cname, sizeof k->cname, "%s", n >= 2 ? a : "lz4");
        k->level = 5;
        k->shuffle = 1;
        k->typesize = itemsize;
        static const char *const cnames[] = {"blosclz", "lz4", "lz4hc", "zlib", "zstd"};
        bool ok = false;
        for (size_t i = 0; i < sizeof cnames / sizeof *cnames; i++)
            ok |= !strcmp(k->cname, cnames[i]);
        if (!ok) goto bad;
        if (n >= 3) {
            long l = strtol(b, &end, 10);
            if (*end || l < 0 || l > 9) goto bad;
            k->level = (int)l;
        }
        if (n >= 4) {
            if (!strcmp(c, "noshuffle"))
                k->shuffle = 0;
            else if (!strcmp(c, "shuffle"))
                k->shuffle = 1;
            else if (!strcmp(c, "bitshuffle"))
                k->shuffle = 2;
            else
                goto bad;
        }
        return 0;
    }
bad:
    snprintf(err, errlen,
             "codec '%s': expected none, zstd[:LEVEL], gzip[:LEVEL], zlib[:LEVEL] or "
             "blosc[:CNAME[:LEVEL[:noshuffle|shuffle|bitshuffle]]], after 'delta,' in v2",
             s);
    return LUMIO_E_UNSUPPORTED;
}

int lumio_zarr_commit(lumio_zarr *z) {
    if (!z->pending_meta) return 0;
    char err[512] = "";
    int rc = zarr_put_meta(z->base, z->pending_format, z->pending_meta, z->ring, NULL, NULL, err,
                           sizeof err);
    if (rc < 0) {
        snprintf(z->err, sizeof z->err, "%s", err);
        return rc;
    }
    free(z->pending_meta);
    z->pending_meta = NULL;
    return 0;
}

int lumio_zarr_create(lumio_zarr **out, const char *path, const lumio_zarr_create_options *o,
                      const lumio_zarr_options *zo) {
    *out = NULL;
    char err[512] = "";
    int rc = 0;
    zarr_meta m;
    memset(&m, 0, sizeof m);
    lumio_zarr_info *in = &m.info;
    const char *dtype = o->dtype ? o->dtype : "<f8";
    for (size_t i = 0; i < sizeof dtype_names / sizeof *dtype_names; i++)
        if (!strcmp(dtype, dtype_names[i].name)) dtype = dtype_names[i].np;
    char np[4];
    dtype = numpy_short_dtype(dtype, np);
    if (o->format != 2 && o->format != 3) {
        snprintf(err, sizeof err, "format %d: 2 or 3", o->format);
        rc = -EINVAL;
        goto out;
    }
    if (o->checksum && o->format != 3) {
        snprintf(err, sizeof err, "checksum: crc32c is a Zarr v3 codec (format 3, not %d)",
                 o->format);
        rc = -EINVAL;
        goto out;
    }
    if (o->ndim > LUMIO_ZARR_MAX_DIMS) {
        snprintf(err, sizeof err, "%u dimensions: at most %d", o->ndim, LUMIO_ZARR_MAX_DIMS);
        rc = -EINVAL;
        goto out;
    }
    /* Describe the array as v2 metadata text, and parse it back: one path
     * checks everything, for created and opened arrays alike. */
    in->format = o->format;
    in->ndim = o->ndim;
    memcpy(in->shape, o->shape, sizeof in->shape);
    memcpy(in->chunks, o->chunks, sizeof in->chunks);
    {
        char probe[256];
        snprintf(probe, sizeof probe,
                 "{\"zarr_format\":2,\"shape\":[],\"chunks\":[],\"dtype\":\"%s\",\"order\":\"C\","
                 "\"compressor\":null,\"fill_value\":0,\"filters\":null}",
                 dtype);
        zarr_meta t;
        rc = zarr_parse_v2(probe, strlen(probe), &t, err, sizeof err);
        if (rc < 0) goto out;
        in->type = t.info.type;
        in->itemsize = t.info.itemsize;
        in->big_endian = t.info.big_endian;
        snprintf(in->dtype, sizeof in->dtype, "%s", t.info.dtype);
    }
    in->fortran_order = o->fortran_order != 0; /* (1-d: the same bytes either way) */
    if ((rc = zarr_fill_from_text(o->fill_value ? o->fill_value : "0", in, err, sizeof err)))
        goto out;
    codec k;
    const char *cs = o->codec ? o->codec : "zstd:3";
    bool delta = !strncmp(cs, "delta,", 6); /* numcodecs' Delta filter, then the codec */
    if (delta && o->format != 2) {
        snprintf(err, sizeof err, "codec '%s': delta is a Zarr v2 filter", cs);
        rc = LUMIO_E_UNSUPPORTED;
        goto out;
    }
    if (delta && in->type == LUMIO_ZARR_BOOL) { /* numpy cannot subtract booleans */
        snprintf(err, sizeof err, "codec '%s': no delta filter for bool arrays", cs);
        rc = LUMIO_E_UNSUPPORTED;
        goto out;
    }
    if ((rc = parse_codec(cs + (delta ? 6 : 0), o->format, in->itemsize, &k, err, sizeof err)))
        goto out;
    if (o->format == 2) {
        m.sep = o->separator ? o->separator : '.';
        m.compressor = k;
        if (delta)
            m.filters[m.nfilters++] =
                (codec){.id = CODEC_DELTA, .delta_type = in->type, .delta_big = in->big_endian};
    } else {
        m.sep = o->separator ? o->separator : '/';
        m.v3_c = true;
        if (in->fortran_order && in->ndim > 1) {
            codec *t = &m.chain[m.nchain++];
            t->id = CODEC_TRANSPOSE;
            for (unsigned d = 0; d < in->ndim; d++) t->order[d] = in->ndim - 1 - d;
        }
        m.chain[m.nchain++] = (codec){.id = CODEC_BYTES, .big_endian = in->big_endian};
        if (k.id != CODEC_NONE) m.chain[m.nchain++] = k;
        if (o->checksum) m.chain[m.nchain++] = (codec){.id = CODEC_CRC32C};
    }
    if (o->shard[0]) { /* the chain so far becomes the inner one */
        if (o->format != 3) {
            snprintf(err, sizeof err, "sharding needs format 3");
            rc = -EINVAL;
            goto out;
        }
        m.ninner = 1;
        for (unsigned d = 0; d < in->ndim; d++) {
            if (!o->chunks[d] || !o->shard[d] || o->shard[d] % o->chunks[d]) {
                snprintf(err, sizeof err, "shard[%u]: %llu is not a multiple of the chunk's %llu",
                         d, (unsigned long long)o->shard[d], (unsigned long long)o->chunks[d]);
                rc = -EINVAL;
                goto out;
            }
            m.inner[d] = o->chunks[d];
            in->chunks[d] = o->shard[d];
            m.ninner *= o->shard[d] / o->chunks[d];
        }
        memcpy(m.ichain, m.chain, sizeof m.ichain);
        m.nichain = m.nchain;
        m.nchain = 0;
        m.sharded = true;
        m.index_crc = true;
    }
    if (m.sep != '.' && m.sep != '/') {
        snprintf(err, sizeof err, "separator '%c': '.' or '/'", m.sep);
        rc = -EINVAL;
        goto out;
    }
    for (unsigned d = 0; d < in->ndim; d++)
        if (!in->chunks[d]) {
            snprintf(err, sizeof err, "chunks[%u]: zero", d);
            rc = -EINVAL;
            goto out;
        }
    /* Round trip through the parser: the document must open as written. */
    char *text = zarr_dump_meta(&m);
    if (!text) {
        rc = -ENOMEM;
        goto out;
    }
    zarr_meta back;
    rc = (o->format == 2 ? zarr_parse_v2 : zarr_parse_v3)(text, strlen(text), &back, err,
                                                          sizeof err);
    bool made = false;
    bool defer = o->defer_metadata != 0;
    if (rc == 0)
        rc = zarr_put_meta(path, o->format, defer ? NULL : text, zo ? zo->ring : NULL,
                           zo ? zo->remote : NULL, &made, err, sizeof err);
    if (rc == 0 && defer) {
        rc = zarr_open_meta(out, path, zo, text, o->format);
        if (rc == 0) {
            (*out)->pending_meta = text;
            (*out)->pending_format = o->format;
            (*out)->made_dir = made;
            return 0;
        }
        if (made) rmdir(path);
        free(text);
        return rc; /* (the open's text is the error) */
    }
    free(text);
    if (rc < 0) goto out;
    return lumio_zarr_open(out, path, zo);
out:
    snprintf(zarr_open_error(), 1024, "%s", err);
    return rc;
}

/* ---- writing a region ---------------------------------------------------------- */

typedef struct write_job {
    region x;          /* first: the compute stage gets &job.x */
    uint64_t first, n; /* this batch: chunks first .. first + n of the region */
    uint8_t **bufs;    /* the old contents of chunks only partly written (stored order) */
    uint64_t next;     /* the next chunk to encode (atomic) */
} write_job;

/* On a worker: the old contents of a chunk the write only partly covers. */
static int on_old(void *arg, lumio_completion *c) {
    write_job *j = arg;
    uint8_t *buf = j->bufs[c->user_data - j->first];
    if (c->result == -ENOENT) {
        zarr_fill_chunk(j->x.m, buf);
        lumio_buffer_release(c->buffer);
        c->buffer = NULL;
        return 0;
    }
    if (c->result < 0) return c->result;
    return zarr_decode_landed(&j->x, c, buf);
}

typedef struct encoder_arg {
    write_job *j;
    zarr_enc_kit *kit;
} encoder_arg;

/* A thread: merge the new data into chunks, encode and write them. A chunk
 * the region covers is assembled in the kit's own buffer, and every chunk is
 * encoded into another, both kept in the array with the zstd context from
 * chunk to chunk and from write to write. */
static void *encoder(void *arg) {
    write_job *j = ((encoder_arg *)arg)->j;
    zarr_enc_kit *kit = ((encoder_arg *)arg)->kit;
    region *x = &j->x;
    const lumio_zarr *z = x->z;
    const zarr_meta *m = &z->m;
    uint8_t *own = kit->own, *enc = kit->enc;
    size_t cap = kit->cap;
    zarr_thread_cctx_swap(&kit->cctx);
    for (;;) {
        uint64_t i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (i >= j->n || x->error) break;
        uint64_t cc[LUMIO_ZARR_MAX_DIMS];
        region_chunk(x, j->first + i, cc);
        char why[256], text[1200], key[256];
        zarr_chunk_key(z, cc, key, sizeof key);
        uint8_t *chunk = j->bufs[i];
        int rc = 0;
        if (!chunk && !own && !(own = malloc(LUMIO_MAX(m->chunk_bytes, 1)))) {
            rc = -ENOMEM;
            snprintf(why, sizeof why, "out of memory");
        }
        if (rc == 0 && !chunk) {
            chunk = own;
            /* Covered: only the padding of an edge chunk needs the fill value. */
            bool edge = false;
            for (unsigned d = 0; d < m->info.ndim; d++)
                edge |= (cc[d] + 1) * m->info.chunks[d] > m->info.shape[d];
            if (edge) zarr_fill_chunk(m, chunk);
        }
        size_t len = 0;
        if (rc == 0) {
            region_to_chunk(x, cc, chunk);
            rc = zarr_encode_into(m, chunk, &enc, &cap, &len, why, sizeof why);
        }
        if (rc == 0) { /* the store's text names the key itself */
            if ((rc = zarr_put_key(z, key, enc, len, text, sizeof text)) < 0)
                region_error(x, rc, text);
        } else {
            snprintf(text, sizeof text, "%s/%s: %s", z->base, key, why);
            region_error(x, rc, text);
        }
    }
    zarr_thread_cctx_swap(&kit->cctx);
    kit->own = own;
    kit->enc = enc;
    kit->cap = cap;
    return NULL;
}

int lumio_zarr_write(lumio_zarr *z, const uint64_t *start, const uint64_t *shape, const void *buf) {
    if (z->remote && !z->rm && !(z->rm = lumio_ring_remote(z->ring))) {
        snprintf(z->err, sizeof z->err, "%s: cannot start the remote client", z->base);
        return -ENOMEM;
    }
    write_job j;
    memset(&j, 0, sizeof j);
    int rc = region_init(&j.x, z, &z->m, start, shape, (void *)buf);
    if (rc) return rc < 0 ? rc : 0;
    /* What the region touches is read again from the store. */
    if (z->cache) zarr_cache_forget(z->cache, zarr_grid(z), start, shape);
    if (z->index_cache) zarr_cache_forget(z->index_cache, &z->m, start, shape);
    const zarr_meta *m = &z->m;
    uint64_t batch = LUMIO_MAX(z->max_inflight, 1);
    /* Encoders: one per core; over the network more, each mostly waiting
     * for its PUT. */
    unsigned nthreads = z->remote ? LUMIO_MAX(lumio_ncores(), 8u) : lumio_ncores();
    j.bufs = calloc(batch, sizeof *j.bufs);
    uint64_t *old = calloc(batch, sizeof *old);
    pthread_t *threads = calloc(nthreads, sizeof *threads);
    encoder_arg *args = calloc(nthreads, sizeof *args);
    if (z->nkits < nthreads) { /* kept in the array from write to write */
        zarr_enc_kit *k = realloc(z->kits, nthreads * sizeof *k);
        if (k) {
            memset(k + z->nkits, 0, (nthreads - z->nkits) * sizeof *k);
            z->kits = k;
            z->nkits = nthreads;
        }
    }
    if (!j.bufs || !old || !threads || !args || z->nkits < nthreads) rc = -ENOMEM;
    for (uint64_t first = 0; rc == 0 && first < j.x.nchunks; first += batch) {
        j.first = first;
        j.n = LUMIO_MIN(batch, j.x.nchunks - first);
        j.next = 0;
        uint64_t nold = 0;
        for (uint64_t i = 0; i < j.n && rc == 0; i++) {
            uint64_t cc[LUMIO_ZARR_MAX_DIMS];
            region_chunk(&j.x, first + i, cc);
            if (region_covers(&j.x, cc)) { /* assembled by the encoder itself */
                free(j.bufs[i]);
                j.bufs[i] = NULL;
                continue;
            }
            /* Partly covered: read, then merged. Buffers are kept from batch
             * to batch. */
            if (!j.bufs[i] && !(j.bufs[i] = malloc(m->chunk_bytes ? m->chunk_bytes : 1))) {
                rc = -ENOMEM;
                break;
            }
            old[nold++] = first + i;
        }
        if (rc == 0 && nold) rc = zarr_fetch_chunks(z, &j.x, 0, nold, on_old, old);
        unsigned started = 0;
        for (unsigned t = 0; rc == 0 && t < nthreads && t < j.n; t++) {
            args[t] = (encoder_arg){.j = &j, .kit = &z->kits[started]};
            if (pthread_create(&threads[started], NULL, encoder, &args[t]) == 0) started++;
        }
        if (rc == 0 && started == 0) encoder(&(encoder_arg){.j = &j, .kit = &z->kits[0]});
        for (unsigned t = 0; t < started; t++) pthread_join(threads[t], NULL);
        if (rc == 0 && j.x.error) rc = j.x.error;
    }
    for (uint64_t i = 0; j.bufs && i < batch; i++) free(j.bufs[i]);
    if (rc < 0 && j.x.error) snprintf(z->err, sizeof z->err, "%s", j.x.err);
    region_fini(&j.x);
    free(j.bufs);
    free(old);
    free(threads);
    free(args);
    return rc;
}
