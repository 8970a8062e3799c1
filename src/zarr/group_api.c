/* Groups (lumio_zarr_group_open): a group's format, its user attributes and
 * its direct members, arrays and subgroups, from its consolidated metadata
 * (v2 `.zmetadata`, v3 inline) or, for a local directory, a look at its
 * subdirectories. The documents are someone else's: member names must be
 * plain names (no '/', no '.' or '..', no control character), and the
 * listing is bounded. */
#include "zarr/zarr.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_MEMBERS = 1 << 20, MAX_ENTRIES = 1 << 22 };

typedef struct member {
    char *name;
    lumio_zarr_node kind;
} member;

struct lumio_zarr_group {
    int format;
    int listed; /* members known (consolidated metadata, or a local directory) */
    char *attrs;
    member *m;
    size_t n, cap;
};

static bool plain_name(const char *s, size_t len) {
    if (len == 0 || len > 1024 || (len == 1 && s[0] == '.') ||
        (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
    }
    return true;
}

static int add(lumio_zarr_group *g, const char *name, size_t len, lumio_zarr_node kind) {
    if (!plain_name(name, len)) return 0; /* a nested path or a hostile name: not a member */
    for (size_t i = 0; i < g->n; i++)     /* (v2 consolidated may name both .zarray and .zattrs) */
        if (!strncmp(g->m[i].name, name, len) && !g->m[i].name[len]) return 0;
    if (g->n == MAX_MEMBERS) return -E2BIG;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        member *m = realloc(g->m, cap * sizeof *m);
        if (!m) return -ENOMEM;
        g->m = m;
        g->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy) return -ENOMEM;
    g->m[g->n++] = (member){copy, kind};
    return 0;
}

static lumio_zarr_node v3_kind(json_t *node) {
    const char *t = json_string_value(json_object_get(node, "node_type"));
    return !t                    ? 0
           : !strcmp(t, "array") ? LUMIO_ZARR_ARRAY
           : !strcmp(t, "group") ? LUMIO_ZARR_GROUP
                                 : 0;
}

/* v2 `.zmetadata`: keys "NAME/.zarray" and "NAME/.zgroup" are members. */
static int v2_consolidated(lumio_zarr *s, lumio_zarr_group *g) {
    char *text = NULL;
    size_t len = 0;
    if (lumio__zarr_fetch_key(s, ".zmetadata", &text, &len) < 0) return 0; /* none */
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    json_t *md = json_object_get(root, "metadata");
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(md, key, v) {
        size_t kl = strlen(key);
        if (kl > 8 && !strcmp(key + kl - 8, "/.zarray"))
            rc = add(g, key, kl - 8, LUMIO_ZARR_ARRAY);
        else if (kl > 8 && !strcmp(key + kl - 8, "/.zgroup"))
            rc = add(g, key, kl - 8, LUMIO_ZARR_GROUP);
        if (rc < 0) break;
    }
    g->listed = json_is_object(md);
    json_decref(root);
    return rc;
}

/* v3 consolidated metadata, inline in the group's zarr.json. */
static int v3_consolidated(json_t *root, lumio_zarr_group *g) {
    json_t *md = json_object_get(json_object_get(root, "consolidated_metadata"), "metadata");
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(md, key, v) {
        lumio_zarr_node k = v3_kind(v);
        if (k && (rc = add(g, key, strlen(key), k)) < 0) break;
    }
    g->listed = json_is_object(md);
    return rc;
}

/* What the local directory dir/name holds: an array, a group, or neither. */
static lumio_zarr_node local_kind(const char *dir, const char *name, int format) {
    char p[4200];
    struct stat st;
    if (format == 2) {
        snprintf(p, sizeof p, "%s/%s/.zarray", dir, name);
        if (access(p, F_OK) == 0) return LUMIO_ZARR_ARRAY;
        snprintf(p, sizeof p, "%s/%s/.zgroup", dir, name);
        return access(p, F_OK) == 0 ? LUMIO_ZARR_GROUP : 0;
    }
    snprintf(p, sizeof p, "%s/%s/zarr.json", dir, name);
    if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) return 0;
    json_t *j = json_load_file(p, 0, NULL);
    lumio_zarr_node k = v3_kind(j);
    json_decref(j);
    return k;
}

