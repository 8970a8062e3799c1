/* Creating arrays: the options checked and turned into metadata, which is
 * emitted (meta_dump.c) and parsed back (meta.c), so that a created array
 * passes the checks an opened one does; the document is placed in the store
 * at once, or (defer_metadata) by lumio_zarr_commit after the data, so that
 * a failed or killed fill leaves nothing that opens. */
#include "zarr/zarr.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the data type -------------------------------------------------------------- */

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

/* The element type of dtype (a numpy type string, or a name such as
 * "uint16"), read by the parser from a probe document: one path checks it
 * for created and opened arrays alike. */
static int set_dtype(lumio_zarr_info *in, const char *dtype, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof dtype_names / sizeof *dtype_names; i++)
        if (!strcmp(dtype, dtype_names[i].name)) dtype = dtype_names[i].np;
    char np[4], probe[256];
    dtype = numpy_short_dtype(dtype, np);
    snprintf(probe, sizeof probe,
             "{\"zarr_format\":2,\"shape\":[],\"chunks\":[],\"dtype\":\"%s\",\"order\":\"C\","
             "\"compressor\":null,\"fill_value\":0,\"filters\":null}",
             dtype);
    zarr_meta t;
    int rc = lumio__zarr_parse_v2(probe, strlen(probe), &t, err, errlen);
    if (rc < 0) return rc;
    in->type = t.info.type;
    in->itemsize = t.info.itemsize;
    in->big_endian = t.info.big_endian;
    snprintf(in->dtype, sizeof in->dtype, "%s", t.info.dtype);
    return 0;
}

/* ---- codecs --------------------------------------------------------------------- */

/* A level in [lo, hi], the whole of s. */
static bool level_of(const char *s, long lo, long hi, int *level) {
    char *end;
    long l = strtol(s, &end, 10);
    if (*end || l < lo || l > hi) return false;
    *level = (int)l;
    return true;
}

/* blosc[:CNAME[:LEVEL[:SHUFFLE]]], the n fields scanned. */
static bool blosc_options(codec *k, int n, const char *cname, const char *level,
                          const char *shuffle, unsigned itemsize) {
    k->id = CODEC_BLOSC;
    snprintf(k->cname, sizeof k->cname, "%s", n >= 2 ? cname : "lz4");
    k->level = 5;
    k->shuffle = 1;
    k->typesize = itemsize;
    static const char *const cnames[] = {"blosclz", "lz4", "lz4hc", "zlib", "zstd"};
    bool ok = false;
    for (size_t i = 0; i < sizeof cnames / sizeof *cnames; i++) ok |= !strcmp(k->cname, cnames[i]);
    if (ok && n >= 3) ok = level_of(level, 0, 9, &k->level);
    if (ok && n >= 4) {
        k->shuffle = !strcmp(shuffle, "noshuffle")    ? 0
                     : !strcmp(shuffle, "shuffle")    ? 1
                     : !strcmp(shuffle, "bitshuffle") ? 2
                                                      : -1;
        ok = k->shuffle >= 0;
    }
    return ok;
}

/* One codec: none, zstd[:LEVEL], gzip[:LEVEL], zlib[:LEVEL] (v2 only) or
 * blosc[:CNAME[:LEVEL[:SHUFFLE]]]. */
static int parse_codec(const char *s, int format, unsigned itemsize, codec *k, char *err,
                       size_t errlen) {
    memset(k, 0, sizeof *k);
    char name[16] = "", a[16] = "", b[16] = "", c[16] = "";
    int n = sscanf(s, "%15[^:]:%15[^:]:%15[^:]:%15s", name, a, b, c);
    bool ok = false;
    if (n >= 1 && !strcmp(name, "none")) {
        k->id = CODEC_NONE;
        ok = n == 1;
    } else if (n >= 1 &&
               (!strcmp(name, "zstd") || !strcmp(name, "gzip") || !strcmp(name, "zlib"))) {
        k->id = name[0] == 'z' && name[1] == 's' ? CODEC_ZSTD
                : name[1] == 'z'                 ? CODEC_GZIP
                                                 : CODEC_ZLIB;
        if (k->id == CODEC_ZLIB && format == 3) {
            snprintf(err, errlen, "codec zlib: not a Zarr v3 codec (use gzip)");
            return LUMIO_E_UNSUPPORTED;
        }
        k->level = k->id == CODEC_ZSTD ? 3 : k->id == CODEC_GZIP ? 6 : 1;
        bool zstd = k->id == CODEC_ZSTD;
        ok = n == 1 || (n == 2 && level_of(a, zstd ? -7 : 0, zstd ? 22 : 9, &k->level));
    } else if (n >= 1 && !strcmp(name, "blosc")) {
        ok = blosc_options(k, n, a, b, c, itemsize);
    }
    if (ok) return 0;
    snprintf(err, errlen,
             "codec '%s': expected none, zstd[:LEVEL], gzip[:LEVEL], zlib[:LEVEL] or "
             "blosc[:CNAME[:LEVEL[:noshuffle|shuffle|bitshuffle]]], after 'delta,' in v2",
             s);
    return LUMIO_E_UNSUPPORTED;
}

