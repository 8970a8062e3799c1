/* Zarr metadata: .zarray (v2) and zarr.json (v3), parsed with jansson.
 * Every field the reader relies on is checked; anything unsupported is
 * refused here, at open, with its name. */
#include "zarr/zarr.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
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

static bool is_float(lumio_zarr_type t) {
    return t == LUMIO_ZARR_FLOAT32 || t == LUMIO_ZARR_FLOAT64;
}

static void store_le_or_be(uint8_t *out, uint64_t v, unsigned size, int big) {
    for (unsigned i = 0; i < size; i++) out[big ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* The fill value as itemsize bytes in the array's byte order. */
static int parse_fill(json_t *j, lumio_zarr_info *info, char *err, size_t errlen) {
    memset(info->fill, 0, sizeof info->fill);
    if (!j || json_is_null(j)) return 0;
    lumio_zarr_type t = info->type;
    unsigned size = info->itemsize;
    int big = info->big_endian;
    if (t == LUMIO_ZARR_BOOL) {
        if (json_is_boolean(j))
            info->fill[0] = json_is_true(j);
        else if (json_is_integer(j))
            info->fill[0] = json_integer_value(j) != 0;
        else
            goto bad;
        return 0;
    }
    if (is_float(t)) {
        double d;
        if (json_is_number(j)) {
            d = json_number_value(j);
        } else if (json_is_string(j)) {
            const char *s = json_string_value(j);
            if (!strcmp(s, "NaN"))
                d = NAN;
            else if (!strcmp(s, "Infinity"))
                d = INFINITY;
            else if (!strcmp(s, "-Infinity"))
                d = -INFINITY;
            else if (!strncmp(s, "0x", 2) && strlen(s) == 2 + 2 * size &&
                     strspn(s + 2, "0123456789abcdefABCDEF") == 2 * size) {
                /* v3: the value's IEEE 754 bits, as a hex number ("0x7fc00000") */
                store_le_or_be(info->fill, strtoull(s + 2, NULL, 16), size, big);
                return 0;
            } else
                goto bad;
        } else {
            goto bad;
        }
        uint64_t bits;
        if (size == 4) {
            float f = (float)d;
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        } else {
            memcpy(&bits, &d, 8);
        }
        store_le_or_be(info->fill, bits, size, big);
        return 0;
    }
    bool is_signed = t <= LUMIO_ZARR_INT64;
    if (!json_is_integer(j)) {
        /* A whole number as a real: what jansson gives for integers beyond
         * int64 (a uint64 fill value) when parsed as reals. */
        double d = json_is_real(j) ? json_real_value(j) : NAN;
        if (!(d == d) || d < -9.3e18 || d > 1.85e19 || d != floor(d)) goto bad;
        if (d >= 9.2233720368547758e18) {
            if (is_signed || size < 8) goto bad;
            store_le_or_be(info->fill, d >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)d, size,
                           big);
            return 0;
        }
        if (d != (double)(int64_t)d) goto bad;
        json_int_t v = (json_int_t)(int64_t)d;
        j = json_integer(v);
        int rc = parse_fill(j, info, err, errlen);
        json_decref(j);
        return rc;
    }
    json_int_t v = json_integer_value(j);
    if (size < 8) { /* in the type's range */
        int64_t lo = is_signed ? -(1ll << (8 * size - 1)) : 0;
        int64_t hi = is_signed ? (1ll << (8 * size - 1)) - 1 : (int64_t)((1ull << (8 * size)) - 1);
        if (v < lo || v > hi) goto bad;
    } else if (!is_signed && v < 0) {
        goto bad;
    }
    store_le_or_be(info->fill, (uint64_t)v, size, big);
    return 0;
bad:
    snprintf(err, errlen, "fill_value: not a value of type %s", info->dtype);
    return LUMIO_E_FORMAT;
}

/* jansson has no uint64: a document with an integer beyond int64 (a uint64
 * fill value) is read again with integers as reals. */
static json_t *load_json(const char *text, size_t len, json_error_t *je) {
    json_t *root = json_loadb(text, len, 0, je);
    if (!root && strstr(je->text, "too big"))
        root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, je);
    return root;
}

