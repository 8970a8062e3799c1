/* Fields of a JSON document someone else wrote (meta_json.c): each read
 * with its type checked; a wrong one is named in err ("FIELD: must be a
 * string, not an integer") and is LUMIO_E_FORMAT. */
#ifndef LUMIO_ZARR_META_JSON_H
#define LUMIO_ZARR_META_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The document parsed; a uint64 beyond int64 (jansson has none) read
 * again with every integer as a real. */
json_t *lumio__zarr_load_json(const char *text, size_t len, json_error_t *je);
/* The root: a JSON object ("empty", "not JSON (line L, column C: ...)",
 * "not a JSON object (the document is a list)"). */
int lumio__zarr_load_root(const char *text, size_t len, json_t **root, char *err, size_t errlen);
/* zarr_format is the number want. */
int lumio__zarr_check_format(json_t *root, uint64_t want, char *err, size_t errlen);

/* A string from the document, fit for a one-line message: quoted, cut at
 * 48 bytes, control bytes and backslashes as \xHH. */
typedef struct zarr_shown {
    char s[4 * 48 + 8];
} zarr_shown;
zarr_shown lumio__zarr_show(const char *s);
/* What a value is, as a message names it ("a list", "missing"). */
const char *lumio__zarr_jtype(const json_t *v);
int lumio__zarr_bad_type(const char *field, const char *want, const json_t *v, char *err,
                         size_t errlen);

/* A non-negative integer: an integer, or a whole real below 2^53. */
bool lumio__zarr_json_uint(json_t *v, uint64_t *out);
/* An integer, or a whole real within 2^53. */
bool lumio__zarr_json_whole(json_t *v, long long *out);
/* obj[key] as a string (NULL when absent or null, unless required). */
int lumio__zarr_get_str(json_t *obj, const char *key, const char *field, bool required,
                        const char **out, char *err, size_t errlen);
/* obj[key] as an integer in [lo, hi]; dflt when absent or null. */
int lumio__zarr_get_int(json_t *obj, const char *key, const char *field, long lo, long hi,
                        long dflt, int *out, char *err, size_t errlen);
/* obj[key] as an object (NULL when absent or null, unless required). */
int lumio__zarr_get_obj(json_t *obj, const char *key, const char *field, bool required,
                        json_t **out, char *err, size_t errlen);
/* A list of at most LUMIO_ZARR_MAX_DIMS non-negative integers. */
int lumio__zarr_parse_dims(json_t *a, uint64_t *out, unsigned *n, const char *field, char *err,
                           size_t errlen);

#endif
