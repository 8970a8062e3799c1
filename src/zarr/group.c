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
#include <sys/stat.h>
#include <unistd.h>

enum { WALK_ENTRIES = 4096, WALK_DEPTH = 16, SHOWN = 8, PATH_BYTES = 4096 };

typedef struct names {
    char **v;
    size_t n, cap;
    unsigned seen; /* directory entries looked at, bounded by WALK_ENTRIES */
    bool cut;      /* the walk stopped at WALK_ENTRIES or WALK_DEPTH */
    size_t bad;    /* names in consolidated metadata that are not paths inside the group */
} names;

/* A path inside the group, fit to show on one line: relative, no empty,
 * "." or ".." component, no control character or backslash. Consolidated
 * metadata is someone else's text. */
static bool inside(const char *s, size_t len) {
    if (len == 0 || len > 1024) return false;
    size_t comp = 0; /* start of the current component */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            size_t n = i - comp;
            if (n == 0 || (n == 1 && s[comp] == '.') ||
                (n == 2 && s[comp] == '.' && s[comp + 1] == '.'))
                return false;
            comp = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return false;
    }
    return true;
}

static void add_name(names *ns, const char *s, size_t len) {
    if (!inside(s, len)) {
        ns->bad++;
        return;
    }
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

/* Append "/name" to the path of length len in p (PATH_BYTES); the new
 * length, or 0 when it does not fit. */
static size_t push(char *p, size_t len, const char *name) {
    size_t n = strlen(name);
    if (len + 1 + n >= PATH_BYTES) return 0;
    p[len] = '/';
    memcpy(p + len + 1, name, n + 1);
    return len + 1 + n;
}

static bool exists(char *p, size_t len, const char *name) {
    size_t k = push(p, len, name);
    bool yes = k && access(p, F_OK) == 0;
    p[len] = 0;
    return yes;
}

/* The arrays below the local group directory p[0..len) (one buffer for the
 * whole walk: a frame costs little stack however deep the groups go), as
 * paths relative to p[0..root). */
static void walk(char *p, size_t root, size_t len, unsigned depth, names *ns) {
    if (depth >= WALK_DEPTH) {
        ns->cut = true;
        return;
    }
    DIR *d = opendir(p);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (ns->seen++ >= WALK_ENTRIES) {
            ns->cut = true;
            break;
        }
        if (e->d_name[0] == '.' || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)) continue;
        size_t k = push(p, len, e->d_name);
        if (!k) continue;
        struct stat st; /* the walk never follows a link out of the group */
        if (e->d_type == DT_UNKNOWN && (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))) {
            p[len] = 0;
            continue;
        }
        const char *rel = p + root + 1;
        if (exists(p, k, ".zarray")) {
            add_name(ns, rel, k - root - 1);
        } else if (exists(p, k, ".zgroup")) {
            walk(p, root, k, depth + 1, ns);
        } else if (push(p, k, "zarr.json")) {
            /* Only its node_type is wanted: a regular file of sane size. */
            json_t *meta = lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (64 << 20)
                               ? json_load_file(p, 0, NULL)
                               : NULL;
            p[k] = 0;
            const char *nt = v3_node_type(meta);
            if (nt && !strcmp(nt, "array"))
                add_name(ns, rel, k - root - 1);
            else if (nt && !strcmp(nt, "group"))
                walk(p, root, k, depth + 1, ns);
            json_decref(meta);
        }
        p[len] = 0;
    }
    closedir(d);
}

/* v2 `.zmetadata`: its "metadata" keys "A/B/.zarray" name the arrays. */
static bool v2_consolidated(lumio_zarr *z, names *ns) {
    char *text = NULL;
    size_t len = 0;
    if (lumio__zarr_fetch_key(z, ".zmetadata", &text, &len) < 0) return false;
    json_t *root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, NULL);
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

bool lumio__zarr_group_error(lumio_zarr *z, const char *v3json, size_t len) {
    names ns = {0};
    bool listed;
    int version;
    if (v3json) {
        json_t *root = json_loadb(v3json, len, JSON_DECODE_INT_AS_REAL, NULL);
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
        if (lumio__zarr_fetch_key(z, ".zgroup", &text, &tl) < 0) return false;
        free(text);
        version = 2;
        listed = v2_consolidated(z, &ns);
    }
    if (!listed && !z->remote) {
        char *p = malloc(PATH_BYTES);
        size_t bl = strlen(z->base);
        if (p && bl < PATH_BYTES) {
            memcpy(p, z->base, bl + 1);
            walk(p, bl, bl, 0, &ns);
            listed = true;
        }
        free(p);
    }
    size_t cap = sizeof z->err,
           at = (size_t)snprintf(z->err, cap, "%s: a Zarr v%d group, not an array", z->base,
                                 version);
    const char *stopped = "the walk stopped after 16 levels or 4096 entries";
    if (!listed) {
        snprintf(z->err + at, cap - at,
                 " (it has no consolidated metadata to list its arrays: open one by its path)");
    } else if (ns.n == 0) {
        snprintf(z->err + at, cap - at, " (%s%s)",
                 ns.cut ? "no arrays found before " : "it holds no arrays", ns.cut ? stopped : "");
    } else {
        qsort(ns.v, ns.n, sizeof *ns.v, by_name);
        /* Whole names only, leaving room for the count of the rest. */
        size_t shown = 0;
        for (; shown < ns.n && shown < SHOWN && at + strlen(ns.v[shown]) + 128 < cap; shown++) {
            const char *sep = shown ? ", " : "; its arrays: ";
            at += (size_t)snprintf(z->err + at, cap - at, "%s%s", sep, ns.v[shown]);
        }
        if (shown < ns.n)
            at += (size_t)snprintf(z->err + at, cap - at, "%s%zu more", shown ? " and " : "; ",
                                   ns.n - shown);
        if (ns.cut) at += (size_t)snprintf(z->err + at, cap - at, " (%s)", stopped);
    }
    if (ns.bad && at < cap)
        snprintf(z->err + at, cap - at,
                 " (%zu names in its consolidated metadata are not paths inside the group)",
                 ns.bad);
    for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
    return true;
}