/* A non-negative integer, as an integer or a whole real below 2^53. */
static bool json_uint(json_t *v, uint64_t *out) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    double d = json_is_real(v) ? json_real_value(v) : -1;
    if (d >= 0 && d < 9007199254740992.0 && d == floor(d)) {
        *out = (uint64_t)d;
        return true;
    }
    return false;
}

static int parse_dims(json_t *a, uint64_t *out, unsigned *n, const char *field, char *err,
                      size_t errlen) {
    if (!json_is_array(a) || json_array_size(a) > LUMIO_ZARR_MAX_DIMS) {
        snprintf(err, errlen, "%s: not an array of at most %d integers", field,
                 LUMIO_ZARR_MAX_DIMS);
        return LUMIO_E_FORMAT;
    }
    *n = (unsigned)json_array_size(a);
    for (unsigned i = 0; i < *n; i++) {
        if (!json_uint(json_array_get(a, i), &out[i])) {
            snprintf(err, errlen, "%s[%u]: not a non-negative integer", field, i);
            return LUMIO_E_FORMAT;
        }
    }
    return 0;
}

static int finish_shape(zarr_meta *m, char *err, size_t errlen) {
    lumio_zarr_info *info = &m->info;
    uint64_t bytes = info->itemsize, n = 1;
    for (unsigned i = 0; i < info->ndim; i++) {
        if (info->chunks[i] == 0) {
            snprintf(err, errlen, "chunks[%u]: zero", i);
            return LUMIO_E_FORMAT;
        }
        if (bytes > (1ull << 40) / info->chunks[i]) {
            snprintf(err, errlen, "chunks: a chunk of more than 1 TiB");
            return LUMIO_E_UNSUPPORTED;
        }
        bytes *= info->chunks[i];
        uint64_t g = info->shape[i] / info->chunks[i] + (info->shape[i] % info->chunks[i] != 0);
        n = g && n > UINT64_MAX / g ? UINT64_MAX : n * g;
    }
    m->chunk_bytes = bytes;
    info->nchunks = n;
    return 0;
}

static const char *shuffle_name(int s) {
    return s == 0 ? "noshuffle" : s == 2 ? "bitshuffle" : "shuffle";
}

static int parse_blosc(json_t *c, codec *k, unsigned itemsize, char *err, size_t errlen) {
    const char *cname = json_string_value(json_object_get(c, "cname"));
    json_t *clevel = json_object_get(c, "clevel"), *shuffle = json_object_get(c, "shuffle");
    static const char *const known[] = {"blosclz", "lz4", "lz4hc", "zlib", "zstd", "snappy"};
    bool ok = false;
    for (size_t i = 0; cname && i < sizeof known / sizeof *known; i++)
        ok |= !strcmp(cname, known[i]);
    if (!ok) {
        snprintf(err, errlen, "blosc: unsupported cname '%s'", cname ? cname : "(none)");
        return LUMIO_E_UNSUPPORTED;
    }
    snprintf(k->cname, sizeof k->cname, "%s", cname);
    k->id = CODEC_BLOSC;
    k->level = json_is_integer(clevel) ? (int)json_integer_value(clevel) : 5;
    k->typesize = itemsize;
    json_t *ts = json_object_get(c, "typesize");
    if (json_is_integer(ts) && json_integer_value(ts) > 0)
        k->typesize = (unsigned)json_integer_value(ts);
    if (json_is_integer(shuffle)) {
        k->shuffle = (int)json_integer_value(shuffle);
    } else if (json_is_string(shuffle)) { /* v3: "noshuffle", "shuffle", "bitshuffle" */
        const char *s = json_string_value(shuffle);
        k->shuffle = !strcmp(s, "noshuffle") ? 0 : !strcmp(s, "bitshuffle") ? 2 : 1;
    } else {
        k->shuffle = 1;
    }
    if (k->shuffle < -1 || k->shuffle > 2) {
        snprintf(err, errlen, "blosc: unsupported shuffle %d", k->shuffle);
        return LUMIO_E_UNSUPPORTED;
    }
    if (k->shuffle == -1) k->shuffle = itemsize == 1 ? 2 : 1; /* numcodecs AUTOSHUFFLE */
    return 0;
}