/* The codec option ("zstd:3", "delta,zlib:1") as the array's codecs: v2 a
 * compressor after an optional delta filter; v3 a chain of transpose (F
 * order), bytes, the compressor and crc32c (checksum). */
static int set_codecs(zarr_meta *m, const lumio_zarr_create_options *o, char *err, size_t errlen) {
    lumio_zarr_info *in = &m->info;
    const char *cs = o->codec ? o->codec : "zstd:3";
    bool delta = !strncmp(cs, "delta,", 6); /* numcodecs' Delta filter, then the codec */
    if (delta && o->format != 2) {
        snprintf(err, errlen, "codec '%s': delta is a Zarr v2 filter", cs);
        return LUMIO_E_UNSUPPORTED;
    }
    if (delta && in->type == LUMIO_ZARR_BOOL) { /* numpy cannot subtract booleans */
        snprintf(err, errlen, "codec '%s': no delta filter for bool arrays", cs);
        return LUMIO_E_UNSUPPORTED;
    }
    codec k;
    int rc = parse_codec(cs + (delta ? 6 : 0), o->format, in->itemsize, &k, err, errlen);
    if (rc) return rc;
    if (o->format == 2) {
        m->compressor = k;
        if (delta)
            m->filters[m->nfilters++] =
                (codec){.id = CODEC_DELTA, .delta_type = in->type, .delta_big = in->big_endian};
        return 0;
    }
    if (in->fortran_order && in->ndim > 1) {
        codec *t = &m->chain[m->nchain++];
        t->id = CODEC_TRANSPOSE;
        for (unsigned d = 0; d < in->ndim; d++) t->order[d] = in->ndim - 1 - d;
    }
    m->chain[m->nchain++] = (codec){.id = CODEC_BYTES, .big_endian = in->big_endian};
    if (k.id != CODEC_NONE) m->chain[m->nchain++] = k;
    if (o->checksum) m->chain[m->nchain++] = (codec){.id = CODEC_CRC32C};
    return 0;
}

/* ---- the grid ------------------------------------------------------------------- */

/* Shards of o->shard (format 3): the chain so far becomes the inner
 * chunks' (of o->chunks), and each shard's index carries a crc32c. */
static int set_shards(zarr_meta *m, const lumio_zarr_create_options *o, char *err, size_t errlen) {
    if (!o->shard[0]) return 0;
    if (o->format != 3) {
        snprintf(err, errlen, "sharding needs format 3");
        return -EINVAL;
    }
    m->ninner = 1;
    for (unsigned d = 0; d < m->info.ndim; d++) {
        if (!o->chunks[d] || !o->shard[d] || o->shard[d] % o->chunks[d]) {
            snprintf(err, errlen, "shard[%u]: %llu is not a multiple of the chunk's %llu", d,
                     (unsigned long long)o->shard[d], (unsigned long long)o->chunks[d]);
            return -EINVAL;
        }
        m->inner[d] = o->chunks[d];
        m->info.chunks[d] = o->shard[d];
        m->ninner *= o->shard[d] / o->chunks[d];
    }
    memcpy(m->ichain, m->chain, sizeof m->ichain);
    m->nichain = m->nchain;
    m->nchain = 0;
    m->sharded = true;
    m->index_crc = true;
    return 0;
}

