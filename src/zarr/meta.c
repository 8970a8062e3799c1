/* Zarr metadata: .zarray (v2) and zarr.json (v3), parsed with jansson.
 * Every field the reader relies on is checked; anything unsupported is
 * refused here, at open, with its name. */
#include "zarr/meta_json.h"
#include "zarr/zarr.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        rc = (code);                                                                               \
        goto out;                                                                                  \
    } while (0)

static const struct {
    const char *v3;
    char kind; /* numpy kind: b, i, u, f */
    unsigned size;
    lumio_zarr_type type;
} types[] = {
    {"bool", 'b', 1, LUMIO_ZARR_BOOL},       {"int8", 'i', 1, LUMIO_ZARR_INT8},
    {"int16", 'i', 2, LUMIO_ZARR_INT16},     {"int32", 'i', 4, LUMIO_ZARR_INT32},
    {"int64", 'i', 8, LUMIO_ZARR_INT64},     {"uint8", 'u', 1, LUMIO_ZARR_UINT8},
    {"uint16", 'u', 2, LUMIO_ZARR_UINT16},   {"uint32", 'u', 4, LUMIO_ZARR_UINT32},
    {"uint64", 'u', 8, LUMIO_ZARR_UINT64},   {"float32", 'f', 4, LUMIO_ZARR_FLOAT32},
    {"float64", 'f', 8, LUMIO_ZARR_FLOAT64},
};
#define NTYPES (sizeof types / sizeof types[0])

/* "<u2", "|b1", ">f8": 0, or -1 if not a supported numpy type string. */
static int parse_numpy_dtype(const char *s, lumio_zarr_type *t, unsigned *size, int *big) {
    if (strlen(s) != 3 || (s[0] != '<' && s[0] != '>' && s[0] != '|')) return -1;
    unsigned n = (unsigned)(s[2] - '0');
    for (size_t i = 0; i < NTYPES; i++)
        if (types[i].kind == s[1] && types[i].size == n) {
            if (n > 1 && s[0] == '|') return -1;
            *t = types[i].type;
            *size = n;
            *big = s[0] == '>';
            return 0;
        }
    return -1;
}

/* "2^64" for a power of two, the number otherwise (for messages). */
static void big_name(unsigned __int128 v, char *s, size_t cap) {
    if (v && !(v & (v - 1))) {
        unsigned e = 0;
        while (v >>= 1) e++;
        snprintf(s, cap, "2^%u", e);
    } else if (v >> 64) {
        snprintf(s, cap, "more than 2^64");
    } else {
        snprintf(s, cap, "%llu", (unsigned long long)v);
    }
}

/* The sizes everything else is computed from. A chunk must fit in memory
 * (CHUNK_LIMIT); the array itself may be larger than any memory or address
 * space (a virtual array of missing chunks reads as its fill value), so its
 * element count and grid are never multiplied out except here, saturating. */
static int finish_shape(zarr_meta *m, char *err, size_t errlen) {
    lumio_zarr_info *info = &m->info;
    uint64_t bytes = info->itemsize, n = 1;
    bool grid_big = false;
    for (unsigned i = 0; i < info->ndim; i++) {
        if (info->chunks[i] == 0) {
            snprintf(err, errlen, "chunks[%u]: zero", i);
            return LUMIO_E_FORMAT;
        }
        if (__builtin_mul_overflow(bytes, info->chunks[i], &bytes) || bytes > ZARR_CHUNK_LIMIT) {
            unsigned __int128 want = info->itemsize;
            char s[64];
            for (unsigned d = 0; d < info->ndim; d++)
                want = want > ((unsigned __int128)1 << 80) ? want : want * info->chunks[d];
            big_name(want, s, sizeof s);
            snprintf(err, errlen,
                     "chunks: a chunk of %s bytes (%u-byte elements) is more than the 1 TiB "
                     "a chunk may take",
                     s, info->itemsize);
            return LUMIO_E_UNSUPPORTED;
        }
        uint64_t g = info->shape[i] / info->chunks[i] + (info->shape[i] % info->chunks[i] != 0);
        if (g == 0) {
            n = 0;
            grid_big = false;
        } else if (n && __builtin_mul_overflow(n, g, &n)) {
            n = UINT64_MAX;
            grid_big = true;
        }
    }
    m->chunk_bytes = bytes;
    m->grid_big = grid_big;
    info->nchunks = n;
    return 0;
}