int zarr_parse_v2(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *root = load_json(text, len, &je);
    int rc = 0;
    if (!root || !json_is_object(root))
        FAIL(LUMIO_E_FORMAT, ".zarray: not JSON (line %d: %s)", je.line, je.text);
    lumio_zarr_info *info = &m->info;
    info->format = 2;
    uint64_t fmtv = 0;
    if (!json_uint(json_object_get(root, "zarr_format"), &fmtv) || fmtv != 2)
        FAIL(LUMIO_E_UNSUPPORTED, ".zarray: zarr_format is not 2");
    unsigned nd, nc;
    if ((rc = parse_dims(json_object_get(root, "shape"), info->shape, &nd, "shape", err, errlen)))
        goto out;
    if ((rc =
             parse_dims(json_object_get(root, "chunks"), info->chunks, &nc, "chunks", err, errlen)))
        goto out;
    if (nd != nc) FAIL(LUMIO_E_FORMAT, "chunks: %u dimensions for a shape of %u", nc, nd);
    info->ndim = nd;
    json_t *dt = json_object_get(root, "dtype");
    if (!json_is_string(dt)) FAIL(LUMIO_E_UNSUPPORTED, "dtype: not a simple type (structured?)");
    if (parse_numpy_dtype(json_string_value(dt), &info->type, &info->itemsize, &info->big_endian))
        FAIL(LUMIO_E_UNSUPPORTED, "dtype: unsupported data type '%s'", json_string_value(dt));
    snprintf(info->dtype, sizeof info->dtype, "%s", json_string_value(dt));
    const char *order = json_string_value(json_object_get(root, "order"));
    if (!order || (strcmp(order, "C") && strcmp(order, "F")))
        FAIL(LUMIO_E_UNSUPPORTED, "order: '%s' is not C or F", order ? order : "(none)");
    info->fortran_order = order[0] == 'F';
    const char *sep = json_string_value(json_object_get(root, "dimension_separator"));
    if (sep && strcmp(sep, ".") && strcmp(sep, "/"))
        FAIL(LUMIO_E_UNSUPPORTED, "dimension_separator: '%s'", sep);
    m->sep = sep ? sep[0] : '.';
    if ((rc = parse_fill(json_object_get(root, "fill_value"), info, err, errlen))) goto out;
    json_t *comp = json_object_get(root, "compressor");
    if (comp && !json_is_null(comp)) {
        const char *id = json_string_value(json_object_get(comp, "id"));
        codec *k = &m->compressor;
        json_t *lvl = json_object_get(comp, "level");
        k->level = json_is_integer(lvl) ? (int)json_integer_value(lvl) : 1;
        if (!id) FAIL(LUMIO_E_FORMAT, "compressor: no id");
        if (!strcmp(id, "zstd")) {
            k->id = CODEC_ZSTD;
        } else if (!strcmp(id, "zlib")) {
            k->id = CODEC_ZLIB;
        } else if (!strcmp(id, "gzip")) {
            k->id = CODEC_GZIP;
        } else if (!strcmp(id, "blosc")) {
            if ((rc = parse_blosc(comp, k, info->itemsize, err, errlen))) goto out;
        } else {
            FAIL(LUMIO_E_UNSUPPORTED, "compressor: unsupported codec '%s'", id);
        }
    }
    json_t *filters = json_object_get(root, "filters");
    if (filters && !json_is_null(filters)) {
        if (!json_is_array(filters) || json_array_size(filters) > MAX_CODECS)
            FAIL(LUMIO_E_FORMAT, "filters: not a list");
        for (size_t i = 0; i < json_array_size(filters); i++) {
            json_t *f = json_array_get(filters, i);
            const char *id = json_string_value(json_object_get(f, "id"));
            if (!id || strcmp(id, "delta"))
                FAIL(LUMIO_E_UNSUPPORTED, "filters[%zu]: unsupported filter '%s'", i,
                     id ? id : "(none)");
            const char *fdt = json_string_value(json_object_get(f, "dtype"));
            const char *ast = json_string_value(json_object_get(f, "astype"));
            codec *k = &m->filters[m->nfilters++];
            k->id = CODEC_DELTA;
            unsigned sz;
            if (!fdt || parse_numpy_dtype(fdt, &k->delta_type, &sz, &k->delta_big) ||
                sz != info->itemsize || (ast && strcmp(ast, fdt)))
                FAIL(LUMIO_E_UNSUPPORTED,
                     "filters[%zu]: delta with dtype '%s' astype '%s' (only the array's own)", i,
                     fdt ? fdt : "", ast ? ast : "");
        }
    }
    rc = finish_shape(m, err, errlen);
out:
    json_decref(root);
    if (rc == 0) zarr_describe_codecs(m);
    return rc;
}

