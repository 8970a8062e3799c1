/* Zarr metadata written: the .zarray or zarr.json of an array lumio
 * creates, from the same zarr_meta the parser fills (meta.c parses it back
 * before it is stored). */
#include "zarr/zarr.h"

#include <jansson.h>

static json_t *dims_json(const uint64_t *v, unsigned n) {
    json_t *a = json_array();
    for (unsigned i = 0; i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static json_t *blosc_json(const codec *k, bool v3) {
    json_t *o = json_object();
    if (!v3) json_object_set_new(o, "id", json_string("blosc"));
    json_object_set_new(o, "cname", json_string(k->cname));
    json_object_set_new(o, "clevel", json_integer(k->level));
    if (v3) {
        json_object_set_new(o, "shuffle", json_string(lumio__zarr_shuffle_name(k->shuffle)));
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

/* v2 "compressor": null or {"id": ..., ...}. */
static json_t *compressor_json(const codec *k) {
    if (k->id == CODEC_BLOSC) return blosc_json(k, false);
    if (k->id == CODEC_NONE) return json_null();
    json_t *c = json_object();
    json_object_set_new(c, "id",
                        json_string(k->id == CODEC_ZSTD   ? "zstd"
                                    : k->id == CODEC_ZLIB ? "zlib"
                                                          : "gzip"));
    json_object_set_new(c, "level", json_integer(k->level));
    return c;
}

/* The document of a v2 array (.zarray). */
static void dump_v2(json_t *root, const zarr_meta *m) {
    const lumio_zarr_info *in = &m->info;
    json_object_set_new(root, "zarr_format", json_integer(2));
    json_object_set_new(root, "shape", dims_json(in->shape, in->ndim));
    json_object_set_new(root, "chunks", dims_json(in->chunks, in->ndim));
    json_object_set_new(root, "dtype", json_string(in->dtype));
    json_object_set_new(root, "compressor", compressor_json(&m->compressor));
    json_object_set_new(root, "fill_value", lumio__zarr_fill_to_json(in));
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
}

/* The one codec of a sharded array: sharding_indexed around the inner
 * chain (codecs), its index little endian with an optional crc32c. */
static json_t *sharding_json(const zarr_meta *m, json_t *codecs) {
    json_t *conf = json_object();
    json_object_set_new(conf, "chunk_shape", dims_json(m->inner, m->info.ndim));
    json_object_set_new(conf, "codecs", codecs);
    json_t *ic = json_array();
    json_t *le = json_object();
    json_object_set_new(le, "endian", json_string("little"));
    json_array_append_new(ic, named("bytes", le));
    if (m->index_crc) json_array_append_new(ic, named("crc32c", NULL));
    json_object_set_new(conf, "index_codecs", ic);
    json_object_set_new(conf, "index_location", json_string(m->index_at_start ? "start" : "end"));
    json_t *outer = json_array();
    json_array_append_new(outer, named("sharding_indexed", conf));
    return outer;
}

static void dump_v3(json_t *root, const zarr_meta *m) {
    const lumio_zarr_info *in = &m->info;
    json_object_set_new(root, "zarr_format", json_integer(3));
    json_object_set_new(root, "node_type", json_string("array"));
    json_object_set_new(root, "shape", dims_json(in->shape, in->ndim));
    json_object_set_new(root, "data_type", json_string(lumio__zarr_v3_type_name(in->type)));
    json_t *gc = json_object();
    json_object_set_new(gc, "chunk_shape", dims_json(in->chunks, in->ndim));
    json_object_set_new(root, "chunk_grid", named("regular", gc));
    json_t *kc = json_object();
    json_object_set_new(kc, "separator", json_string(m->sep == '.' ? "." : "/"));
    json_object_set_new(root, "chunk_key_encoding", named(m->v3_c ? "default" : "v2", kc));
    json_object_set_new(root, "fill_value", lumio__zarr_fill_to_json(in));
    json_t *codecs = dump_chain(m->sharded ? m->ichain : m->chain,
                                m->sharded ? m->nichain : m->nchain, in->ndim);
    if (m->sharded) codecs = sharding_json(m, codecs);
    json_object_set_new(root, "codecs", codecs);
    json_object_set_new(root, "attributes", json_object());
}

char *lumio__zarr_dump_meta(const zarr_meta *m) {
    json_t *root = json_object();
    if (m->info.format == 2)
        dump_v2(root, m);
    else
        dump_v3(root, m);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
