/* Reader sources that wait for writers to connect: tcp-listen: and
 * ws-listen: (listen_src.c). */
#ifndef LUMIO_STREAM_LISTEN_SRC_H
#define LUMIO_STREAM_LISTEN_SRC_H

#include "stream/net.h"

typedef struct lsrc lsrc;

/* 1 when source is one (listening now, a bridge thread started; *fd the
 * descriptor to read the stream from, the caller's to close), 0 when it is
 * not, < 0 when it cannot listen (lumio__net_error() says why). */
int lumio__lsrc_open(lsrc **out, const char *source, bool follow, uint32_t idle_ms, int *fd);
/* The last writer dropped and why ("" if none). */
void lumio__lsrc_note(lsrc *b, char *buf, size_t cap);
/* Stop the bridge and free. Accepts NULL. */
void lumio__lsrc_close(lsrc *b);

#endif
