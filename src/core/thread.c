/* The library's threads block signals (core.h, lumio__thread_create). A new
 * thread inherits its creator's mask, so the creator blocks everything for
 * the moment of pthread_create and then puts its own mask back: the thread
 * never has a window with signals open. */
#include "core/core.h"

#include <signal.h>

int lumio__thread_create(pthread_t *t, void *(*fn)(void *), void *arg) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
