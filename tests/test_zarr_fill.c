/* Fill values converted by src/zarr/fill.c, the one place that does it:
 * from the text of lumio_zarr_create_options.fill_value and from metadata
 * JSON into the array's bytes (in its byte order), and back into JSON and
 * into text that converts back to the same bytes (what a rechunk hands on,
 * what `lumio zarr info` shows). */
#include "src/zarr/zarr.h"
#include "tests/testutil.h"

#include <jansson.h>
#include <lumio/zarr.h>

/* The info fill.c needs: type, size, order and dtype (for messages). */
static lumio_zarr_info info_of(lumio_zarr_type t, unsigned size, int big, const char *dtype) {
    lumio_zarr_info in;
    memset(&in, 0, sizeof in);
    in.type = t;
    in.itemsize = size;
    in.big_endian = big;
    snprintf(in.dtype, sizeof in.dtype, "%s", dtype);
    return in;
}

/* text -> bytes == want; bytes -> text == shown; that text -> the same
 * bytes; bytes -> JSON -> the same bytes. */
static void round_trip(lumio_zarr_info in, const char *text, const char *want, const char *shown) {
    char err[256] = "", back[64];
    int rc = lumio__zarr_fill_from_text(text, &in, err, sizeof err);
    if (rc || memcmp(in.fill, want, in.itemsize)) {
        FAIL("%s as %s: rc %d (%s), bytes differ", text, in.dtype, rc, err);
    }
    lumio__zarr_fill_to_text(&in, back, sizeof back);
    if (strcmp(back, shown)) {
        FAIL("%s as %s: shown as '%s', expected '%s'", text, in.dtype, back, shown);
    }
    lumio_zarr_info again = in;
    CHECK_EQ(lumio__zarr_fill_from_text(back, &again, err, sizeof err), 0);
    CHECK(memcmp(again.fill, in.fill, sizeof in.fill) == 0);
    json_t *j = (json_t *)lumio__zarr_fill_to_json(&in);
    lumio_zarr_info parsed = in;
    CHECK(j != NULL);
    CHECK_EQ(lumio__zarr_fill_from_json(j, &parsed, err, sizeof err), 0);
    CHECK(memcmp(parsed.fill, in.fill, sizeof in.fill) == 0);
    json_decref(j);
}

TEST(text_round_trips) {
    round_trip(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), "1", "\x01", "true");
    round_trip(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), "false", "\x00", "false");
    round_trip(info_of(LUMIO_ZARR_INT8, 1, 0, "|i1"), "-128", "\x80", "-128");
    round_trip(info_of(LUMIO_ZARR_UINT8, 1, 0, "|u1"), "255", "\xff", "255");
    round_trip(info_of(LUMIO_ZARR_UINT16, 2, 0, "<u2"), "258", "\x02\x01", "258");
    round_trip(info_of(LUMIO_ZARR_UINT16, 2, 1, ">u2"), "258", "\x01\x02", "258");
    round_trip(info_of(LUMIO_ZARR_INT32, 4, 1, ">i4"), "-2", "\xff\xff\xff\xfe", "-2");
    round_trip(info_of(LUMIO_ZARR_INT64, 8, 0, "<i8"), "-9223372036854775808", "\0\0\0\0\0\0\0\x80",
               "-9223372036854775808");
    round_trip(info_of(LUMIO_ZARR_UINT64, 8, 0, "<u8"), "9223372036854775807",
               "\xff\xff\xff\xff\xff\xff\xff\x7f", "9223372036854775807");
    round_trip(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), "-1.5", "\x00\x00\xc0\xbf", "-1.5");
    round_trip(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), "0.1", "\xcd\xcc\xcc\x3d", "0.100000001");
    round_trip(info_of(LUMIO_ZARR_FLOAT64, 8, 1, ">f8"), "0.1", "\x3f\xb9\x99\x99\x99\x99\x99\x9a",
               "0.10000000000000001");
    round_trip(info_of(LUMIO_ZARR_FLOAT64, 8, 0, "<f8"), "-inf", "\0\0\0\0\0\0\xf0\xff", "-inf");
    round_trip(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), "nan", "\x00\x00\xc0\x7f", "nan");
}

/* The text that is not a value of the type, named whole. */
static void text_refused(lumio_zarr_info in, const char *text, int code, const char *want) {
    char err[256] = "";
    int rc = lumio__zarr_fill_from_text(text, &in, err, sizeof err);
    if (rc != code || strcmp(err, want)) {
        FAIL("%s as %s: rc %d '%s', expected %d '%s'", text, in.dtype, rc, err, code, want);
    }
}