static int parse_blosc(json_t *c, codec *k, unsigned itemsize, bool v3, char *err, size_t errlen) {
    const char *cname;
    int rc = lumio__zarr_get_str(c, "cname", "blosc.cname", true, &cname, err, errlen);
    if (rc) return rc;
    static const char *const known[] = {"blosclz", "lz4", "lz4hc", "zlib", "zstd", "snappy"};
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= !strcmp(cname, known[i]);
    if (!ok) {
        snprintf(err, errlen, "blosc: unsupported cname %s", lumio__zarr_show(cname).s);
        return LUMIO_E_UNSUPPORTED;
    }
    snprintf(k->cname, sizeof k->cname, "%s", cname);
    k->id = CODEC_BLOSC;
    int ts, bs;
    if ((rc = lumio__zarr_get_int(c, "clevel", "blosc.clevel", 0, 9, 5, &k->level, err, errlen)) ||
        (rc = lumio__zarr_get_int(c, "typesize", "blosc.typesize", 1, 255, itemsize, &ts, err,
                                  errlen)) ||
        (rc = lumio__zarr_get_int(c, "blocksize", "blosc.blocksize", 0, INT32_MAX, 0, &bs, err,
                                  errlen)))
        return rc;
    k->typesize = (unsigned)ts;
    json_t *shuffle = json_object_get(c, "shuffle");
    if (v3 && json_is_string(shuffle)) { /* v3: "noshuffle", "shuffle", "bitshuffle" */
        const char *s = json_string_value(shuffle);
        k->shuffle = !strcmp(s, "noshuffle")    ? 0
                     : !strcmp(s, "shuffle")    ? 1
                     : !strcmp(s, "bitshuffle") ? 2
                                                : -2;
        if (k->shuffle == -2) {
            snprintf(err, errlen, "blosc.shuffle: %s is not noshuffle, shuffle or bitshuffle",
                     lumio__zarr_show(s).s);
            return LUMIO_E_FORMAT;
        }
    } else if ((rc = lumio__zarr_get_int(c, "shuffle", "blosc.shuffle", -1, 2, 1, &k->shuffle, err,
                                         errlen))) {
        return rc;
    }
    if (k->shuffle == -1) k->shuffle = itemsize == 1 ? 2 : 1; /* numcodecs AUTOSHUFFLE */
    return 0;
}

/* v2 "compressor": null or {"id": ..., ...}. */
static int v2_compressor(json_t *root, zarr_meta *m, char *err, size_t errlen) {
    json_t *comp;
    const char *id;
    int rc = lumio__zarr_get_obj(root, "compressor", "compressor", false, &comp, err, errlen);
    if (rc || !comp) return rc;
    if ((rc = lumio__zarr_get_str(comp, "id", "compressor.id", true, &id, err, errlen))) return rc;
    codec *k = &m->compressor;
    if (!strcmp(id, "blosc")) return parse_blosc(comp, k, m->info.itemsize, false, err, errlen);
    if (!strcmp(id, "zstd")) {
        k->id = CODEC_ZSTD;
        return lumio__zarr_get_int(comp, "level", "compressor.level", -131072, 22, 1, &k->level,
                                   err, errlen);
    }
    if (!strcmp(id, "zlib") || !strcmp(id, "gzip")) {
        k->id = id[0] == 'z' ? CODEC_ZLIB : CODEC_GZIP;
        return lumio__zarr_get_int(comp, "level", "compressor.level", -1, 9, 1, &k->level, err,
                                   errlen);
    }
    snprintf(err, errlen, "compressor: unsupported codec %s", lumio__zarr_show(id).s);
    return LUMIO_E_UNSUPPORTED;
}