/* ---- v3 --------------------------------------------------------------------- */

static int v3_codec(json_t *c, zarr_meta *m, char *err, size_t errlen) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *conf = json_object_get(c, "configuration");
    if (m->nchain == MAX_CODECS) {
        snprintf(err, errlen, "codecs: more than %d", MAX_CODECS);
        return LUMIO_E_UNSUPPORTED;
    }
    codec *k = &m->chain[m->nchain];
    memset(k, 0, sizeof *k);
    lumio_zarr_info *info = &m->info;
    if (!name) {
        snprintf(err, errlen, "codecs[%u]: no name", m->nchain);
        return LUMIO_E_FORMAT;
    }
    if (!strcmp(name, "bytes")) {
        const char *e = json_string_value(json_object_get(conf, "endian"));
        k->id = CODEC_BYTES;
        k->big_endian = e && !strcmp(e, "big");
        if (e && strcmp(e, "big") && strcmp(e, "little")) {
            snprintf(err, errlen, "codecs[%u]: bytes endian '%s'", m->nchain, e);
            return LUMIO_E_FORMAT;
        }
        info->big_endian = k->big_endian;
    } else if (!strcmp(name, "transpose")) {
        json_t *o = json_object_get(conf, "order");
        k->id = CODEC_TRANSPOSE;
        if (!json_is_array(o) || json_array_size(o) != info->ndim) {
            snprintf(err, errlen, "codecs[%u]: transpose order is not a permutation", m->nchain);
            return LUMIO_E_FORMAT;
        }
        unsigned seen = 0;
        for (unsigned i = 0; i < info->ndim; i++) {
            json_t *v = json_array_get(o, i);
            json_int_t d = json_is_integer(v) ? json_integer_value(v) : -1;
            if (d < 0 || d >= (json_int_t)info->ndim || (seen >> d) & 1) {
                snprintf(err, errlen, "codecs[%u]: transpose order is not a permutation",
                         m->nchain);
                return LUMIO_E_FORMAT;
            }
            seen |= 1u << d;
            k->order[i] = (unsigned)d;
        }
        bool reverse = true;
        for (unsigned i = 0; i < info->ndim; i++) reverse &= k->order[i] == info->ndim - 1 - i;
        bool identity = true;
        for (unsigned i = 0; i < info->ndim; i++) identity &= k->order[i] == i;
        if (!reverse && !identity) {
            snprintf(err, errlen, "codecs[%u]: transpose other than C or F order", m->nchain);
            return LUMIO_E_UNSUPPORTED;
        }
        info->fortran_order = reverse && info->ndim > 1;
        if (identity) return 0; /* nothing to do */
    } else if (!strcmp(name, "zstd")) {
        json_t *l = json_object_get(conf, "level");
        k->id = CODEC_ZSTD;
        k->level = json_is_integer(l) ? (int)json_integer_value(l) : 0;
    } else if (!strcmp(name, "gzip")) {
        json_t *l = json_object_get(conf, "level");
        k->id = CODEC_GZIP;
        k->level = json_is_integer(l) ? (int)json_integer_value(l) : 6;
    } else if (!strcmp(name, "blosc")) {
        int rc = parse_blosc(conf, k, info->itemsize, err, errlen);
        if (rc) return rc;
    } else if (!strcmp(name, "crc32c")) {
        k->id = CODEC_CRC32C;
    } else {
        snprintf(err, errlen, "codecs[%u]: unsupported codec '%s'", m->nchain, name);
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

/* sharding_indexed: inner chunk shape, inner codecs, index codecs, index
 * location. */
static int parse_sharding(json_t *conf, zarr_meta *m, char *err, size_t errlen) {
    lumio_zarr_info *info = &m->info;
    unsigned n;
    int rc = parse_dims(json_object_get(conf, "chunk_shape"), m->inner, &n,
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
        m->ninner *= info->chunks[d] / m->inner[d];
        info->inner_chunks[d] = m->inner[d];
    }
    /* The inner codecs, parsed as a chain of their own. */
    zarr_meta t;
    memset(&t, 0, sizeof t);
    t.info = *info;
    json_t *inner = json_object_get(conf, "codecs");
    if (!json_is_array(inner) || json_array_size(inner) == 0) {
        snprintf(err, errlen, "sharding_indexed.codecs: not a list");
        return LUMIO_E_FORMAT;
    }
    for (size_t i = 0; i < json_array_size(inner); i++) {
        const char *nm = json_string_value(json_object_get(json_array_get(inner, i), "name"));
        if (nm && !strcmp(nm, "sharding_indexed")) {
            snprintf(err, errlen, "sharding_indexed.codecs: nested sharding");
            return LUMIO_E_UNSUPPORTED;
        }
        if ((rc = v3_codec(json_array_get(inner, i), &t, err, errlen))) return rc;
    }
    if ((rc = check_chain(t.chain, t.nchain, info->itemsize, "sharding_indexed.codecs", err,
                          errlen)))
        return rc;
    memcpy(m->ichain, t.chain, sizeof m->ichain);
    m->nichain = t.nchain;
    info->big_endian = t.info.big_endian;
    info->fortran_order = t.info.fortran_order; /* of the inner chunks */
    /* Index codecs: bytes (little endian), optionally crc32c. */
    json_t *ic = json_object_get(conf, "index_codecs");
    for (size_t i = 0; json_is_array(ic) && i < json_array_size(ic); i++) {
        json_t *c = json_array_get(ic, i);
        const char *nm = json_string_value(json_object_get(c, "name"));
        const char *e =
            json_string_value(json_object_get(json_object_get(c, "configuration"), "endian"));
        if (nm && !strcmp(nm, "bytes") && (!e || !strcmp(e, "little"))) continue;
        if (nm && !strcmp(nm, "crc32c") && i + 1 == json_array_size(ic)) {
            m->index_crc = true;
            continue;
        }
        snprintf(err, errlen, "sharding_indexed.index_codecs[%zu]: unsupported '%s'", i,
                 nm ? nm : "");
        return LUMIO_E_UNSUPPORTED;
    }
    const char *loc = json_string_value(json_object_get(conf, "index_location"));
    if (loc && strcmp(loc, "start") && strcmp(loc, "end")) {
        snprintf(err, errlen, "sharding_indexed.index_location: '%s'", loc);
        return LUMIO_E_FORMAT;
    }
    m->index_at_start = loc && !strcmp(loc, "start");
    m->sharded = true;
    return 0;
}

int zarr_parse_v3(const char *text, size_t len, zarr_meta *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *root = load_json(text, len, &je);
    int rc = 0;
    if (!root || !json_is_object(root))
        FAIL(LUMIO_E_FORMAT, "zarr.json: not JSON (line %d: %s)", je.line, je.text);
    lumio_zarr_info *info = &m->info;
    info->format = 3;
    uint64_t fmtv = 0;
    if (!json_uint(json_object_get(root, "zarr_format"), &fmtv) || fmtv != 3)
        FAIL(LUMIO_E_UNSUPPORTED, "zarr.json: zarr_format is not 3");
    const char *nt = json_string_value(json_object_get(root, "node_type"));
    if (!nt || strcmp(nt, "array"))
        FAIL(LUMIO_E_UNSUPPORTED, "zarr.json: node_type '%s' is not an array", nt ? nt : "");
    unsigned nd, nc;
    if ((rc = parse_dims(json_object_get(root, "shape"), info->shape, &nd, "shape", err, errlen)))
        goto out;
    json_t *grid = json_object_get(root, "chunk_grid");
    const char *gname = json_string_value(json_object_get(grid, "name"));
    if (!gname || strcmp(gname, "regular"))
        FAIL(LUMIO_E_UNSUPPORTED, "chunk_grid: '%s' is not regular", gname ? gname : "");
    if ((rc = parse_dims(json_object_get(json_object_get(grid, "configuration"), "chunk_shape"),
                         info->chunks, &nc, "chunk_grid.configuration.chunk_shape", err, errlen)))
        goto out;
    if (nd != nc) FAIL(LUMIO_E_FORMAT, "chunk_shape: %u dimensions for a shape of %u", nc, nd);
    info->ndim = nd;
    const char *dt = json_string_value(json_object_get(root, "data_type"));
    size_t ti = 0;
    while (dt && ti < NTYPES && strcmp(types[ti].v3, dt)) ti++;
    if (!dt || ti == NTYPES) FAIL(LUMIO_E_UNSUPPORTED, "data_type: unsupported '%s'", dt ? dt : "");
    info->type = types[ti].type;
    info->itemsize = types[ti].size;
    json_t *kenc = json_object_get(root, "chunk_key_encoding");
    const char *kname = json_string_value(json_object_get(kenc, "name"));
    const char *ksep =
        json_string_value(json_object_get(json_object_get(kenc, "configuration"), "separator"));
    if (kname && !strcmp(kname, "v2")) {
        m->sep = ksep ? ksep[0] : '.';
    } else if (!kname || !strcmp(kname, "default")) {
        m->sep = ksep ? ksep[0] : '/';
        m->v3_c = true;
    } else {
        FAIL(LUMIO_E_UNSUPPORTED, "chunk_key_encoding: unsupported '%s'", kname);
    }
    if (m->sep != '.' && m->sep != '/')
        FAIL(LUMIO_E_UNSUPPORTED, "chunk_key_encoding: separator '%c'", m->sep);
    json_t *codecs = json_object_get(root, "codecs");
    if (!json_is_array(codecs) || json_array_size(codecs) == 0)
        FAIL(LUMIO_E_FORMAT, "codecs: not a list");
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
    if ((rc = parse_fill(json_object_get(root, "fill_value"), info, err, errlen))) goto out;
    /* Storage transformers change where the bytes are: one we do not know
     * cannot be read right. */
    json_t *st = json_object_get(root, "storage_transformers");
    if (st && !json_is_null(st) && (!json_is_array(st) || json_array_size(st) > 0)) {
        json_t *t0 = json_is_array(st) ? json_array_get(st, 0) : NULL;
        const char *name = json_string_value(json_object_get(t0, "name"));
        FAIL(LUMIO_E_UNSUPPORTED, "storage_transformers: '%s' is not supported", name ? name : "?");
    }
    rc = finish_shape(m, err, errlen);
out:
    json_decref(root);
    if (rc == 0) zarr_describe_codecs(m);
    return rc;
}

static void append(char *buf, size_t cap, const char *s) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", n ? "," : "", s);
}

