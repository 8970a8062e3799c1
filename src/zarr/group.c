/* Opening a group where an array was expected: the error says so, and names
 * the arrays the group holds, from its consolidated metadata (v2
 * `.zmetadata`, v3 `consolidated_metadata`) or, for a local directory, by
 * walking its subgroups (never an array's own directory, which may hold
 * millions of chunks). */
#include "zarr/zarr.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WALK_ENTRIES = 4096, WALK_DEPTH = 16, SHOWN = 8 };

typedef struct names {
    char **v;
    size_t n, cap;
    unsigned seen; /* directory entries looked at, bounded by WALK_ENTRIES */
} names;

static void add_name(names *ns, const char *s, size_t len) {
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 16;
        char **v = realloc(ns->v, cap * sizeof *v);
        if (!v) return;
        ns->v = v;
        ns->cap = cap;
    }
    char *copy = strndup(s, len);
    if (copy) ns->v[ns->n++] = copy;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "array", "group" or NULL: the node_type of a v3 zarr.json text. */
static const char *v3_node_type(json_t *root) {
    return json_string_value(json_object_get(root, "node_type"));
}

/* a/b into out; false when it does not fit. */
static bool join2(char *out, size_t n, const char *a, const char *sep, const char *b) {
    int k = snprintf(out, n, "%s%s%s", a, sep, b);
    return k >= 0 && (size_t)k < n;
}

static bool is_file(const char *dir, const char *name) {
    char p[4096];
    return join2(p, sizeof p, dir, "/", name) && access(p, F_OK) == 0;
}

/* The arrays below a local group directory, as paths relative to it. */
static void walk(const char *dir, const char *rel, unsigned depth, names *ns) {
    DIR *d = depth < WALK_DEPTH ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && ns->seen++ < WALK_ENTRIES) {
        if (e->d_name[0] == '.' || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)) continue;
        char path[4096], sub[4096], meta[4096];
        if (!join2(path, sizeof path, dir, "/", e->d_name) ||
            !join2(sub, sizeof sub, rel, *rel ? "/" : "", e->d_name))
            continue;
        if (is_file(path, ".zarray")) {
            add_name(ns, sub, strlen(sub));
        } else if (is_file(path, ".zgroup")) {
            walk(path, sub, depth + 1, ns);
        } else if (join2(meta, sizeof meta, path, "/", "zarr.json") && access(meta, F_OK) == 0) {
            json_t *root = json_load_file(meta, 0, NULL);
            const char *nt = v3_node_type(root);
            if (nt && !strcmp(nt, "array"))
                add_name(ns, sub, strlen(sub));
            else if (nt && !strcmp(nt, "group"))
                walk(path, sub, depth + 1, ns);
            json_decref(root);
        }
    }
    closedir(d);
}

/* v2 `.zmetadata`: its "metadata" keys "A/B/.zarray" name the arrays. */
static bool v2_consolidated(lumio_zarr *z, names *ns) {
    char *text = NULL;
    size_t len = 0;
    if (zarr_fetch_key(z, ".zmetadata", &text, &len) < 0) return false;
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *md = json_object_get(root, "metadata");
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v) {
        size_t kl = strlen(key);
        if (kl > 8 && !strcmp(key + kl - 8, "/.zarray")) add_name(ns, key, kl - 8);
    }
    bool ok = json_is_object(md);
    json_decref(root);
    return ok;
}

/* v3 `consolidated_metadata`: its "metadata" maps paths to nodes. */
static bool v3_consolidated(json_t *root, names *ns) {
    json_t *md = json_object_get(json_object_get(root, "consolidated_metadata"), "metadata");
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v) {
        const char *nt = v3_node_type(v);
        if (nt && !strcmp(nt, "array")) add_name(ns, key, strlen(key));
    }
    return json_is_object(md);
}

bool zarr_group_error(lumio_zarr *z, const char *v3json, size_t len) {
    names ns = {0};
    bool listed;
    int version;
    if (v3json) {
        json_t *root = json_loadb(v3json, len, 0, NULL);
        const char *nt = v3_node_type(root);
        if (!nt || strcmp(nt, "group")) {
            json_decref(root);
            return false;
        }
        version = 3;
        listed = v3_consolidated(root, &ns);
        json_decref(root);
    } else {
        char *text = NULL;
        size_t tl = 0;
        if (zarr_fetch_key(z, ".zgroup", &text, &tl) < 0) return false;
        free(text);
        version = 2;
        listed = v2_consolidated(z, &ns);
    }
    bool partial = false;
    if (!listed && !z->remote) {
        walk(z->base, "", 0, &ns);
        listed = true;
        partial = ns.seen > WALK_ENTRIES;
    }
    int at =
        snprintf(z->err, sizeof z->err, "%s: a Zarr v%d group, not an array", z->base, version);
    if (!listed) {
        snprintf(z->err + at, sizeof z->err - at,
                 " (it has no consolidated metadata to list its arrays: open one by its path)");
    } else if (ns.n == 0) {
        snprintf(z->err + at, sizeof z->err - at, " (it holds no arrays)");
    } else {
        qsort(ns.v, ns.n, sizeof *ns.v, by_name);
        for (size_t i = 0; i < ns.n && i < SHOWN && at < (int)sizeof z->err; i++)
            at += snprintf(z->err + at, sizeof z->err - at, "%s%.200s",
                           i ? ", " : "; its arrays: ", ns.v[i]);
        if (ns.n > SHOWN && at < (int)sizeof z->err)
            at += snprintf(z->err + at, sizeof z->err - at, " and %zu more", ns.n - SHOWN);
        if (partial && at < (int)sizeof z->err)
            snprintf(z->err + at, sizeof z->err - at, " (the first %d entries looked at)",
                     WALK_ENTRIES);
    }
    for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
    return true;
}