static int check_grid(const zarr_meta *m, char *err, size_t errlen) {
    if (m->sep != '.' && m->sep != '/') {
        snprintf(err, errlen, "separator '%c': '.' or '/'", m->sep);
        return -EINVAL;
    }
    for (unsigned d = 0; d < m->info.ndim; d++)
        if (!m->info.chunks[d]) {
            snprintf(err, errlen, "chunks[%u]: zero", d);
            return -EINVAL;
        }
    return 0;
}

/* ---- options into metadata ------------------------------------------------------ */

static int check_options(const lumio_zarr_create_options *o, char *err, size_t errlen) {
    if (o->format != 2 && o->format != 3) {
        snprintf(err, errlen, "format %d: 2 or 3", o->format);
        return -EINVAL;
    }
    if (o->checksum && o->format != 3) {
        snprintf(err, errlen, "checksum: crc32c is a Zarr v3 codec (format 3, not %d)", o->format);
        return -EINVAL;
    }
    if (o->ndim > LUMIO_ZARR_MAX_DIMS) {
        snprintf(err, errlen, "%u dimensions: at most %d", o->ndim, LUMIO_ZARR_MAX_DIMS);
        return -EINVAL;
    }
    return 0;
}

/* The metadata of the array the options describe, checked in the order a
 * caller meets the options. */
static int meta_of(zarr_meta *m, const lumio_zarr_create_options *o, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    lumio_zarr_info *in = &m->info;
    int rc = check_options(o, err, errlen);
    if (rc) return rc;
    in->format = o->format;
    in->ndim = o->ndim;
    memcpy(in->shape, o->shape, sizeof in->shape);
    memcpy(in->chunks, o->chunks, sizeof in->chunks);
    if ((rc = set_dtype(in, o->dtype ? o->dtype : "<f8", err, errlen))) return rc;
    in->fortran_order = o->fortran_order != 0; /* (1-d: the same bytes either way) */
    if ((rc = lumio__zarr_fill_from_text(o->fill_value ? o->fill_value : "0", in, err, errlen)))
        return rc;
    m->sep = o->separator ? o->separator : o->format == 2 ? '.' : '/';
    m->v3_c = o->format == 3;
    if ((rc = set_codecs(m, o, err, errlen)) || (rc = set_shards(m, o, err, errlen))) return rc;
    return check_grid(m, err, errlen);
}

/* ---- the document placed -------------------------------------------------------- */

/* Deferred: the array opened from its document (text, taken), which
 * lumio_zarr_commit places; a directory made for it goes if that fails. */
static int open_pending(lumio_zarr **out, const char *path, int format,
                        const lumio_zarr_options *zo, char *text, bool made) {
    int rc = lumio__zarr_open_meta(out, path, zo, text, format);
    if (rc < 0) {
        if (made) rmdir(path);
        free(text);
        return rc; /* (the open's text is the error) */
    }
    (*out)->pending_meta = text;
    (*out)->pending_format = format;
    (*out)->made_dir = made;
    return 0;
}

/* The user attributes (o->attrs, a JSON object's text): checked, and for v3
 * put into the zarr.json document *text (v2 keeps them in .zattrs). */
static int attrs_into(char **text, const lumio_zarr_create_options *o, char *err, size_t errlen) {
    if (!o->attrs) return 0;
    json_error_t je;
    json_t *a = json_loads(o->attrs, 0, &je);
    if (!json_is_object(a)) {
        snprintf(err, errlen, "attrs: %s", a ? "not a JSON object" : je.text);
        json_decref(a);
        return -EINVAL;
    }
    if (o->format == 2) {
        json_decref(a);
        return 0;
    }
    json_t *doc = json_loads(*text, 0, NULL);
    char *with = doc && json_object_set_new(doc, "attributes", a) == 0
                     ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                     : NULL;
    if (!doc) json_decref(a);
    json_decref(doc);
    if (!with) return -ENOMEM;
    free(*text);
    *text = with;
    return 0;
}

/* v2 with attributes: .zattrs before .zarray, which makes the array. */
static int v2_attrs_then_commit(lumio_zarr *z, const lumio_zarr_create_options *o) {
    char err[512] = "";
    int rc = lumio__zarr_put_key(z, ".zattrs", o->attrs, strlen(o->attrs), err, sizeof err);
    if (rc < 0) {
        snprintf(z->err, sizeof z->err, "%s", err);
        return rc;
    }
    return o->defer_metadata ? 0 : lumio_zarr_commit(z);
}