/* v2 "filters": null or a list of {"id": "delta", ...} in the array's dtype. */
static int v2_filters(json_t *root, zarr_meta *m, char *err, size_t errlen) {
    json_t *filters = json_object_get(root, "filters");
    if (!filters || json_is_null(filters)) return 0;
    if (!json_is_array(filters))
        return lumio__zarr_bad_type("filters", "a list or null", filters, err, errlen);
    if (json_array_size(filters) > MAX_CODECS) {
        snprintf(err, errlen, "filters: more than %d", MAX_CODECS);
        return LUMIO_E_UNSUPPORTED;
    }
    for (size_t i = 0; i < json_array_size(filters); i++) {
        json_t *f = json_array_get(filters, i);
        char field[64];
        snprintf(field, sizeof field, "filters[%zu]", i);
        if (!json_is_object(f)) return lumio__zarr_bad_type(field, "an object", f, err, errlen);
        const char *id, *fdt, *ast;
        int rc;
        snprintf(field, sizeof field, "filters[%zu].id", i);
        if ((rc = lumio__zarr_get_str(f, "id", field, true, &id, err, errlen))) return rc;
        if (strcmp(id, "delta")) {
            snprintf(err, errlen, "filters[%zu]: unsupported filter %s", i, lumio__zarr_show(id).s);
            return LUMIO_E_UNSUPPORTED;
        }
        snprintf(field, sizeof field, "filters[%zu].dtype", i);
        if ((rc = lumio__zarr_get_str(f, "dtype", field, true, &fdt, err, errlen))) return rc;
        snprintf(field, sizeof field, "filters[%zu].astype", i);
        if ((rc = lumio__zarr_get_str(f, "astype", field, false, &ast, err, errlen))) return rc;
        codec *k = &m->filters[m->nfilters++];
        k->id = CODEC_DELTA;
        unsigned sz;
        if (parse_numpy_dtype(fdt, &k->delta_type, &sz, &k->delta_big) || sz != m->info.itemsize ||
            (ast && strcmp(ast, fdt))) {
            snprintf(err, errlen,
                     "filters[%zu]: delta with dtype %s astype %s (only the array's own)", i,
                     lumio__zarr_show(fdt).s, lumio__zarr_show(ast ? ast : "").s);
            return LUMIO_E_UNSUPPORTED;
        }
    }
    return 0;
}

int lumio__zarr_parse_v2(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    json_t *root;
    int rc = lumio__zarr_load_root(text, len, &root, err, errlen);
    if (rc) return rc;
    lumio_zarr_info *info = &m->info;
    info->format = 2;
    if ((rc = lumio__zarr_check_format(root, 2, err, errlen))) goto out;
    unsigned nd, nc;
    if ((rc = lumio__zarr_parse_dims(json_object_get(root, "shape"), info->shape, &nd, "shape", err,
                                     errlen)))
        goto out;
    if ((rc = lumio__zarr_parse_dims(json_object_get(root, "chunks"), info->chunks, &nc, "chunks",
                                     err, errlen)))
        goto out;
    if (nd != nc) FAIL(LUMIO_E_FORMAT, "chunks: %u dimensions for a shape of %u", nc, nd);
    info->ndim = nd;
    json_t *dt = json_object_get(root, "dtype");
    if (json_is_array(dt)) FAIL(LUMIO_E_UNSUPPORTED, "dtype: a structured type is not supported");
    const char *dts, *order, *sep;
    if ((rc = lumio__zarr_get_str(root, "dtype", "dtype", true, &dts, err, errlen))) goto out;
    if (parse_numpy_dtype(dts, &info->type, &info->itemsize, &info->big_endian))
        FAIL(LUMIO_E_UNSUPPORTED, "dtype: unsupported data type %s", lumio__zarr_show(dts).s);
    snprintf(info->dtype, sizeof info->dtype, "%s", dts);
    if ((rc = lumio__zarr_get_str(root, "order", "order", true, &order, err, errlen))) goto out;
    if (strcmp(order, "C") && strcmp(order, "F"))
        FAIL(LUMIO_E_UNSUPPORTED, "order: %s is not C or F", lumio__zarr_show(order).s);
    info->fortran_order = order[0] == 'F';
    /* The separator goes into every key: only the two the spec names, so
     * no key can climb out of the array ("..", "/", "\"). */
    if ((rc = lumio__zarr_get_str(root, "dimension_separator", "dimension_separator", false, &sep,
                                  err, errlen)))
        goto out;
    if (sep && strcmp(sep, ".") && strcmp(sep, "/"))
        FAIL(LUMIO_E_UNSUPPORTED, "dimension_separator: %s is not \".\" or \"/\"",
             lumio__zarr_show(sep).s);
    m->sep = sep ? sep[0] : '.';
    if ((rc = lumio__zarr_fill_from_json(json_object_get(root, "fill_value"), info, err, errlen)))
        goto out;
    if ((rc = v2_compressor(root, m, err, errlen))) goto out;
    if ((rc = v2_filters(root, m, err, errlen))) goto out;
    rc = finish_shape(m, err, errlen);
out:
    json_decref(root);
    if (rc == 0) lumio__zarr_describe_codecs(m);
    return rc;
}