TEST(text_refused) {
    text_refused(info_of(LUMIO_ZARR_UINT8, 1, 0, "|u1"), "256", LUMIO_E_FORMAT,
                 "fill value '256' is not a |u1");
    text_refused(info_of(LUMIO_ZARR_UINT32, 4, 0, "<u4"), "-1", LUMIO_E_FORMAT,
                 "fill value '-1' is not a <u4");
    text_refused(info_of(LUMIO_ZARR_INT16, 2, 0, "<i2"), "1.5", LUMIO_E_FORMAT,
                 "fill value '1.5' is not a <i2");
    text_refused(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), "yes", LUMIO_E_FORMAT,
                 "fill value 'yes' is not a |b1");
    text_refused(info_of(LUMIO_ZARR_FLOAT64, 8, 0, "<f8"), "1e", LUMIO_E_FORMAT,
                 "fill value '1e' is not a <f8");
    text_refused(info_of(LUMIO_ZARR_UINT64, 8, 0, "<u8"), "9223372036854775808",
                 LUMIO_E_UNSUPPORTED,
                 "fill value '9223372036854775808': values above 2^63-1 are not supported");
    text_refused(info_of(LUMIO_ZARR_INT64, 8, 0, "<i8"), "-9223372036854775809", LUMIO_E_FORMAT,
                 "fill value '-9223372036854775809' is not a <i8");
}

/* A fill value of the metadata (j, taken) into bytes: 0 and want, or
 * refused (want NULL) with the message naming the dtype. */
static void from_json(lumio_zarr_info in, json_t *j, const char *want) {
    char err[256] = "", expect[80], *shown = json_dumps(j, JSON_ENCODE_ANY);
    int rc = lumio__zarr_fill_from_json(j, &in, err, sizeof err);
    snprintf(expect, sizeof expect, "fill_value: not a value of type %s", in.dtype);
    if (want ? rc != 0 || memcmp(in.fill, want, in.itemsize)
             : rc != LUMIO_E_FORMAT || strcmp(err, expect)) {
        FAIL("JSON %s as %s: rc %d '%s'", shown, in.dtype, rc, err);
    }
    free(shown);
    json_decref(j);
}

TEST(json_values) {
    /* 2^64-1 as jansson reads it (past int64, integers are read as reals) */
    json_t *u64max = json_real(18446744073709551615.0);
    from_json(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), json_true(), "\x01");
    from_json(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), json_integer(0), "\x00");
    from_json(info_of(LUMIO_ZARR_UINT16, 2, 1, ">u2"), json_null(), "\x00\x00");
    from_json(info_of(LUMIO_ZARR_INT16, 2, 0, "<i2"), json_integer(-2), "\xfe\xff");
    from_json(info_of(LUMIO_ZARR_INT16, 2, 0, "<i2"), json_real(-2.0), "\xfe\xff");
    from_json(info_of(LUMIO_ZARR_UINT64, 8, 0, "<u8"), json_copy(u64max),
              "\xff\xff\xff\xff\xff\xff\xff\xff");
    from_json(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), json_string("0x7fc00001"),
              "\x01\x00\xc0\x7f");
    from_json(info_of(LUMIO_ZARR_FLOAT64, 8, 0, "<f8"), json_string("-Infinity"),
              "\0\0\0\0\0\0\xf0\xff");
    from_json(info_of(LUMIO_ZARR_FLOAT64, 8, 0, "<f8"), json_integer(2), "\0\0\0\0\0\0\0\x40");
    from_json(info_of(LUMIO_ZARR_UINT8, 1, 0, "|u1"), json_integer(256), NULL);
    from_json(info_of(LUMIO_ZARR_INT64, 8, 0, "<i8"), json_copy(u64max), NULL);
    from_json(info_of(LUMIO_ZARR_INT8, 1, 0, "|i1"), json_real(1.5), NULL);
    from_json(info_of(LUMIO_ZARR_BOOL, 1, 0, "|b1"), json_string("true"), NULL);
    from_json(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), json_string("0x7fc0"), NULL);
    from_json(info_of(LUMIO_ZARR_FLOAT32, 4, 0, "<f4"), json_string("nan"), NULL);
    json_decref(u64max);
}

TEST(json_written) {
    lumio_zarr_info in = info_of(LUMIO_ZARR_FLOAT64, 8, 0, "<f8");
    char err[256];
    CHECK_EQ(lumio__zarr_fill_from_text("nan", &in, err, sizeof err), 0);
    json_t *j = (json_t *)lumio__zarr_fill_to_json(&in);
    CHECK(json_is_string(j) && !strcmp(json_string_value(j), "NaN"));
    json_decref(j);
    in = info_of(LUMIO_ZARR_INT8, 1, 0, "|i1");
    CHECK_EQ(lumio__zarr_fill_from_text("-7", &in, err, sizeof err), 0);
    j = (json_t *)lumio__zarr_fill_to_json(&in);
    CHECK(json_is_integer(j) && json_integer_value(j) == -7);
    json_decref(j);
}

int main(void) {
    return run_tests("zarr_fill");
}
