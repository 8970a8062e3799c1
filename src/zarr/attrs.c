/* User attributes, of arrays and groups: v2 keeps them in `.zattrs` beside
 * the metadata, v3 in the "attributes" member of zarr.json. They are
 * someone else's JSON: parsed whole, bounded by the store's key size cap,
 * handed back as compact JSON text. */
#include "zarr/zarr.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The attributes object as compact JSON ("{}" when there is none), malloc'd
 * into *json; the format's document is read from the store of z. */
int lumio__zarr_user_attrs(lumio_zarr *z, int format, char **json) {
    char *text = NULL;
    size_t len = 0;
    const char *key = format == 2 ? ".zattrs" : "zarr.json";
    int rc = lumio__zarr_fetch_key(z, key, &text, &len);
    if (rc == -ENOENT && format == 2) { /* no .zattrs: no attributes */
        *json = strdup("{}");
        return *json ? 0 : -ENOMEM;
    }
    if (rc < 0) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    json_t *attrs = format == 2 ? root : json_object_get(root, "attributes");
    if (!root || (attrs && !json_is_object(attrs))) {
        snprintf(z->err, sizeof z->err, "%s/%s: %s", z->base, key,
                 root ? "attributes: not a JSON object" : jerr.text);
        json_decref(root);
        return LUMIO_E_FORMAT;
    }
    *json = attrs ? json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    json_decref(root);
    return *json ? 0 : -ENOMEM;
}

int lumio_zarr_get_attrs(lumio_zarr *z, const char **json) {
    if (!z || !json) return -EINVAL;
    *json = NULL;
    lumio__zarr_begin(z);
    int rc = z->attrs ? 0 : lumio__zarr_user_attrs(z, z->m.info.format, &z->attrs);
    if (rc == 0) *json = z->attrs;
    return lumio__zarr_published(z, rc);
}