/* ---- v3 --------------------------------------------------------------------- */

static int v3_transpose(json_t *conf, codec *k, lumio_zarr_info *info, const char *field, char *err,
                        size_t errlen) {
    json_t *o = json_object_get(conf, "order");
    k->id = CODEC_TRANSPOSE;
    if (!json_is_array(o) || json_array_size(o) != info->ndim) {
        snprintf(err, errlen, "%s: transpose order is not a permutation", field);
        return LUMIO_E_FORMAT;
    }
    unsigned seen = 0;
    for (unsigned i = 0; i < info->ndim; i++) {
        json_t *v = json_array_get(o, i);
        long long d;
        if (!lumio__zarr_json_whole(v, &d) || d < 0 || d >= (long long)info->ndim ||
            (seen >> d) & 1) {
            snprintf(err, errlen, "%s: transpose order is not a permutation", field);
            return LUMIO_E_FORMAT;
        }
        seen |= 1u << d;
        k->order[i] = (unsigned)d;
    }
    bool reverse = true, identity = true;
    for (unsigned i = 0; i < info->ndim; i++) {
        reverse &= k->order[i] == info->ndim - 1 - i;
        identity &= k->order[i] == i;
    }
    if (!reverse && !identity) {
        snprintf(err, errlen, "%s: transpose other than C or F order", field);
        return LUMIO_E_UNSUPPORTED;
    }
    info->fortran_order = reverse && info->ndim > 1;
    return identity ? 1 : 0; /* 1: nothing to do */
}

