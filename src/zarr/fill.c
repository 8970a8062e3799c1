/* Fill values: the one place they are converted between the array's bytes
 * (lumio_zarr_info.fill: itemsize bytes in the array's byte order) and what
 * people and documents write: the metadata's JSON, both ways, and the text
 * of lumio_zarr_create_options.fill_value, both ways (a rechunk hands the
 * source's on as text). */
#include "zarr/zarr.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_float(lumio_zarr_type t) {
    return t == LUMIO_ZARR_FLOAT32 || t == LUMIO_ZARR_FLOAT64;
}

/* (for the integer types) */
static bool is_signed(lumio_zarr_type t) {
    return t <= LUMIO_ZARR_INT64;
}

/* The low itemsize bytes of bits as the fill value, in the array's order. */
static void store_bits(lumio_zarr_info *in, uint64_t bits) {
    unsigned size = in->itemsize;
    for (unsigned i = 0; i < size; i++)
        in->fill[in->big_endian ? size - 1 - i : i] = (uint8_t)(bits >> (8 * i));
}

static uint64_t load_bits(const lumio_zarr_info *in) {
    uint64_t v = 0;
    for (unsigned i = 0; i < in->itemsize; i++)
        v |= (uint64_t)in->fill[in->big_endian ? in->itemsize - 1 - i : i] << (8 * i);
    return v;
}

/* d as the IEEE 754 bits of a float of size bytes. */
static uint64_t float_bits(double d, unsigned size) {
    if (size == 8) {
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return bits;
    }
    float f = (float)d;
    uint32_t b32;
    memcpy(&b32, &f, 4);
    return b32;
}

static double bits_float(uint64_t v, unsigned size) {
    if (size == 8) {
        double d;
        memcpy(&d, &v, 8);
        return d;
    }
    uint32_t b = (uint32_t)v;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* An integer within the type's range. */
static bool int_fits(const lumio_zarr_info *in, int64_t v) {
    unsigned size = in->itemsize;
    bool sgn = is_signed(in->type);
    if (size == 8) return sgn || v >= 0;
    int64_t lo = sgn ? -(1ll << (8 * size - 1)) : 0;
    int64_t hi = sgn ? (1ll << (8 * size - 1)) - 1 : (int64_t)((1ull << (8 * size)) - 1);
    return v >= lo && v <= hi;
}

/* ---- from the metadata's JSON --------------------------------------------------- */

/* A float: a number, "NaN", "Infinity", "-Infinity", or (v3) the value's
 * IEEE 754 bits as a hex number ("0x7fc00000"). */
static bool float_from_json(const json_t *j, lumio_zarr_info *in) {
    unsigned size = in->itemsize;
    double d;
    if (json_is_number(j)) {
        d = json_number_value(j);
    } else if (json_is_string(j)) {
        const char *s = json_string_value(j);
        if (!strcmp(s, "NaN")) {
            d = NAN;
        } else if (!strcmp(s, "Infinity")) {
            d = INFINITY;
        } else if (!strcmp(s, "-Infinity")) {
            d = -INFINITY;
        } else if (!strncmp(s, "0x", 2) && strlen(s) == 2 + 2 * size &&
                   strspn(s + 2, "0123456789abcdefABCDEF") == 2 * size) {
            store_bits(in, strtoull(s + 2, NULL, 16));
            return true;
        } else {
            return false;
        }
    } else {
        return false;
    }
    store_bits(in, float_bits(d, size));
    return true;
}

/* An integer; or a whole number as a real, which is what jansson gives for
 * integers beyond int64 (a uint64 fill value) when parsed as reals. */
static bool int_from_json(const json_t *j, lumio_zarr_info *in) {
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (!int_fits(in, v)) return false;
        store_bits(in, (uint64_t)v);
        return true;
    }
    double d = json_is_real(j) ? json_real_value(j) : NAN;
    if (!(d == d) || d < -9223372036854775808.0 || d > 1.85e19 || d != floor(d)) return false;
    if (d >= 9.2233720368547758e18) { /* 2^63 and up: a uint64 */
        if (is_signed(in->type) || in->itemsize < 8) return false;
        store_bits(in, d >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)d);
        return true;
    }
    int64_t v = (int64_t)d;
    if ((double)v != d || !int_fits(in, v)) return false;
    store_bits(in, (uint64_t)v);
    return true;
}

