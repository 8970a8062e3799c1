/* libwebsockets contexts without lws's process-wide side effects. Making a
 * context ignores SIGPIPE for the whole process (lws_plat_context_early_init
 * in lws 4.1), which a library must not do behind its program's back: the
 * disposition is put back at once. lws still never gets a SIGPIPE of its
 * own: its plain sockets are written with MSG_NOSIGNAL, TLS ones on the
 * sink's thread, which blocks signals (lumio__thread_create), or while a
 * context is destroyed, when SIGPIPE is held back (below). lws logs to
 * stderr at its default level; the library never prints, so that level is
 * set to nothing -- but a level the program chose for its own use of lws
 * (lws 4.1 has one, process-wide) is left as it is. */
#include "stream/ws.h"

#include <libwebsockets.h>
#include <signal.h>
#include <time.h>

/* lws 4.1's level until someone sets one. */
#define LWS_DEFAULT_LEVELS (LLL_ERR | LLL_WARN | LLL_NOTICE)

static void quiet_lws_defaults(void) {
    int visible = 0;
    for (int bit = 0; bit < LLL_COUNT; bit++)
        if (lwsl_visible(1 << bit)) visible |= 1 << bit;
    if (visible == LWS_DEFAULT_LEVELS) lws_set_log_level(0, NULL);
}

struct lws_context *lumio__ws_context_create(const struct lws_context_creation_info *info) {
    quiet_lws_defaults();
    struct sigaction old;
    sigaction(SIGPIPE, NULL, &old);
    struct lws_context *ctx = lws_create_context(info);
    sigaction(SIGPIPE, &old, NULL);
    return ctx;
}

/* Tearing down TLS connections writes (close_notify) with OpenSSL's write(),
 * which raises SIGPIPE on a connection the peer closed: blocked meanwhile on
 * this thread, and taken back if it was raised here. */
void lumio__ws_context_destroy(struct lws_context *ctx) {
    if (!ctx) return;
    sigset_t pipe, old, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    lws_context_destroy(ctx);
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec none = {0, 0};
        sigtimedwait(&pipe, NULL, &none);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