/* A local group without consolidated metadata: its subdirectories. */
static int local_members(const char *dir, lumio_zarr_group *g) {
    DIR *d = opendir(dir);
    if (!d) return -errno;
    struct dirent *e;
    int rc = 0;
    for (unsigned seen = 0; rc == 0 && (e = readdir(d)) && seen < MAX_ENTRIES; seen++) {
        if (e->d_name[0] == '.' || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)) continue;
        lumio_zarr_node k = local_kind(dir, e->d_name, g->format);
        if (k) rc = add(g, e->d_name, strlen(e->d_name), k);
    }
    closedir(d);
    g->listed = 1;
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const member *)a)->name, ((const member *)b)->name);
}

/* The group's format and, for v3, its zarr.json (to free). */
static int group_format(lumio_zarr *s, lumio_zarr_group *g, json_t **v3) {
    char *text = NULL;
    size_t len = 0;
    int rc = lumio__zarr_fetch_key(s, ".zgroup", &text, &len);
    if (rc == 0) {
        free(text);
        g->format = 2;
        return 0;
    }
    if (rc != -ENOENT) return rc;
    rc = lumio__zarr_fetch_key(s, "zarr.json", &text, &len);
    if (rc == 0) {
        *v3 = json_loadb(text, len, 0, NULL);
        free(text);
        lumio_zarr_node k = v3_kind(*v3);
        if (k == LUMIO_ZARR_GROUP) {
            g->format = 3;
            return 0;
        }
        snprintf(s->err, sizeof s->err, "%s: %s", s->base,
                 k == LUMIO_ZARR_ARRAY ? "a Zarr array, not a group"
                                       : "zarr.json: not a Zarr node");
        return k == LUMIO_ZARR_ARRAY ? -ENOTDIR : LUMIO_E_FORMAT;
    }
    if (rc == -ENOENT) {
        char *t = NULL;
        bool array = lumio__zarr_fetch_key(s, ".zarray", &t, &len) == 0;
        free(t);
        snprintf(s->err, sizeof s->err, "%s: %s", s->base,
                 array ? "a Zarr array, not a group"
                       : "not a Zarr group (no .zgroup or zarr.json)");
        return array ? -ENOTDIR : -ENOENT;
    }
    return rc;
}

static int group_read(lumio_zarr *s, lumio_zarr_group *g) {
    json_t *v3 = NULL;
    int rc = group_format(s, g, &v3);
    if (rc == 0) rc = g->format == 2 ? v2_consolidated(s, g) : v3_consolidated(v3, g);
    json_decref(v3);
    if (rc == 0 && !g->listed && !s->remote) rc = local_members(s->base, g);
    if (rc == 0) rc = lumio__zarr_user_attrs(s, g->format, &g->attrs);
    if (rc == 0) qsort(g->m, g->n, sizeof *g->m, by_name);
    if (rc < 0 && !s->err[0])
        snprintf(s->err, sizeof s->err, "%s: %s", s->base, lumio_strerror(rc));
    return rc;
}

static int group_open(lumio_zarr_group **out, const char *location, const lumio_zarr_options *o) {
    if (!location) return -EINVAL;
    if (o && !lumio__zero(o->reserved, sizeof o->reserved)) {
        snprintf(lumio__zarr_open_error(), 1024,
                 "lumio_zarr_options: reserved fields are not zero");
        return -EINVAL;
    }
    lumio_zarr_group *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    lumio_zarr *s;
    int rc = lumio__zarr_open_store(&s, location, o);
    if (rc == 0) {
        rc = group_read(s, g);
        if (rc < 0) snprintf(lumio__zarr_open_error(), 1024, "%s", s->err);
        lumio_zarr_close(s); /* the group keeps what it read, not the store */
    }
    if (rc < 0) {
        lumio_zarr_group_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int lumio_zarr_group_open(lumio_zarr_group **out, const char *location,
                          const lumio_zarr_options *o) {
    if (!out) return -EINVAL;
    *out = NULL;
    return lumio__zarr_published(NULL, lumio__zarr_begin(NULL) ? 0 : group_open(out, location, o));
}

int lumio_zarr_group_format(const lumio_zarr_group *g) {
    return g->format;
}

int lumio_zarr_group_listed(const lumio_zarr_group *g) {
    return g->listed;
}

size_t lumio_zarr_group_count(const lumio_zarr_group *g) {
    return g->n;
}

const char *lumio_zarr_group_member(const lumio_zarr_group *g, size_t i, lumio_zarr_node *kind) {
    if (i >= g->n) return NULL;
    if (kind) *kind = g->m[i].kind;
    return g->m[i].name;
}

const char *lumio_zarr_group_attrs(const lumio_zarr_group *g) {
    return g->attrs;
}

void lumio_zarr_group_close(lumio_zarr_group *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n; i++) free(g->m[i].name);
    free(g->m);
    free(g->attrs);
    free(g);
}