static void describe(const codec *k, char *s, size_t cap) {
    switch (k->id) {
    case CODEC_ZSTD:
        snprintf(s, cap, "zstd:%d", k->level);
        break;
    case CODEC_ZLIB:
        snprintf(s, cap, "zlib:%d", k->level);
        break;
    case CODEC_GZIP:
        snprintf(s, cap, "gzip:%d", k->level);
        break;
    case CODEC_BLOSC:
        snprintf(s, cap, "blosc:%s:%d:%s", k->cname, k->level, shuffle_name(k->shuffle));
        break;
    case CODEC_DELTA:
        snprintf(s, cap, "delta");
        break;
    case CODEC_BYTES:
        snprintf(s, cap, "bytes:%s", k->big_endian ? "big" : "little");
        break;
    case CODEC_TRANSPOSE:
        snprintf(s, cap, "transpose");
        break;
    case CODEC_CRC32C:
        snprintf(s, cap, "crc32c");
        break;
    case CODEC_NONE:
        snprintf(s, cap, "none");
        break;
    }
}

void zarr_describe_codecs(zarr_meta *m) {
    char *buf = m->info.codecs;
    size_t cap = sizeof m->info.codecs;
    buf[0] = 0;
    char s[64];
    if (m->info.format == 2) {
        for (unsigned i = 0; i < m->nfilters; i++)
            describe(&m->filters[i], s, sizeof s), append(buf, cap, s);
        if (m->compressor.id == CODEC_NONE)
            append(buf, cap, "none");
        else
            describe(&m->compressor, s, sizeof s), append(buf, cap, s);
        return;
    }
    if (m->sharded) { /* "sharding(8x8x8:bytes:little,zstd:3)" */
        size_t n = (size_t)snprintf(buf, cap, "sharding(");
        for (unsigned d = 0; d < m->info.ndim && n < cap; d++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%llu", d ? "x" : "",
                                  (unsigned long long)m->inner[d]);
        for (unsigned i = 0; i < m->nichain && n < cap; i++) {
            describe(&m->ichain[i], s, sizeof s);
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : ":", s);
        }
        if (n < cap) snprintf(buf + n, cap - n, ")%s", m->index_crc ? ",index:crc32c" : "");
        return;
    }
    for (unsigned i = 0; i < m->nchain; i++)
        describe(&m->chain[i], s, sizeof s), append(buf, cap, s);
}

