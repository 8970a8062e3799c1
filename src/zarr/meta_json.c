/* Fields of a JSON document someone else wrote (meta.c): each
 * read with its type checked, and named in the error when it is wrong. */
#include "zarr/meta_json.h"

#include "zarr/zarr.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* jansson has no uint64: a document with an integer beyond int64 (a uint64
 * fill value) is read again with integers as reals. */
json_t *lumio__zarr_load_json(const char *text, size_t len, json_error_t *je) {
    json_t *root = json_loadb(text, len, 0, je);
    if (!root && strstr(je->text, "too big"))
        root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, je);
    return root;
}

/* A non-negative integer, as an integer or a whole real below 2^53. */
bool lumio__zarr_json_uint(json_t *v, uint64_t *out) {
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

/* A string from the document, fit for a one-line message: quoted, cut at 48
 * bytes, anything but printable ASCII as \xHH (no newline or terminal escape
 * reaches the user's screen). */
zarr_shown lumio__zarr_show(const char *s) {
    zarr_shown out;
    size_t n = 0;
    out.s[n++] = '\'';
    for (size_t i = 0; s && s[i] && n + 8 < sizeof out.s; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 48) {
            n += (size_t)snprintf(out.s + n, sizeof out.s - n, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out.s[n++] = (char)c;
        else
            n += (size_t)snprintf(out.s + n, sizeof out.s - n, "\\x%02x", c);
    }
    out.s[n++] = '\'';
    out.s[n] = 0;
    return out;
}

/* What a JSON value is, as a message names it. */
const char *lumio__zarr_jtype(const json_t *v) {
    if (!v) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

int lumio__zarr_bad_type(const char *field, const char *want, const json_t *v, char *err,
                         size_t errlen) {
    snprintf(err, errlen, "%s: must be %s, not %s", field, want, lumio__zarr_jtype(v));
    return LUMIO_E_FORMAT;
}

/* obj[key] as a string; NULL when absent or null unless required. */
int lumio__zarr_get_str(json_t *obj, const char *key, const char *field, bool required,
                        const char **out, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if ((!v || json_is_null(v)) && !required) return 0;
    if (!json_is_string(v)) return lumio__zarr_bad_type(field, "a string", v, err, errlen);
    *out = json_string_value(v);
    return 0;
}

/* An integer, or a whole real within 2^53 (a document with a uint64 fill
 * value is read with every integer as a real: load_json). */
bool lumio__zarr_json_whole(json_t *v, long long *out) {
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    double d = json_is_real(v) ? json_real_value(v) : NAN;
    if (!(fabs(d) < 9007199254740992.0) || d != floor(d)) return false;
    *out = (long long)d;
    return true;
}

/* obj[key] as an integer in [lo, hi]; dflt when absent (or null). */
int lumio__zarr_get_int(json_t *obj, const char *key, const char *field, long lo, long hi,
                        long dflt, int *out, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = (int)dflt;
        return 0;
    }
    long long x;
    if (!lumio__zarr_json_whole(v, &x) || x < lo || x > hi) {
        snprintf(err, errlen, "%s: must be an integer from %ld to %ld, not %s", field, lo, hi,
                 json_is_number(v) ? "that" : lumio__zarr_jtype(v));
        return LUMIO_E_FORMAT;
    }
    *out = (int)x;
    return 0;
}

/* obj[key] as an object (or NULL when absent or null and not required). */
int lumio__zarr_get_obj(json_t *obj, const char *key, const char *field, bool required,
                        json_t **out, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if ((!v || json_is_null(v)) && !required) return 0;
    if (!json_is_object(v)) return lumio__zarr_bad_type(field, "an object", v, err, errlen);
    *out = v;
    return 0;
}

/* The document's root: a JSON object. */
int lumio__zarr_load_root(const char *text, size_t len, json_t **root, char *err, size_t errlen) {
    json_error_t je;
    *root = NULL;
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n", text[blank])) blank++;
    if (blank == len) {
        snprintf(err, errlen, "empty (no JSON object)");
        return LUMIO_E_FORMAT;
    }
    json_t *r = lumio__zarr_load_json(text, len, &je);
    if (!r) {
        snprintf(err, errlen, "not JSON (line %d, column %d: %s)", je.line, je.column,
                 lumio__zarr_show(je.text).s);
        return LUMIO_E_FORMAT;
    }
    if (!json_is_object(r)) {
        snprintf(err, errlen, "not a JSON object (the document is %s)", lumio__zarr_jtype(r));
        json_decref(r);
        return LUMIO_E_FORMAT;
    }
    *root = r;
    return 0;
}

int lumio__zarr_check_format(json_t *root, uint64_t want, char *err, size_t errlen) {
    json_t *v = json_object_get(root, "zarr_format");
    uint64_t got = 0;
    if (!json_is_number(v) || !lumio__zarr_json_uint(v, &got) || got != want) {
        snprintf(err, errlen, "zarr_format: must be the number %llu, not %s",
                 (unsigned long long)want, json_is_number(v) ? "that" : lumio__zarr_jtype(v));
        return json_is_number(v) ? LUMIO_E_UNSUPPORTED : LUMIO_E_FORMAT;
    }
    return 0;
}

int lumio__zarr_parse_dims(json_t *a, uint64_t *out, unsigned *n, const char *field, char *err,
                           size_t errlen) {
    if (!json_is_array(a) || json_array_size(a) > LUMIO_ZARR_MAX_DIMS) {
        snprintf(err, errlen, "%s: must be a list of at most %d integers, not %s", field,
                 LUMIO_ZARR_MAX_DIMS, json_is_array(a) ? "a longer list" : lumio__zarr_jtype(a));
        return LUMIO_E_FORMAT;
    }
    *n = (unsigned)json_array_size(a);
    for (unsigned i = 0; i < *n; i++) {
        if (!lumio__zarr_json_uint(json_array_get(a, i), &out[i])) {
            snprintf(err, errlen, "%s[%u]: not a non-negative integer", field, i);
            return LUMIO_E_FORMAT;
        }
    }
    return 0;
}
