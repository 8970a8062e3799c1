/* The remote reader's retry and status policy, as pure functions: what a
 * finished attempt means (final, with which code, or worth another try), how
 * long to wait before the next one, when a request's time is up, where a
 * resumed transfer starts and which answers to it are accepted. No handles,
 * no I/O, no clock: the request loop (client.c) passes in what it saw, the
 * time and random numbers, so that every rule is tested without a network
 * (tests/test_remote_policy.c). Internal: not installed. */
#ifndef LUMIO_REMOTE_POLICY_H
#define LUMIO_REMOTE_POLICY_H

#include "remote/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rreq_kind { RREQ_GET, RREQ_HEAD, RREQ_PUT };

/* Redirects followed for a request that is not signed (and not a PUT). */
#define LUMIO__MAX_REDIRECTS 5
/* An attempt that landed this much earns a fresh count of retries, at once. */
#define LUMIO__RESUME_FRESH (1u << 20)

/* The client's options that the policy reads (lumio_remote_options). */
typedef struct lumio__limits {
    unsigned retries;          /* retries after the first attempt */
    unsigned backoff_ms;       /* the first retry's delay, doubled for each next one */
    unsigned backoff_max_ms;   /* the cap of the delay, and of a server's Retry-After */
    unsigned timeout_ms;       /* no progress for this long, retries included: final */
    unsigned stall_timeout_ms; /* an attempt without a byte for this long stops */
} lumio__limits;

/* A request's range and how far it got. */
typedef struct lumio__span {
    enum rreq_kind kind;
    uint64_t off, len; /* len UINT64_MAX: to the object's end */
    uint64_t got;      /* bytes landed from off, over all attempts */
} lumio__span;

/* What the loop saw of one finished attempt. */
typedef struct lumio__attempt {
    lumio__span span;
    uint64_t moved;     /* bytes this attempt landed */
    unsigned attempt;   /* 0 for the first, n for the nth retry since the count began */
    int curl;           /* the transfer's CURLcode */
    const http_head *h; /* the last response's head */
    bool hdr_done;      /* that head ended (its blank line came) */
    unsigned hdr_lines; /* lines of that head */
    bool timed_out;     /* the request's own time ran out */
    bool stalled;       /* the attempt had no byte for stall_timeout_ms */
    bool signed_req;    /* the request carries a signature (and maybe a session token) */
    bool have_size;     /* the object's size, as pinned by an earlier response */
    uint64_t size;
} lumio__attempt;

typedef enum lumio__action {
    LUMIO__FAIL,    /* final, with the code */
    LUMIO__RETRY,   /* failed for a reason that may pass: lumio__retry_decide */
    LUMIO__SUCCESS, /* a 2xx: check its head (lumio__check_range), then lumio__success */
    LUMIO__AT_END,  /* a 416 where the object ends: done, nothing more to read */
} lumio__action;

typedef struct lumio__verdict {
    lumio__action action;
    int code;      /* LUMIO__FAIL: a negative code */
    bool pin_size; /* LUMIO__AT_END: the object is empty; its size is h->total */
} lumio__verdict;

/* What a finished attempt means, with the reason in why (FAIL and RETRY). */
lumio__verdict lumio__classify(const lumio__attempt *a, const lumio__limits *lim, char *why,
                               size_t whylen);

/* A 2xx whose head was accepted: LUMIO__SUCCESS, or LUMIO__RETRY where the
 * body ended before the range while the object goes on (why says where).
 * Sets *eof where the response ended at the object's end. */
lumio__action lumio__success(const lumio__span *s, const http_head *h, bool *eof, char *why,
                             size_t whylen);

/* The answer to a successful response head: is it the range asked for, from
 * the first byte not yet landed? */
typedef struct lumio__range_check {
    uint64_t total;   /* the object's size as the response tells it; UINT64_MAX if not */
    uint64_t body_at; /* the object offset of the body's first byte */
    bool ignored;     /* the server ignores Range: it answered with the whole object */
    bool norange;     /* refused for that: the caller takes no whole body from here */
    bool eof;         /* the object ends before the range does */
} lumio__range_check;

/* 0, or a negative code with why set. */
int lumio__check_range(const lumio__span *s, const http_head *h, bool whole_ok,
                       lumio__range_check *out, char *why, size_t whylen);

/* The Range header of the next attempt, from the first byte not yet landed;
 * "" for the whole object from its start. */
void lumio__range_header(const lumio__span *s, char *buf, size_t len);

/* Whether libcurl follows redirects: a write is not redirected (a 303 would
 * turn it into a GET), nor a signed request (libcurl would carry its x-amz-*
 * headers, the session token among them, to the other host). */
bool lumio__follow_redirects(enum rreq_kind kind, bool signed_req);

typedef struct lumio__retry {
    bool retry;
    unsigned attempt;    /* the next attempt's number; giving up, the failed one's */
    int64_t wait_ms;     /* before the next attempt */
    int64_t retry_at_ms; /* when it may start; 0: at once */
    int code;            /* giving up: the request's code */
} lumio__retry;

/* After LUMIO__RETRY at `now`: another attempt, or giving up when the
 * retries are spent or the next would start past the request's time
 * (progress_ms is its last progress). `rand` is a random number for the
 * jitter. Giving up writes the reason, why and the count, to text. */
lumio__retry lumio__retry_decide(const lumio__attempt *a, const lumio__limits *lim,
                                 int64_t progress_ms, int64_t now, uint64_t rand, const char *why,
                                 char *text, size_t textlen);

/* The delay before retry number `attempt` (from 1): exponential from
 * backoff_ms to backoff_max_ms, half of it fixed and half random (from
 * rand); a longer Retry-After (ms, or -1) is waited, up to backoff_max_ms. */
int64_t lumio__backoff(unsigned attempt, const lumio__limits *lim, int retry_after_ms,
                       uint64_t rand);

/* The clocks of one request (ms of the caller's monotonic clock): its time
 * limit runs across attempts, the stall limit within one. */
typedef struct lumio__clocks {
    int64_t progress_ms;  /* the last progress of any attempt: for timeout_ms */
    int64_t last_byte_ms; /* the last byte of this attempt: for stall_timeout_ms */
    int64_t queued_ms;    /* a retry: when it could start */
} lumio__clocks;

/* Attempt number `attempt` starts at now. */
void lumio__clocks_start(lumio__clocks *c, unsigned attempt, int64_t now);

typedef enum lumio__tick { LUMIO__GOING, LUMIO__TIMED_OUT, LUMIO__STALLED } lumio__tick;

/* A look at a transfer in flight: on_wire once its request is sent (before,
 * it waits for a connection of the pool); paused while the reader has no
 * room (then the server is not silent, the reader is). */
lumio__tick lumio__clocks_tick(lumio__clocks *c, const lumio__limits *lim, int64_t now,
                               unsigned attempt, bool on_wire, bool paused);

/* Statuses. */
bool lumio__status_retryable(int status);
/* The code of a final error status. */
int lumio__status_code(int status);
/* Its reason phrase, "" for one without. */
const char *lumio__status_text(int status);
/* A HEAD's refusal that a GET may not share: a URL presigned for GET only
 * (403 from S3 and GCS), a server without HEAD (405, 501). Where HEAD is
 * refused, or gives no size, a GET of the first byte identifies the object
 * (its Content-Range, or a 200's length). */
bool lumio__head_refused(int status);
/* libcurl results that may pass on another attempt. */
bool lumio__curl_retryable(int curl);

#endif