static int v3_codec(json_t *c, zarr_meta *m, char *err, size_t errlen) {
    char field[48];
    snprintf(field, sizeof field, "codecs[%u]", m->nchain);
    if (m->nchain == MAX_CODECS) {
        snprintf(err, errlen, "codecs: more than %d", MAX_CODECS);
        return LUMIO_E_UNSUPPORTED;
    }
    if (!json_is_object(c)) return lumio__zarr_bad_type(field, "an object", c, err, errlen);
    const char *name;
    json_t *conf;
    int rc;
    char sub[96];
    snprintf(sub, sizeof sub, "%s.name", field);
    if ((rc = lumio__zarr_get_str(c, "name", sub, true, &name, err, errlen))) return rc;
    snprintf(sub, sizeof sub, "%s.configuration", field);
    if ((rc = lumio__zarr_get_obj(c, "configuration", sub, false, &conf, err, errlen))) return rc;
    codec *k = &m->chain[m->nchain];
    memset(k, 0, sizeof *k);
    lumio_zarr_info *info = &m->info;
    if (!strcmp(name, "bytes")) {
        const char *e;
        snprintf(sub, sizeof sub, "%s.configuration.endian", field);
        if ((rc = lumio__zarr_get_str(conf, "endian", sub, false, &e, err, errlen))) return rc;
        k->id = CODEC_BYTES;
        if (e && strcmp(e, "big") && strcmp(e, "little")) {
            snprintf(err, errlen, "%s: endian %s is not big or little", field,
                     lumio__zarr_show(e).s);
            return LUMIO_E_FORMAT;
        }
        k->big_endian = e && !strcmp(e, "big");
        info->big_endian = k->big_endian;
    } else if (!strcmp(name, "transpose")) {
        if ((rc = v3_transpose(conf, k, info, field, err, errlen)) < 0) return rc;
        if (rc == 1) return 0; /* the identity: nothing to do */
    } else if (!strcmp(name, "zstd")) {
        k->id = CODEC_ZSTD;
        json_t *ck = json_object_get(conf, "checksum");
        if (ck && !json_is_boolean(ck))
            return lumio__zarr_bad_type("zstd.checksum", "a boolean", ck, err, errlen);
        if ((rc = lumio__zarr_get_int(conf, "level", "zstd.level", -131072, 22, 0, &k->level, err,
                                      errlen)))
            return rc;
    } else if (!strcmp(name, "gzip")) {
        k->id = CODEC_GZIP;
        if ((rc =
                 lumio__zarr_get_int(conf, "level", "gzip.level", 0, 9, 6, &k->level, err, errlen)))
            return rc;
    } else if (!strcmp(name, "blosc")) {
        if ((rc = parse_blosc(conf, k, info->itemsize, true, err, errlen))) return rc;
    } else if (!strcmp(name, "crc32c")) {
        k->id = CODEC_CRC32C;
    } else {
        snprintf(err, errlen, "%s: unsupported codec %s", field, lumio__zarr_show(name).s);
        return LUMIO_E_UNSUPPORTED;
    }
    m->nchain++;
    return 0;
}

/* A v3 codec chain lumio can run: one array->bytes codec (bytes), at most
 * one compressor, checksums after it. */
static int check_chain(const codec *chain, unsigned n, unsigned itemsize, const char *field,
                       char *err, size_t errlen) {
    bool have_bytes = false, crc = false;
    int ncomp = 0;
    for (unsigned i = 0; i < n; i++) {
        codec_id id = chain[i].id;
        have_bytes |= id == CODEC_BYTES;
        if (id == CODEC_ZSTD || id == CODEC_GZIP || id == CODEC_BLOSC) {
            ncomp++;
            if (crc) {
                snprintf(err, errlen, "%s: crc32c before a compressor", field);
                return LUMIO_E_UNSUPPORTED;
            }
        }
        crc |= id == CODEC_CRC32C;
    }
    if (ncomp > 1) {
        snprintf(err, errlen, "%s: more than one compressor", field);
        return LUMIO_E_UNSUPPORTED;
    }
    if (!have_bytes && itemsize > 1) {
        snprintf(err, errlen, "%s: no bytes codec", field);
        return LUMIO_E_FORMAT;
    }
    return 0;
}

/* A list of codecs: a JSON list, not empty. */
static int codec_list(json_t *v, const char *field, char *err, size_t errlen) {
    if (!json_is_array(v)) return lumio__zarr_bad_type(field, "a list of codecs", v, err, errlen);
    if (json_array_size(v) == 0) {
        snprintf(err, errlen, "%s: empty (an array needs at least the bytes codec)", field);
        return LUMIO_E_FORMAT;
    }
    return 0;
}