static int zarr_create(lumio_zarr **out, const char *path, const lumio_zarr_create_options *o,
                       const lumio_zarr_options *zo) {
    char err[512] = "";
    zarr_meta m, back;
    int rc = meta_of(&m, o, err, sizeof err);
    char *text = rc ? NULL : lumio__zarr_dump_meta(&m);
    if (rc == 0 && !text) rc = -ENOMEM;
    /* Round trip through the parser: the document must open as written. */
    if (rc == 0)
        rc = (o->format == 2 ? lumio__zarr_parse_v2 : lumio__zarr_parse_v3)(text, strlen(text),
                                                                            &back, err, sizeof err);
    if (rc == 0) rc = attrs_into(&text, o, err, sizeof err);
    bool v2_attrs = o->attrs && o->format == 2;
    bool made = false, defer = o->defer_metadata != 0 || v2_attrs;
    if (rc == 0)
        rc = lumio__zarr_put_meta(path, o->format, defer ? NULL : text, zo ? zo->ring : NULL,
                                  zo ? zo->remote : NULL, &made, err, sizeof err);
    if (rc) {
        free(text);
        snprintf(lumio__zarr_open_error(), 1024, "%s", err);
        return rc;
    }
    if (!defer) {
        free(text);
        return lumio_zarr_open(out, path, zo);
    }
    rc = open_pending(out, path, o->format, zo, text, made);
    if (rc == 0 && v2_attrs && (rc = v2_attrs_then_commit(*out, o)) < 0) {
        snprintf(lumio__zarr_open_error(), 1024, "%s", (*out)->err);
        lumio_zarr_close(*out); /* never committed: what create made goes */
        *out = NULL;
    }
    return rc;
}

static int zarr_commit(lumio_zarr *z) {
    if (!z->pending_meta) return 0;
    char err[512] = "";
    int rc = lumio__zarr_put_meta(z->base, z->pending_format, z->pending_meta, z->ring, NULL, NULL,
                                  err, sizeof err);
    if (rc < 0) {
        snprintf(z->err, sizeof z->err, "%s", err);
        return rc;
    }
    free(z->pending_meta);
    z->pending_meta = NULL;
    return 0;
}

/* Both option structs' reserved space, before anything is written. */
int lumio__zarr_check_reserved(const lumio_zarr_create_options *o, const lumio_zarr_options *zo) {
    const char *bad = !lumio__zero(o->reserved, sizeof o->reserved) ? "lumio_zarr_create_options"
                      : zo && !lumio__zero(zo->reserved, sizeof zo->reserved) ? "lumio_zarr_options"
                                                                              : NULL;
    if (!bad) return 0;
    snprintf(lumio__zarr_open_error(), 1024, "%s: reserved fields are not zero", bad);
    return -EINVAL;
}

int lumio_zarr_create(lumio_zarr **out, const char *path, const lumio_zarr_create_options *opts,
                      const lumio_zarr_options *zo) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (!path || !opts) {
        snprintf(lumio__zarr_open_error(), 1024, "create: %s", path ? "no options" : "no location");
        return lumio__zarr_published(NULL, -EINVAL);
    }
    lumio_zarr_create_options o = *opts;
    if (lumio__zarr_check_reserved(&o, zo) < 0) return lumio__zarr_published(NULL, -EINVAL);
    /* Zero is the default (docs/API.md): v2, numpy's float64, zstd:3, 0. */
    if (o.format == 0) o.format = 2;
    if (!o.dtype) o.dtype = "<f8";
    if (!o.codec) o.codec = "zstd:3";
    if (!o.fill_value) o.fill_value = "0";
    return lumio__zarr_published(NULL,
                                 lumio__zarr_begin(NULL) ? 0 : zarr_create(out, path, &o, zo));
}

int lumio_zarr_commit(lumio_zarr *z) {
    if (!z) return -EINVAL;
    return lumio__zarr_published(z, lumio__zarr_begin(z) ? 0 : zarr_commit(z));
}