/* ---- writing metadata ------------------------------------------------------- */

static json_t *dims_json(const uint64_t *v, unsigned n) {
    json_t *a = json_array();
    for (unsigned i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static json_t *fill_json(const lumio_zarr_info *in) {
    uint64_t v = 0;
    for (unsigned i = 0; i < in->itemsize; i++)
        v |= (uint64_t)in->fill[in->big_endian ? in->itemsize - 1 - i : i] << (8 * i);
    double d;
    switch (in->type) {
    case LUMIO_ZARR_BOOL:
        return json_boolean(v != 0);
    case LUMIO_ZARR_FLOAT32: {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        d = f;
        break;
    }
    case LUMIO_ZARR_FLOAT64:
        memcpy(&d, &v, 8);
        break;
    case LUMIO_ZARR_INT8:
        return json_integer((int8_t)v);
    case LUMIO_ZARR_INT16:
        return json_integer((int16_t)v);
    case LUMIO_ZARR_INT32:
        return json_integer((int32_t)v);
    case LUMIO_ZARR_INT64:
        return json_integer((json_int_t)(int64_t)v);
    case LUMIO_ZARR_UINT64:
        if (v > (uint64_t)INT64_MAX) return json_real((double)v); /* jansson is signed */
        return json_integer((json_int_t)v);
    default:
        return json_integer((json_int_t)v);
    }
    if (isnan(d)) return json_string("NaN");
    if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *blosc_json(const codec *k, bool v3) {
    json_t *o = json_object();
    if (!v3) json_object_set_new(o, "id", json_string("blosc"));
    json_object_set_new(o, "cname", json_string(k->cname));
    json_object_set_new(o, "clevel", json_integer(k->level));
    if (v3) {
        json_object_set_new(o, "shuffle", json_string(shuffle_name(k->shuffle)));
        json_object_set_new(o, "typesize", json_integer(k->typesize));
    } else {
        json_object_set_new(o, "shuffle", json_integer(k->shuffle));
    }
    json_object_set_new(o, "blocksize", json_integer(0));
    return o;
}

static json_t *named(const char *name, json_t *conf) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    if (conf) json_object_set_new(o, "configuration", conf);
    return o;
}

static json_t *dump_chain(const codec *chain, unsigned n, unsigned ndim) {
    json_t *codecs = json_array();
    {
        for (unsigned i = 0; i < n; i++) {
            const codec *k = &chain[i];
            json_t *conf = NULL;
            const char *name = NULL;
            switch (k->id) {
            case CODEC_TRANSPOSE:
                name = "transpose";
                conf = json_object();
                json_object_set_new(conf, "order", json_array());
                for (unsigned d = 0; d < ndim; d++)
                    json_array_append_new(json_object_get(conf, "order"),
                                          json_integer(k->order[d]));
                break;
            case CODEC_BYTES:
                name = "bytes";
                conf = json_object();
                json_object_set_new(conf, "endian", json_string(k->big_endian ? "big" : "little"));
                break;
            case CODEC_ZSTD:
                name = "zstd";
                conf = json_object();
                json_object_set_new(conf, "level", json_integer(k->level));
                json_object_set_new(conf, "checksum", json_false());
                break;
            case CODEC_GZIP:
                name = "gzip";
                conf = json_object();
                json_object_set_new(conf, "level", json_integer(k->level));
                break;
            case CODEC_BLOSC:
                name = "blosc";
                conf = blosc_json(k, true);
                break;
            case CODEC_CRC32C:
                name = "crc32c";
                break;
            default:
                continue;
            }
            json_array_append_new(codecs, named(name, conf));
        }
    }
    return codecs;
}

char *zarr_dump_meta(const zarr_meta *m) {
    const lumio_zarr_info *in = &m->info;
    json_t *root = json_object();
    if (in->format == 2) {
        json_object_set_new(root, "zarr_format", json_integer(2));
        json_object_set_new(root, "shape", dims_json(in->shape, in->ndim));
        json_object_set_new(root, "chunks", dims_json(in->chunks, in->ndim));
        json_object_set_new(root, "dtype", json_string(in->dtype));
        const codec *k = &m->compressor;
        json_t *c = json_null();
        if (k->id == CODEC_BLOSC) {
            c = blosc_json(k, false);
        } else if (k->id != CODEC_NONE) {
            c = json_object();
            json_object_set_new(c, "id",
                                json_string(k->id == CODEC_ZSTD   ? "zstd"
                                            : k->id == CODEC_ZLIB ? "zlib"
                                                                  : "gzip"));
            json_object_set_new(c, "level", json_integer(k->level));
        }
        json_object_set_new(root, "compressor", c);
        json_object_set_new(root, "fill_value", fill_json(in));
        json_object_set_new(root, "order", json_string(in->fortran_order ? "F" : "C"));
        json_t *filters = m->nfilters ? json_array() : json_null();
        for (unsigned i = 0; i < m->nfilters; i++) { /* delta, in the array's dtype */
            json_t *f = json_object();
            json_object_set_new(f, "id", json_string("delta"));
            json_object_set_new(f, "dtype", json_string(in->dtype));
            json_object_set_new(f, "astype", json_string(in->dtype));
            json_array_append_new(filters, f);
        }
        json_object_set_new(root, "filters", filters);
        json_object_set_new(root, "dimension_separator", json_string(m->sep == '/' ? "/" : "."));
    } else {
        json_object_set_new(root, "zarr_format", json_integer(3));
        json_object_set_new(root, "node_type", json_string("array"));
        json_object_set_new(root, "shape", dims_json(in->shape, in->ndim));
        size_t ti = 0;
        while (ti < NTYPES && types[ti].type != in->type) ti++;
        json_object_set_new(root, "data_type", json_string(types[ti].v3));
        json_t *gc = json_object();
        json_object_set_new(gc, "chunk_shape", dims_json(in->chunks, in->ndim));
        json_object_set_new(root, "chunk_grid", named("regular", gc));
        json_t *kc = json_object();
        json_object_set_new(kc, "separator", json_string(m->sep == '.' ? "." : "/"));
        json_object_set_new(root, "chunk_key_encoding", named(m->v3_c ? "default" : "v2", kc));
        json_object_set_new(root, "fill_value", fill_json(in));
        json_t *codecs = dump_chain(m->sharded ? m->ichain : m->chain,
                                    m->sharded ? m->nichain : m->nchain, in->ndim);
        if (m->sharded) {
            json_t *conf = json_object();
            json_object_set_new(conf, "chunk_shape", dims_json(m->inner, in->ndim));
            json_object_set_new(conf, "codecs", codecs);
            json_t *ic = json_array();
            json_t *le = json_object();
            json_object_set_new(le, "endian", json_string("little"));
            json_array_append_new(ic, named("bytes", le));
            if (m->index_crc) json_array_append_new(ic, named("crc32c", NULL));
            json_object_set_new(conf, "index_codecs", ic);
            json_object_set_new(conf, "index_location",
                                json_string(m->index_at_start ? "start" : "end"));
            codecs = json_array();
            json_array_append_new(codecs, named("sharding_indexed", conf));
        }
        json_object_set_new(root, "codecs", codecs);
        json_object_set_new(root, "attributes", json_object());
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