/* sharding_indexed index codecs: bytes (little endian), optionally crc32c. */
static int index_codecs(json_t *conf, zarr_meta *m, char *err, size_t errlen) {
    json_t *ic = json_object_get(conf, "index_codecs");
    if (!ic || json_is_null(ic)) return 0;
    if (!json_is_array(ic))
        return lumio__zarr_bad_type("sharding_indexed.index_codecs", "a list", ic, err, errlen);
    for (size_t i = 0; i < json_array_size(ic); i++) {
        json_t *c = json_array_get(ic, i), *cc;
        char field[64];
        snprintf(field, sizeof field, "sharding_indexed.index_codecs[%zu]", i);
        if (!json_is_object(c)) return lumio__zarr_bad_type(field, "an object", c, err, errlen);
        const char *nm, *e = NULL;
        int rc = lumio__zarr_get_str(c, "name", field, true, &nm, err, errlen);
        if (!rc) rc = lumio__zarr_get_obj(c, "configuration", field, false, &cc, err, errlen);
        if (!rc) rc = lumio__zarr_get_str(cc, "endian", field, false, &e, err, errlen);
        if (rc) return rc;
        if (!strcmp(nm, "bytes") && (!e || !strcmp(e, "little"))) continue;
        if (!strcmp(nm, "crc32c") && i + 1 == json_array_size(ic)) {
            m->index_crc = true;
            continue;
        }
        snprintf(err, errlen, "%s: unsupported %s", field, lumio__zarr_show(nm).s);
        return LUMIO_E_UNSUPPORTED;
    }
    return 0;
}

/* sharding_indexed: inner chunk shape, inner codecs, index codecs, index
 * location. */
static int parse_sharding(json_t *conf, zarr_meta *m, char *err, size_t errlen) {
    lumio_zarr_info *info = &m->info;
    unsigned n;
    if (!json_is_object(conf))
        return lumio__zarr_bad_type("sharding_indexed.configuration", "an object", conf, err,
                                    errlen);
    int rc = lumio__zarr_parse_dims(json_object_get(conf, "chunk_shape"), m->inner, &n,
                                    "sharding_indexed.chunk_shape", err, errlen);
    if (rc) return rc;
    if (n != info->ndim) {
        snprintf(err, errlen, "sharding_indexed.chunk_shape: %u dimensions for %u", n, info->ndim);
        return LUMIO_E_FORMAT;
    }
    m->ninner = 1;
    for (unsigned d = 0; d < n; d++) {
        if (!m->inner[d] || info->chunks[d] % m->inner[d]) {
            snprintf(err, errlen,
                     "sharding_indexed.chunk_shape[%u]: %llu does not divide the shard's %llu", d,
                     (unsigned long long)m->inner[d], (unsigned long long)info->chunks[d]);
            return LUMIO_E_FORMAT;
        }
        /* The index is read whole (16 bytes an inner chunk): bounded. */
        if (__builtin_mul_overflow(m->ninner, info->chunks[d] / m->inner[d], &m->ninner) ||
            m->ninner > ZARR_INNER_LIMIT) {
            snprintf(err, errlen,
                     "sharding_indexed.chunk_shape: more than 2^22 inner chunks in a shard (an "
                     "index of more than 64 MiB)");
            return LUMIO_E_UNSUPPORTED;
        }
        info->inner_chunks[d] = m->inner[d];
    }
    /* The inner codecs, parsed as a chain of their own. */
    zarr_meta t;
    memset(&t, 0, sizeof t);
    t.info = *info;
    json_t *inner = json_object_get(conf, "codecs");
    if ((rc = codec_list(inner, "sharding_indexed.codecs", err, errlen))) return rc;
    for (size_t i = 0; i < json_array_size(inner); i++) {
        const char *nm = json_string_value(json_object_get(json_array_get(inner, i), "name"));
        if (nm && !strcmp(nm, "sharding_indexed")) {
            snprintf(err, errlen, "sharding_indexed.codecs: nested sharding");
            return LUMIO_E_UNSUPPORTED;
        }
        if ((rc = v3_codec(json_array_get(inner, i), &t, err, errlen))) {
            /* Say where the codec is: "codecs[1]" alone would point at the outer list. */
            char why[512];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "sharding_indexed.%s", why);
            return rc;
        }
    }
    if ((rc = check_chain(t.chain, t.nchain, info->itemsize, "sharding_indexed.codecs", err,
                          errlen)))
        return rc;
    memcpy(m->ichain, t.chain, sizeof m->ichain);
    m->nichain = t.nchain;
    info->big_endian = t.info.big_endian;
    info->fortran_order = t.info.fortran_order; /* of the inner chunks */
    if ((rc = index_codecs(conf, m, err, errlen))) return rc;
    const char *loc;
    if ((rc = lumio__zarr_get_str(conf, "index_location", "sharding_indexed.index_location", false,
                                  &loc, err, errlen)))
        return rc;
    if (loc && strcmp(loc, "start") && strcmp(loc, "end")) {
        snprintf(err, errlen, "sharding_indexed.index_location: %s is not start or end",
                 lumio__zarr_show(loc).s);
        return LUMIO_E_FORMAT;
    }
    m->index_at_start = loc && !strcmp(loc, "start");
    m->sharded = true;
    return 0;
}