int lumio__zarr_fill_from_json(const json_t *j, lumio_zarr_info *in, char *err, size_t errlen) {
    memset(in->fill, 0, sizeof in->fill);
    if (!j || json_is_null(j)) return 0;
    bool ok;
    if (in->type == LUMIO_ZARR_BOOL) {
        ok = json_is_boolean(j) || json_is_integer(j);
        in->fill[0] = json_is_true(j) || (json_is_integer(j) && json_integer_value(j) != 0);
    } else {
        ok = is_float(in->type) ? float_from_json(j, in) : int_from_json(j, in);
    }
    if (ok) return 0;
    memset(in->fill, 0, sizeof in->fill);
    snprintf(err, errlen, "fill_value: not a value of type %s", in->dtype);
    return LUMIO_E_FORMAT;
}

/* ---- into the metadata's JSON --------------------------------------------------- */

json_t *lumio__zarr_fill_to_json(const lumio_zarr_info *in) {
    uint64_t v = load_bits(in);
    switch (in->type) {
    case LUMIO_ZARR_BOOL:
        return json_boolean(v != 0);
    case LUMIO_ZARR_FLOAT32:
    case LUMIO_ZARR_FLOAT64: {
        double d = bits_float(v, in->itemsize);
        if (isnan(d)) return json_string("NaN");
        if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
        return json_real(d);
    }
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
}

/* ---- from and into text --------------------------------------------------------- */

/* An integer in decimal: 0 or LUMIO_E_FORMAT (not one, or out of range), or
 * LUMIO_E_UNSUPPORTED above 2^63-1, which jansson cannot write. */
static int int_from_text(const char *s, lumio_zarr_info *in) {
    char *end;
    errno = 0;
    bool neg = s[0] == '-';
    uint64_t bits = neg ? (uint64_t)strtoll(s, &end, 10) : strtoull(s, &end, 10);
    if (end == s || *end || errno) return LUMIO_E_FORMAT;
    if (neg && !is_signed(in->type)) return LUMIO_E_FORMAT;
    if (!neg && bits > (uint64_t)INT64_MAX) return LUMIO_E_UNSUPPORTED;
    if (!int_fits(in, (int64_t)bits)) return LUMIO_E_FORMAT;
    store_bits(in, bits);
    return 0;
}

int lumio__zarr_fill_from_text(const char *s, lumio_zarr_info *in, char *err, size_t errlen) {
    memset(in->fill, 0, sizeof in->fill);
    int rc = 0;
    if (in->type == LUMIO_ZARR_BOOL) {
        if (!strcmp(s, "true") || !strcmp(s, "1"))
            in->fill[0] = 1;
        else if (strcmp(s, "false") && strcmp(s, "0"))
            rc = LUMIO_E_FORMAT;
    } else if (is_float(in->type)) {
        char *end;
        double d = strtod(s, &end); /* also "nan", "inf", "-inf" */
        if (end == s || *end)
            rc = LUMIO_E_FORMAT;
        else
            store_bits(in, float_bits(d, in->itemsize));
    } else {
        rc = int_from_text(s, in);
    }
    if (rc == LUMIO_E_UNSUPPORTED)
        snprintf(err, errlen, "fill value '%s': values above 2^63-1 are not supported", s);
    else if (rc)
        snprintf(err, errlen, "fill value '%s' is not a %s", s, in->dtype);
    return rc;
}

void lumio__zarr_fill_to_text(const lumio_zarr_info *in, char *buf, size_t cap) {
    uint64_t v = load_bits(in);
    switch (in->type) {
    case LUMIO_ZARR_BOOL:
        snprintf(buf, cap, "%s", v ? "true" : "false");
        return;
    case LUMIO_ZARR_FLOAT32: /* as many digits as bring back the same bits */
        snprintf(buf, cap, "%.9g", bits_float(v, 4));
        return;
    case LUMIO_ZARR_FLOAT64:
        snprintf(buf, cap, "%.17g", bits_float(v, 8));
        return;
    case LUMIO_ZARR_INT8:
        snprintf(buf, cap, "%d", (int8_t)v);
        return;
    case LUMIO_ZARR_INT16:
        snprintf(buf, cap, "%d", (int16_t)v);
        return;
    case LUMIO_ZARR_INT32:
        snprintf(buf, cap, "%d", (int32_t)v);
        return;
    case LUMIO_ZARR_INT64:
        snprintf(buf, cap, "%" PRId64, (int64_t)v);
        return;
    default:
        snprintf(buf, cap, "%" PRIu64, v);
        return;
    }
}