/* chunk_key_encoding: "default" (c/0/1) or "v2" (0.1), and a separator
 * that is exactly "." or "/": every key is built from it, and nothing else
 * may reach a path or a URL ("..", "/", "\", "%2F"). */
static int key_encoding(json_t *root, zarr_meta *m, char *err, size_t errlen) {
    json_t *kenc, *kconf;
    const char *kname = NULL, *ksep = NULL;
    int rc = lumio__zarr_get_obj(root, "chunk_key_encoding", "chunk_key_encoding", false, &kenc,
                                 err, errlen);
    if (!rc && kenc)
        rc =
            lumio__zarr_get_str(kenc, "name", "chunk_key_encoding.name", true, &kname, err, errlen);
    if (!rc)
        rc = lumio__zarr_get_obj(kenc, "configuration", "chunk_key_encoding.configuration", false,
                                 &kconf, err, errlen);
    if (!rc)
        rc = lumio__zarr_get_str(kconf, "separator", "chunk_key_encoding.configuration.separator",
                                 false, &ksep, err, errlen);
    if (rc) return rc;
    if (kname && !strcmp(kname, "v2")) {
        m->sep = '.';
    } else if (!kname || !strcmp(kname, "default")) {
        m->sep = '/';
        m->v3_c = true;
    } else {
        snprintf(err, errlen, "chunk_key_encoding: unsupported %s", lumio__zarr_show(kname).s);
        return LUMIO_E_UNSUPPORTED;
    }
    if (ksep && strcmp(ksep, ".") && strcmp(ksep, "/")) {
        snprintf(err, errlen, "chunk_key_encoding: separator %s is not \".\" or \"/\"",
                 lumio__zarr_show(ksep).s);
        return LUMIO_E_UNSUPPORTED;
    }
    if (ksep) m->sep = ksep[0];
    return 0;
}

/* data_type: one of the names of `types`. */
static int v3_data_type(json_t *root, size_t *ti, char *err, size_t errlen) {
    json_t *v = json_object_get(root, "data_type");
    if (json_is_object(v)) {
        const char *nm = json_string_value(json_object_get(v, "name"));
        snprintf(err, errlen, "data_type: unsupported extension type %s",
                 lumio__zarr_show(nm ? nm : "").s);
        return LUMIO_E_UNSUPPORTED;
    }
    const char *dt;
    int rc = lumio__zarr_get_str(root, "data_type", "data_type", true, &dt, err, errlen);
    if (rc) return rc;
    for (*ti = 0; *ti < NTYPES && strcmp(types[*ti].v3, dt);) ++*ti;
    if (*ti == NTYPES) {
        snprintf(err, errlen, "data_type: unsupported %s", lumio__zarr_show(dt).s);
        return LUMIO_E_UNSUPPORTED;
    }
    return 0;
}

static int v3_grid(json_t *root, zarr_meta *m, unsigned *nc, char *err, size_t errlen) {
    json_t *grid, *gconf;
    const char *gname;
    int rc = lumio__zarr_get_obj(root, "chunk_grid", "chunk_grid", true, &grid, err, errlen);
    if (!rc) rc = lumio__zarr_get_str(grid, "name", "chunk_grid.name", true, &gname, err, errlen);
    if (rc) return rc;
    if (strcmp(gname, "regular")) {
        snprintf(err, errlen, "chunk_grid: %s is not regular", lumio__zarr_show(gname).s);
        return LUMIO_E_UNSUPPORTED;
    }
    if ((rc = lumio__zarr_get_obj(grid, "configuration", "chunk_grid.configuration", true, &gconf,
                                  err, errlen)))
        return rc;
    return lumio__zarr_parse_dims(json_object_get(gconf, "chunk_shape"), m->info.chunks, nc,
                                  "chunk_grid.configuration.chunk_shape", err, errlen);
}

int lumio__zarr_parse_v3(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    json_t *root;
    int rc = lumio__zarr_load_root(text, len, &root, err, errlen);
    if (rc) return rc;
    lumio_zarr_info *info = &m->info;
    info->format = 3;
    if ((rc = lumio__zarr_check_format(root, 3, err, errlen))) goto out;
    const char *nt;
    if ((rc = lumio__zarr_get_str(root, "node_type", "node_type", true, &nt, err, errlen)))
        goto out;
    if (strcmp(nt, "array"))
        FAIL(LUMIO_E_UNSUPPORTED, "node_type: %s is not array", lumio__zarr_show(nt).s);
    unsigned nd, nc;
    if ((rc = lumio__zarr_parse_dims(json_object_get(root, "shape"), info->shape, &nd, "shape", err,
                                     errlen)))
        goto out;
    if ((rc = v3_grid(root, m, &nc, err, errlen))) goto out;
    if (nd != nc) FAIL(LUMIO_E_FORMAT, "chunk_shape: %u dimensions for a shape of %u", nc, nd);
    info->ndim = nd;
    size_t ti;
    if ((rc = v3_data_type(root, &ti, err, errlen))) goto out;
    info->type = types[ti].type;
    info->itemsize = types[ti].size;
    if ((rc = key_encoding(root, m, err, errlen))) goto out;
    json_t *codecs = json_object_get(root, "codecs");
    if ((rc = codec_list(codecs, "codecs", err, errlen))) goto out;
    json_t *first = json_array_get(codecs, 0);
    const char *fname = json_string_value(json_object_get(first, "name"));
    if (fname && !strcmp(fname, "sharding_indexed")) {
        if (json_array_size(codecs) != 1)
            FAIL(LUMIO_E_UNSUPPORTED, "codecs: codecs around sharding_indexed");
        if ((rc = parse_sharding(json_object_get(first, "configuration"), m, err, errlen)))
            goto out;
    } else {
        for (size_t i = 0; i < json_array_size(codecs); i++)
            if ((rc = v3_codec(json_array_get(codecs, i), m, err, errlen))) goto out;
        if ((rc = check_chain(m->chain, m->nchain, info->itemsize, "codecs", err, errlen)))
            goto out;
    }
    /* The dtype as numpy would name it, for display and for v2 output. */
    char kind = types[ti].kind;
    snprintf(info->dtype, sizeof info->dtype, "%c%c%u",
             info->itemsize == 1 ? '|'
             : info->big_endian  ? '>'
                                 : '<',
             kind, info->itemsize);
    if ((rc = lumio__zarr_fill_from_json(json_object_get(root, "fill_value"), info, err, errlen)))
        goto out;
    /* Storage transformers change where the bytes are: one we do not know
     * cannot be read right. */
    json_t *st = json_object_get(root, "storage_transformers");
    if (st && !json_is_null(st) && (!json_is_array(st) || json_array_size(st) > 0)) {
        json_t *t0 = json_is_array(st) ? json_array_get(st, 0) : NULL;
        const char *name = json_string_value(json_object_get(t0, "name"));
        FAIL(LUMIO_E_UNSUPPORTED, "storage_transformers: %s is not supported",
             lumio__zarr_show(name ? name : "?").s);
    }
    rc = finish_shape(m, err, errlen);
out:
    json_decref(root);
    if (rc == 0) lumio__zarr_describe_codecs(m);
    return rc;
}

const char *lumio__zarr_v3_type_name(lumio_zarr_type t) {
    for (size_t i = 0; i < NTYPES; i++)
        if (types[i].type == t) return types[i].v3;
    return "?";
}
